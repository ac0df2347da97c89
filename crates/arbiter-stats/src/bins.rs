//! Binning a numeric group column (age, years of experience) into ordered, half-open intervals,
//! so that 48 distinct ages become a handful of groups with enough raters each.
//!
//! Bins are `[low, high)`: a value equal to an edge goes to the bin that starts there. Edges are
//! either given or quantiles over *raters* (each rater's first value of the column), since the
//! groups compare raters and a prolific rater must not move the edges.

use serde::Serialize;

use crate::{Ratings, StatsError};

/// How to bin a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Bins {
    /// Strictly increasing edges: bins `< e0`, `[e0, e1)`, …, `≥ e_last`.
    Edges(Vec<f64>),
    /// This many bins of about equal numbers of raters.
    Quantiles(usize),
}

impl Bins {
    /// Parse `18,25,35` (edges) or `q4` (quartiles over raters).
    pub fn parse(spec: &str) -> Result<Bins, StatsError> {
        let bad = |message: String| StatsError::InvalidParameter {
            name: "bins",
            message,
        };
        let spec = spec.trim();
        if let Some(q) = spec.strip_prefix(['q', 'Q']) {
            let q: usize = q
                .trim()
                .parse()
                .map_err(|_| bad(format!("{spec:?}: expected qN, e.g. q4")))?;
            if !(2..=100).contains(&q) {
                return Err(bad(format!(
                    "{spec:?}: the number of quantile bins must be 2 to 100"
                )));
            }
            return Ok(Bins::Quantiles(q));
        }
        let mut edges = Vec::new();
        for part in spec.split(',') {
            let edge: f64 = part
                .trim()
                .parse()
                .ok()
                .filter(|e: &f64| e.is_finite())
                .ok_or_else(|| bad(format!("{spec:?}: edge {:?} is not a number", part.trim())))?;
            if edges.last().is_some_and(|&last| edge <= last) {
                return Err(bad(format!("{spec:?}: edges must be strictly increasing")));
            }
            edges.push(edge);
        }
        Ok(Bins::Edges(edges))
    }
}

/// One bin: `[low, high)`, open below for the first bin and above for the last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    /// The group value the bin's rows get, e.g. `18–24`, `<18`, `65+`.
    pub label: String,
    /// Inclusive lower edge (`None`: no lower bound).
    pub low: Option<f64>,
    /// Exclusive upper edge (`None`: no upper bound).
    pub high: Option<f64>,
}

/// How a column was binned, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Binning {
    /// The binned column.
    pub column: String,
    /// Number of quantile bins asked for, when the edges are quantiles.
    pub quantiles: Option<usize>,
    /// The edges used (quantile edges after dropping repeats).
    pub edges: Vec<f64>,
    /// The bins that hold at least one row, in numeric order.
    pub bins: Vec<Bin>,
}

impl Binning {
    /// One sentence saying how the column was binned and what each label means.
    pub fn describe(&self) -> String {
        let edges = self
            .edges
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let how = match self.quantiles {
            Some(q) => {
                format!(
                    "into {q} quantile bins over raters (each rater's first value) at edges {edges}"
                )
            }
            None => format!("at edges {edges}"),
        };
        let meaning = self
            .bins
            .iter()
            .map(|b| format!("{} = {}", b.label, interval_text(b.low, b.high)))
            .collect::<Vec<_>>()
            .join("; ");
        format!(
            "`{}` is binned {how}, as half-open intervals (a value equal to an edge starts the next bin): {meaning}.",
            self.column
        )
    }
}

/// `[a, b)`, `< b` or `≥ a`.
fn interval_text(low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(a), Some(b)) => format!("[{a}, {b})"),
        (None, Some(b)) => format!("< {b}"),
        (Some(a), None) => format!("≥ {a}"),
        (None, None) => "all values".to_string(),
    }
}

