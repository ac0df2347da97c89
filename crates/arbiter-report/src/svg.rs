//! Hand-drawn SVG plots: no fonts to embed, no plotting crate, readable in any browser.

use crate::escape_html;

/// A qualitative palette that stays distinguishable for common colour-vision deficiencies
/// (Okabe–Ito).
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#009E73", "#E69F00", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000",
];

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

/// Round numbers spanning `[lo, hi]` for axis ticks.
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut out = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Horizontal box plots, one row per group, with every value drawn as a point.
///
/// Boxes span the quartiles, whiskers the full range, the bar inside is the median. Empty
/// groups get a row saying so.
pub fn box_plot(groups: &[(String, Vec<f64>)], x_label: &str, title: &str) -> String {
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        lo -= 0.5;
        hi += 0.5;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let left = 230.0;
    let width = 760.0;
    let plot_w = width - left - 20.0;
    let row_h = 34.0;
    let top = 30.0;
    let height = top + row_h * groups.len() as f64 + 45.0;
    let x = |v: f64| left + (v - lo) / (hi - lo) * plot_w;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n<title>{}</title>\n",
        escape_html(title),
        escape_html(title)
    );
    let axis_y = top + row_h * groups.len() as f64;
    for t in ticks(lo, hi, 6) {
        let tx = x(t);
        s.push_str(&format!(
            "<line x1=\"{0}\" y1=\"{top}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#e5e5e5\"/>\n<text x=\"{0}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#444\">{3}</text>\n",
            fmt(tx),
            fmt(axis_y),
            fmt(axis_y + 16.0),
            format_tick(t)
        ));
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#222\">{}</text>\n",
        fmt(left + plot_w / 2.0),
        fmt(axis_y + 36.0),
        escape_html(x_label)
    ));
    for (row, (label, vals)) in groups.iter().enumerate() {
        let cy = top + row_h * (row as f64 + 0.5);
        let colour = PALETTE[row % PALETTE.len()];
        let mut sorted: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#222\">{} (n={})</text>\n",
            fmt(left - 8.0),
            fmt(cy + 4.0),
            escape_html(label),
            sorted.len()
        ));
        if sorted.is_empty() {
            continue;
        }
        let (q1, med, q3) = (
            quantile(&sorted, 0.25),
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.75),
        );
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        s.push_str(&format!(
            "<line x1=\"{}\" y1=\"{cy}\" x2=\"{}\" y2=\"{cy}\" stroke=\"{colour}\"/>\n",
            fmt(x(min)),
            fmt(x(max))
        ));
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"14\" fill=\"{colour}\" fill-opacity=\"0.25\" stroke=\"{colour}\"/>\n",
            fmt(x(q1)),
            fmt(cy - 7.0),
            fmt((x(q3) - x(q1)).max(1.0))
        ));
        s.push_str(&format!(
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{colour}\" stroke-width=\"2\"/>\n",
            fmt(x(med)),
            fmt(cy - 9.0),
            fmt(cy + 9.0)
        ));
        // Deterministic jitter so the same data always draws the same picture.
        for (i, v) in sorted.iter().enumerate() {
            let jitter = ((i as f64 * 0.618_034) % 1.0 - 0.5) * 12.0;
            s.push_str(&format!(
                "<circle cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"{colour}\" fill-opacity=\"0.6\"/>\n",
                fmt(x(*v)),
                fmt(cy + jitter)
            ));
        }
    }
    s.push_str("</svg>");
    s
}

fn format_tick(t: f64) -> String {
    if (t - t.round()).abs() < 1e-9 {
        format!("{}", t.round() as i64)
    } else {
        let s = format!("{t:.2}");
        s.trim_end_matches('0').to_string()
    }
}

