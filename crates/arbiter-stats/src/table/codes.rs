//! [`Ratings`] from rows already coded as integers.
//!
//! A caller holding columnar data (Arrow dictionary arrays, integer columns, or strings it
//! interned itself, perhaps on several threads) knows each row's item, rater and label as a
//! dense id already; handing those ids over skips the per-row string interning of
//! [`RatingsBuilder`](super::RatingsBuilder). The ids are checked, never trusted: a bad id is
//! an error, not a panic or a wrong table.

use super::{
    DomainSpec, DuplicatePolicy, GroupColumn, LabelDomain, Names, Rating, Ratings, in_item_order,
    settle_duplicates,
};
use crate::StatsError;

fn invalid(message: String) -> StatsError {
    StatsError::InvalidParameter {
        name: "codes",
        message,
    }
}

/// Check that `id` of row `row` continues a numbering by first appearance (`next` = the number
/// of ids seen so far).
#[inline]
fn first_appearance(id: u32, next: &mut u32, what: &str, row: usize) -> Result<(), StatsError> {
    if id == *next {
        *next += 1;
    } else if id > *next {
        return Err(invalid(format!(
            "row {row}: {what} id {id} before id {next} appeared; ids must be numbered in order of first appearance"
        )));
    }
    Ok(())
}