/// The table with `column` replaced by its bins, and how it was binned. Missing values stay
/// missing; a value that is not a number is an error naming it and the column.
pub fn bin_group(
    ratings: &Ratings,
    column: &str,
    bins: &Bins,
) -> Result<(Ratings, Binning), StatsError> {
    let col = ratings.group(column)?;
    let numbers = col
        .values
        .iter()
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| StatsError::NonNumericGroup {
                    column: column.to_string(),
                    value: v.clone(),
                })
        })
        .collect::<Result<Vec<f64>, _>>()?;
    let (edges, quantiles) = match bins {
        Bins::Edges(e) => (e.clone(), None),
        Bins::Quantiles(q) => {
            let mut per_rater: Vec<f64> = ratings
                .rater_groups(column)?
                .into_iter()
                .flatten()
                .map(|g| numbers[g as usize])
                .collect();
            per_rater.sort_by(f64::total_cmp);
            let n = per_rater.len();
            let mut edges: Vec<f64> = Vec::new();
            for k in 1..*q {
                // The value above which (n·k/q) raters lie below: bins of about n/q raters.
                let Some(&edge) = per_rater.get(n * k / q) else {
                    continue;
                };
                if edges.last().is_none_or(|&last| edge > last) {
                    edges.push(edge);
                }
            }
            (edges, Some(*q))
        }
    };
    let integral = edges.iter().chain(&numbers).all(|x| x.fract() == 0.0);
    let all: Vec<Bin> = (0..=edges.len())
        .map(|i| {
            let low = i.checked_sub(1).map(|j| edges[j]);
            let high = edges.get(i).copied();
            Bin {
                label: bin_label(low, high, integral),
                low,
                high,
            }
        })
        .collect();
    let bin_of = |x: f64| edges.partition_point(|&e| e <= x);
    let mut used = vec![false; all.len()];
    for g in col.per_row.iter().flatten() {
        used[bin_of(numbers[*g as usize])] = true;
    }
    // Only bins with rows become groups, numbered in bin order.
    let mut new_index = vec![None; all.len()];
    let mut kept = Vec::new();
    for (i, bin) in all.into_iter().enumerate() {
        if used[i] {
            new_index[i] = Some(kept.len() as u32);
            kept.push(bin);
        }
    }
    let table = ratings.regroup(
        column,
        kept.iter().map(|b| b.label.clone()).collect(),
        |v| new_index[bin_of(numbers[v as usize])],
    )?;
    Ok((
        table,
        Binning {
            column: column.to_string(),
            quantiles,
            edges,
            bins: kept,
        },
    ))
}

/// `<18`, `18–24` (whole numbers: the last whole number below the next edge), `65+`; with
/// fractions, `[17.5, 25)`.
fn bin_label(low: Option<f64>, high: Option<f64>, integral: bool) -> String {
    match (low, high) {
        (None, Some(b)) => format!("<{b}"),
        (Some(a), None) => format!("{a}+"),
        (Some(a), Some(b)) if integral => {
            if b - 1.0 == a {
                format!("{a}")
            } else {
                format!("{a}–{}", b - 1.0)
            }
        }
        (Some(a), Some(b)) => format!("[{a}, {b})"),
        (None, None) => "all".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};

    fn table(ages: &[(&str, &str)]) -> Ratings {
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec!["age".into()]);
        for (rater, age) in ages {
            let age = (!age.is_empty()).then_some(*age);
            b.push("i", rater, "1", &[age]).unwrap();
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    #[test]
    fn parses_edges_and_quantiles() {
        assert_eq!(
            Bins::parse("18, 25,35").unwrap(),
            Bins::Edges(vec![18.0, 25.0, 35.0])
        );
        assert_eq!(Bins::parse("q4").unwrap(), Bins::Quantiles(4));
        assert!(Bins::parse("25,18").is_err());
        assert!(Bins::parse("q1").is_err());
        assert!(Bins::parse("18,x").is_err());
    }

    #[test]
    fn edges_give_half_open_bins_in_numeric_order() {
        let t = table(&[
            ("a", "70"),
            ("b", "24"),
            ("c", "25"),
            ("d", "17"),
            ("e", "9"),
            ("f", ""),
        ]);
        let (binned, how) =
            bin_group(&t, "age", &Bins::parse("18,25,35,45,55,65").unwrap()).unwrap();
        let col = binned.group("age").unwrap();
        assert_eq!(col.values, ["<18", "18–24", "25–34", "65+"]);
        let of_row: Vec<Option<&str>> = col
            .per_row
            .iter()
            .map(|g| g.map(|g| col.values[g as usize].as_str()))
            .collect();
        assert_eq!(
            of_row,
            [
                Some("65+"),
                Some("18–24"),
                Some("25–34"),
                Some("<18"),
                Some("<18"),
                None
            ]
        );
        assert_eq!(how.bins[1].low, Some(18.0));
        assert_eq!(how.bins[1].high, Some(25.0));
        assert!(
            how.describe().contains("18–24 = [18, 25)"),
            "{}",
            how.describe()
        );
    }

    #[test]
    fn quantiles_are_over_raters_and_fractions_read_as_intervals() {
        // Rater a has many rows; the quartile edges still split the four raters one by one.
        let t = table(&[
            ("a", "20"),
            ("a", "20"),
            ("a", "20"),
            ("b", "30"),
            ("c", "40"),
            ("d", "50.5"),
        ]);
        let (binned, how) = bin_group(&t, "age", &Bins::Quantiles(4)).unwrap();
        assert_eq!(how.edges, [30.0, 40.0, 50.5]);
        assert_eq!(
            binned.group("age").unwrap().values,
            ["<30", "[30, 40)", "[40, 50.5)", "50.5+"]
        );
    }

    #[test]
    fn a_word_in_a_binned_column_is_named() {
        let t = table(&[("a", "20"), ("b", "unknown")]);
        let err = bin_group(&t, "age", &Bins::Quantiles(2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "group column \"age\" is binned, but its value \"unknown\" is not a number"
        );
    }
}