/// Horizontal stacked bars of counts: one bar per row, one segment per category, with a legend.
pub fn stacked_bars(rows: &[(String, Vec<usize>)], segments: &[String], title: &str) -> String {
    let left = 150.0;
    let width = 720.0;
    let plot_w = width - left - 20.0;
    let row_h = 30.0;
    let legend_h = 24.0;
    let top = legend_h + 10.0;
    let height = top + row_h * rows.len() as f64 + 10.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n<title>{}</title>\n",
        escape_html(title),
        escape_html(title)
    );
    let mut lx = left;
    for (k, name) in segments.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\n<text x=\"{}\" y=\"16\" fill=\"#222\">{}</text>\n",
            fmt(lx),
            fmt(lx + 16.0),
            escape_html(name)
        ));
        lx += 24.0 + 7.0 * name.chars().count() as f64;
    }
    for (row, (label, counts)) in rows.iter().enumerate() {
        let y = top + row_h * row as f64;
        let total: usize = counts.iter().sum();
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#222\">{} (n={total})</text>\n",
            fmt(left - 8.0),
            fmt(y + 15.0),
            escape_html(label)
        ));
        let mut x0 = left;
        for (k, &c) in counts.iter().enumerate() {
            if c == 0 || total == 0 {
                continue;
            }
            let w = plot_w * c as f64 / total as f64;
            s.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"20\" fill=\"{}\"><title>{}: {c}</title></rect>\n",
                fmt(x0),
                fmt(y + 2.0),
                fmt(w),
                PALETTE[k % PALETTE.len()],
                escape_html(segments.get(k).map(String::as_str).unwrap_or("?"))
            ));
            if w > 22.0 {
                s.push_str(&format!(
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#fff\">{c}</text>\n",
                    fmt(x0 + w / 2.0),
                    fmt(y + 16.0)
                ));
            }
            x0 += w;
        }
    }
    s.push_str("</svg>");
    s
}

/// One bar of [`interval_bars`]: a value and, when known, its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalBar {
    /// The point estimate.
    pub value: f64,
    /// Lower and upper ends of the interval (e.g. a bootstrap 95% CI).
    pub interval: Option<[f64; 2]>,
}

/// Horizontal grouped bars with interval whiskers: one group per row label, one bar per series
/// (legend on top, series coloured from [`PALETTE`]). Bars grow from 0 (clamped to the axis);
/// whiskers span the interval with end caps; a missing value is written `n/a`. `range` fixes
/// the axis (e.g. `(0.0, 1.0)` for shares); otherwise it spans the data, the intervals and 0.
/// Non-finite numbers are treated as missing.
pub fn interval_bars(
    groups: &[(String, Vec<Option<IntervalBar>>)],
    series: &[String],
    range: Option<(f64, f64)>,
    x_label: &str,
    title: &str,
) -> String {
    let finite = |b: &IntervalBar| b.value.is_finite();
    let (mut lo, mut hi) = match range {
        Some((a, b)) if a.is_finite() && b.is_finite() && b > a => (a, b),
        _ => {
            let mut lo: f64 = 0.0;
            let mut hi: f64 = 0.0;
            for b in groups.iter().flat_map(|(_, v)| v.iter().flatten()) {
                if !finite(b) {
                    continue;
                }
                lo = lo.min(b.value);
                hi = hi.max(b.value);
                if let Some([l, h]) = b.interval
                    && l.is_finite()
                    && h.is_finite()
                {
                    lo = lo.min(l);
                    hi = hi.max(h);
                }
            }
            let pad = (hi - lo) * 0.05;
            (lo - pad, hi + pad)
        }
    };
    if hi - lo < 1e-9 {
        lo -= 0.5;
        hi += 0.5;
    }
    let left = 240.0;
    let width = 760.0;
    let plot_w = width - left - 30.0;
    let bar_h = 12.0;
    let bar_gap = 3.0;
    let group_pad = 12.0;
    let n_series = series.len().max(1);
    let group_h = n_series as f64 * (bar_h + bar_gap) + group_pad;
    let top = 34.0;
    let plot_bottom = top + group_h * groups.len() as f64;
    let height = plot_bottom + 45.0;
    let x = |v: f64| left + (v.clamp(lo, hi) - lo) / (hi - lo) * plot_w;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"12\">\n<title>{t}</title>\n",
        t = escape_html(title)
    );
    let mut lx = left;
    for (k, name) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\n<text x=\"{}\" y=\"18\" fill=\"#222\">{}</text>\n",
            fmt(lx),
            fmt(lx + 16.0),
            escape_html(name)
        ));
        lx += 28.0 + 7.0 * name.chars().count() as f64;
    }
    for t in ticks(lo, hi, 6) {
        let tx = x(t);
        s.push_str(&format!(
            "<line x1=\"{0}\" y1=\"{top}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#e5e5e5\"/>\n<text x=\"{0}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#444\">{3}</text>\n",
            fmt(tx),
            fmt(plot_bottom),
            fmt(plot_bottom + 16.0),
            format_tick(t)
        ));
    }
    let zero = x(0.0);
    s.push_str(&format!(
        "<line x1=\"{0}\" y1=\"{top}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#888\"/>\n",
        fmt(zero),
        fmt(plot_bottom)
    ));
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#222\">{}</text>\n",
        fmt(left + plot_w / 2.0),
        fmt(plot_bottom + 36.0),
        escape_html(x_label)
    ));
    for (g, (label, bars)) in groups.iter().enumerate() {
        let gy = top + group_h * g as f64 + group_pad / 2.0;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#222\">{}</text>\n",
            fmt(left - 8.0),
            fmt(gy + (group_h - group_pad) / 2.0 + 4.0),
            escape_html(label)
        ));
        for k in 0..n_series {
            let y = gy + k as f64 * (bar_h + bar_gap);
            let cy = y + bar_h / 2.0;
            let colour = PALETTE[k % PALETTE.len()];
            let name = series.get(k).map(String::as_str).unwrap_or("");
            let Some(b) = bars.get(k).copied().flatten().filter(finite) else {
                s.push_str(&format!(
                    "<text x=\"{}\" y=\"{}\" fill=\"#777\" font-size=\"10\">n/a</text>\n",
                    fmt(zero + 3.0),
                    fmt(cy + 3.5)
                ));
                continue;
            };
            let (x0, x1) = (zero.min(x(b.value)), zero.max(x(b.value)));
            let interval = b.interval.filter(|[l, h]| l.is_finite() && h.is_finite());
            let tip = match interval {
                Some([l, h]) => format!("{name}: {} [{}, {}]", fmt3(b.value), fmt3(l), fmt3(h)),
                None => format!("{name}: {}", fmt3(b.value)),
            };
            s.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{bar_h}\" fill=\"{colour}\" fill-opacity=\"0.85\"><title>{}</title></rect>\n",
                fmt(x0),
                fmt(y),
                fmt((x1 - x0).max(0.5)),
                escape_html(&tip)
            ));
            if let Some([l, h]) = interval {
                let (xl, xh) = (x(l), x(h));
                s.push_str(&format!(
                    "<path d=\"M{0} {1}V{2}M{0} {3}H{4}M{4} {1}V{2}\" stroke=\"#222\" stroke-width=\"1.2\" fill=\"none\"/>\n",
                    fmt(xl),
                    fmt(cy - 4.0),
                    fmt(cy + 4.0),
                    fmt(cy),
                    fmt(xh)
                ));
            }
        }
    }
    s.push_str("</svg>");
    s
}

