//! The annotation-statistics reports, as values: [`AgreementReport`] (`arbiter agreement`) and
//! [`DisagreementReport`] (`arbiter disagreement`). Each is built by a pure function from a
//! [`crate::Ratings`] table and settings, then rendered (text or Markdown, HTML, JSON) from
//! that one value, so the renderings cannot disagree. Writing files is the caller's business.

mod agreement;
mod disagreement;

pub use agreement::{
    AgreementIntervals, AgreementReport, AgreementSettings, ColumnAlphas, agreement_report,
};
pub use disagreement::{
    DisagreementReport, DisagreementSettings, DividingRow, GroupAlpha, LabelMeans,
    disagreement_report,
};

use std::fmt::Write as _;

use arbiter_report::{escape_html, svg};
use serde_json::{Value, json};

use crate::{Alpha, AlphaReport, Interval};

/// α as JSON: the number, or `null` when undefined.
fn alpha_json(report: &AlphaReport) -> Value {
    match report.alpha {
        Alpha::Value(v) => json!(v),
        Alpha::Undefined(_) => Value::Null,
    }
}

/// Why α is undefined, as JSON (`None` when it is defined).
fn undefined_reason(report: &AlphaReport) -> Option<Value> {
    match report.alpha {
        Alpha::Value(_) => None,
        Alpha::Undefined(u) => Some(serde_json::to_value(u).unwrap_or(Value::Null)),
    }
}

fn interval_json(i: Option<Interval>) -> Value {
    i.map_or(Value::Null, |i| json!([i.low, i.high]))
}

fn ci_text(ci: Option<Interval>) -> String {
    ci.map_or("–".to_string(), |c| {
        format!("[{:.4}, {:.4}]", c.low, c.high)
    })
}

/// `text` on one line (runs of whitespace become one space), cut to `max_chars` characters
/// with an ellipsis, so a long item text fits a table cell. Escaping is the renderer's job.
pub fn truncate_text(text: &str, max_chars: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max_chars {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max_chars.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// (label, value or undefined, interval) of one plotted row.
type PlotRow = (String, Option<f64>, Option<(f64, f64)>);

/// Dot-and-whisker plot of per-group values with intervals (hand-written SVG); `reference`
/// draws a dashed line labelled `reference_label`.
fn interval_plot(
    rows: &[PlotRow],
    reference: Option<(f64, &str)>,
    bounds: (f64, f64),
    title: &str,
) -> String {
    // The row labels sit left of the plot: room for the widest, so long group names are not
    // clipped by the figure's edge.
    let widest = rows
        .iter()
        .map(|(name, _, _)| svg::text_width(name, 12.0))
        .fold(0.0, f64::max);
    let (row_h, top, plot_w) = (26.0, 30.0, 520.0);
    let left = (widest + 16.0).max(170.0).ceil();
    let width = left + plot_w + 30.0;
    let height = top + row_h * rows.len() as f64 + 30.0;
    let mut lo: f64 = reference.map_or(bounds.0, |r| r.0.min(bounds.0));
    let mut hi: f64 = reference.map_or(bounds.1, |r| r.0.max(bounds.1));
    for (_, v, ci) in rows {
        for x in v.iter().copied().chain(ci.iter().flat_map(|c| [c.0, c.1])) {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    let x = |v: f64| left + (v - lo) / (hi - lo).max(1e-9) * plot_w;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"12\">\n<title>{t}</title>\n",
        t = escape_html(title)
    );
    let axis_y = top + row_h * rows.len() as f64;
    for t in svg::ticks(lo, hi, 6) {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#e5e5e5\"/>\n<text x=\"{0:.1}\" y=\"{1:.1}\" text-anchor=\"middle\" fill=\"#444\">{2:.2}</text>\n",
            x(t),
            axis_y + 16.0,
            t
        );
    }
    if let Some((r, label)) = reference {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#D55E00\" stroke-dasharray=\"4 3\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#D55E00\">{3}</text>",
            x(r),
            top - 8.0,
            top - 12.0,
            escape_html(label)
        );
    }
    for (i, (name, v, ci)) in rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#222\">{}</text>",
            left - 8.0,
            y + 4.0,
            escape_html(name)
        );
        if let Some((a, b)) = ci {
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#0072B2\" stroke-width=\"2\"/>",
                x(*a),
                x(*b)
            );
        }
        match v {
            Some(v) => {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#0072B2\"/>",
                    x(*v)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">undefined</text>",
                    left + 4.0,
                    y + 4.0
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_short_text_and_cuts_long_text() {
        assert_eq!(truncate_text("a  b\nc", 80), "a b c");
        let long = "word ".repeat(40);
        let cut = truncate_text(&long, 80);
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.ends_with("word…"), "{cut}");
        assert_eq!(truncate_text("ééééé", 3), "éé…");
    }

    #[test]
    fn plot_escapes_names() {
        let svg = interval_plot(
            &[("<x>".into(), None, None)],
            Some((0.5, "pooled")),
            (0.0, 1.0),
            "t",
        );
        assert!(svg.contains("&lt;x&gt;") && svg.contains("undefined"));
        let long = "women over 65 living in rural areas".to_string();
        let svg = interval_plot(
            &[(long, Some(0.5), Some((0.2, 0.8)))],
            None,
            (0.0, 1.0),
            "t",
        );
        assert_eq!(svg::text_outside_viewbox(&svg), Vec::<String>::new());
    }
}