impl Ratings {
    /// A table from coded rows: `rows[i].item` indexes `items`, `.rater` indexes `raters`,
    /// and `.label` indexes `labels` (the distinct label texts, in any order, each used by some
    /// row: the domain is inferred from them). Item and rater ids must be numbered in order of
    /// first appearance, as [`RatingsBuilder`](super::RatingsBuilder) numbers them, and every
    /// name must be used. Group columns have one entry per row.
    ///
    /// The result equals what pushing the rows' texts through a builder gives, including the
    /// duplicate policy's effect and count.
    pub fn from_codes(
        items: Names,
        raters: Names,
        labels: &[String],
        mut rows: Vec<Rating>,
        mut groups: Vec<GroupColumn>,
        spec: DomainSpec,
        policy: DuplicatePolicy,
    ) -> Result<Ratings, StatsError> {
        // One pass without a branch per row (a running maximum and a flag); the row at fault
        // is looked for only when the flag says there is one.
        let n_labels = labels.len() as u64;
        let (next_item, next_rater, ok) =
            rows.iter()
                .fold((0u64, 0u64, true), |(item, rater, ok), r| {
                    let (i, j) = (u64::from(r.item), u64::from(r.rater));
                    (
                        item.max(i + 1),
                        rater.max(j + 1),
                        ok & (i <= item) & (j <= rater) & (u64::from(r.label) < n_labels),
                    )
                });
        if !ok {
            let (mut next_item, mut next_rater) = (0u32, 0u32);
            for (row, r) in rows.iter().enumerate() {
                first_appearance(r.item, &mut next_item, "item", row)?;
                first_appearance(r.rater, &mut next_rater, "rater", row)?;
                if r.label as usize >= labels.len() {
                    return Err(invalid(format!(
                        "row {row}: label id {} past the {} labels",
                        r.label,
                        labels.len()
                    )));
                }
            }
        }
        if next_item != items.len() as u64 || next_rater != raters.len() as u64 {
            return Err(invalid(format!(
                "the rows use {next_item} of {} items and {next_rater} of {} raters; every name must be used",
                items.len(),
                raters.len()
            )));
        }
        for g in &groups {
            if g.per_row.len() != rows.len() {
                return Err(invalid(format!(
                    "group column {:?} has {} rows, the table {}",
                    g.name,
                    g.per_row.len(),
                    rows.len()
                )));
            }
            if let Some(v) = g
                .per_row
                .iter()
                .flatten()
                .find(|&&v| v as usize >= g.values.len())
            {
                return Err(invalid(format!(
                    "group column {:?}: value id {v} past its {} values",
                    g.name,
                    g.values.len()
                )));
            }
        }
        let domain = match spec {
            DomainSpec::Explicit(d) => d,
            DomainSpec::Infer(kind) => LabelDomain::infer(labels.iter().map(String::as_str), kind),
        };
        let mut remap = Vec::with_capacity(labels.len());
        for label in labels {
            let i = domain
                .index_of(label)
                .ok_or_else(|| StatsError::UnknownLabel {
                    label: label.clone(),
                    domain: domain.values().to_vec(),
                })?;
            remap.push(i as u32);
        }
        if remap.iter().enumerate().any(|(i, &j)| i as u32 != j) {
            for r in &mut rows {
                r.label = remap[r.label as usize];
            }
        }
        let item_ordered = in_item_order(&rows);
        let n_duplicates = settle_duplicates(
            &mut rows,
            &mut groups,
            &items,
            &raters,
            policy,
            item_ordered,
        )?;
        Ok(Ratings {
            domain,
            items,
            raters,
            rows,
            groups,
            n_duplicates,
            item_ordered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LabelKind, RatingsBuilder};
    use proptest::prelude::*;

    /// Code rows of texts by first appearance, as a columnar caller would.
    fn code(
        rows: &[(String, String, String, Option<String>)],
    ) -> (Names, Names, Vec<String>, Vec<Rating>, GroupColumn) {
        fn id(names: &mut Vec<String>, s: &str) -> u32 {
            names.iter().position(|n| n == s).unwrap_or_else(|| {
                names.push(s.to_string());
                names.len() - 1
            }) as u32
        }
        let (mut items, mut raters, mut labels, mut values) = (vec![], vec![], vec![], vec![]);
        let mut coded = vec![];
        let mut per_row = vec![];
        for (i, r, l, g) in rows {
            coded.push(Rating {
                item: id(&mut items, i),
                rater: id(&mut raters, r),
                label: id(&mut labels, l),
            });
            per_row.push(g.as_deref().map(|g| id(&mut values, g)));
        }
        // Labels numbered in reverse: their order must not matter.
        let n = labels.len() as u32;
        labels.reverse();
        for r in &mut coded {
            r.label = n - 1 - r.label;
        }
        let group = GroupColumn {
            name: "g".into(),
            values,
            per_row,
        };
        (
            items.iter().collect(),
            raters.iter().collect(),
            labels,
            coded,
            group,
        )
    }

    fn policies() -> [DuplicatePolicy; 4] {
        [
            DuplicatePolicy::KeepAll,
            DuplicatePolicy::First,
            DuplicatePolicy::Last,
            DuplicatePolicy::Error,
        ]
    }

    proptest! {
        #[test]
        fn from_codes_equals_the_builder(
            rows in prop::collection::vec(
                (0..12u8, 0..5u8, 0..4u8, prop::option::of(0..3u8)), 0..60),
            sorted in any::<bool>(),
            numeric in any::<bool>(),
        ) {
            let mut rows: Vec<(String, String, String, Option<String>)> = rows
                .into_iter()
                .map(|(i, r, l, g)| {
                    let l = if numeric { format!("{}", l * 3) } else { format!("l{l}") };
                    (format!("i{i}"), format!("r{r}"), l, g.map(|g| format!("g{g}")))
                })
                .collect();
            if sorted {
                rows.sort_by(|a, b| a.0.cmp(&b.0));
            }
            for policy in policies() {
                let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Ordered), vec!["g".into()]);
                for (i, r, l, g) in &rows {
                    b.push(i, r, l, &[g.as_deref()]).unwrap();
                }
                let want = b.build(policy);
                let (items, raters, labels, coded, group) = code(&rows);
                let got = Ratings::from_codes(
                    items, raters, &labels, coded, vec![group],
                    DomainSpec::Infer(LabelKind::Ordered), policy,
                );
                match (want, got) {
                    (Ok(w), Ok(g)) => prop_assert_eq!(w, g),
                    (Err(w), Err(g)) => prop_assert_eq!(w.to_string(), g.to_string()),
                    (w, g) => prop_assert!(false, "builder {:?}, codes {:?}", w, g),
                }
            }
        }

        #[test]
        fn bad_codes_are_errors_not_panics(
            rows in prop::collection::vec((0..6u32, 0..4u32, 0..5u32), 0..30),
            n_items in 0..6usize,
            n_raters in 0..4usize,
            n_labels in 0..4usize,
        ) {
            let rows: Vec<Rating> = rows.into_iter().map(|(item, rater, label)| Rating { item, rater, label }).collect();
            let names = |n: usize, p: &str| (0..n).map(|i| format!("{p}{i}")).collect::<Names>();
            let labels: Vec<String> = (0..n_labels).map(|i| format!("{i}")).collect();
            let _ = Ratings::from_codes(
                names(n_items, "i"), names(n_raters, "r"), &labels, rows, vec![],
                DomainSpec::Infer(LabelKind::Nominal), DuplicatePolicy::Last,
            );
        }
    }

    #[test]
    fn out_of_order_ids_and_unknown_labels_are_named() {
        let names = |v: &[&str]| v.iter().collect::<Names>();
        let rows = vec![Rating {
            item: 1,
            rater: 0,
            label: 0,
        }];
        let err = Ratings::from_codes(
            names(&["a", "b"]),
            names(&["r"]),
            &["x".to_string()],
            rows,
            vec![],
            DomainSpec::Infer(LabelKind::Nominal),
            DuplicatePolicy::KeepAll,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("row 0: item id 1 before id 0"),
            "{err}"
        );
        let rows = vec![Rating {
            item: 0,
            rater: 0,
            label: 0,
        }];
        let domain = LabelDomain::new(vec!["y".into()], LabelKind::Nominal).unwrap();
        let err = Ratings::from_codes(
            names(&["a"]),
            names(&["r"]),
            &["x".to_string()],
            rows,
            vec![],
            DomainSpec::Explicit(domain),
            DuplicatePolicy::KeepAll,
        )
        .unwrap_err();
        assert!(matches!(err, StatsError::UnknownLabel { .. }), "{err}");
    }
}