fn fmt3(x: f64) -> String {
    format!("{x:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = ticks(-3.2, 7.9, 6);
        assert_eq!(t.first(), Some(&-2.0));
        assert_eq!(t.last(), Some(&6.0));
    }

    #[test]
    fn box_plot_draws_one_point_per_value_and_handles_empty_groups() {
        let svg = box_plot(
            &[("a".into(), vec![1.0, 2.0, 3.0]), ("b".into(), vec![])],
            "reward",
            "t",
        );
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("a (n=3)") && svg.contains("b (n=0)"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn stacked_bars_skip_zero_segments() {
        let svg = stacked_bars(
            &[("x".into(), vec![3, 0, 1])],
            &["p".into(), "q".into(), "r".into()],
            "t",
        );
        assert_eq!(svg.matches("<title>").count(), 1 + 2);
    }

    #[test]
    fn interval_bars_draw_bars_whiskers_and_missing_values() {
        let bar = |v: f64, ci: Option<[f64; 2]>| {
            Some(IntervalBar {
                value: v,
                interval: ci,
            })
        };
        let svg = interval_bars(
            &[
                ("a<b".into(), vec![bar(0.5, Some([0.4, 0.6])), None]),
                ("c".into(), vec![bar(0.9, None), bar(f64::NAN, None)]),
            ],
            &["m1".into(), "m2".into()],
            Some((0.0, 1.0)),
            "share",
            "t",
        );
        assert_eq!(
            svg.matches("<rect x").count(),
            2 + 2,
            "two legend swatches, two bars"
        );
        assert_eq!(svg.matches("<path").count(), 1);
        assert_eq!(svg.matches(">n/a<").count(), 2);
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        assert!(svg.contains("m1: 0.500 [0.400, 0.600]"));
        let negative = interval_bars(
            &[("s".into(), vec![bar(-40.0, Some([-60.0, -20.0]))])],
            &["m".into()],
            None,
            "x100",
            "t",
        );
        assert!(negative.starts_with("<svg") && negative.ends_with("</svg>"));
    }
}
