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
    s.push_str(&fitted_text(
        x_label,
        left + plot_w / 2.0,
        axis_y + 36.0,
        "middle",
        plot_w,
        12.0,
    ));
    for (row, (label, vals)) in groups.iter().enumerate() {
        let cy = top + row_h * (row as f64 + 0.5);
        let colour = PALETTE[row % PALETTE.len()];
        let mut sorted: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        s.push_str(&fitted_text(
            &format!("{label} (n={})", sorted.len()),
            left - 8.0,
            cy + 4.0,
            "end",
            left - 12.0,
            12.0,
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
    let (legend_svg, legend_h) = legend(segments, 10.0, width - 10.0, 4.0, 12.0);
    let top = legend_h + 10.0;
    let height = top + row_h * rows.len() as f64 + 10.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n<title>{}</title>\n",
        escape_html(title),
        escape_html(title)
    );
    s.push_str(&legend_svg);
    for (row, (label, counts)) in rows.iter().enumerate() {
        let y = top + row_h * row as f64;
        let total: usize = counts.iter().sum();
        s.push_str(&fitted_text(
            &format!("{label} (n={total})"),
            left - 8.0,
            y + 15.0,
            "end",
            left - 12.0,
            12.0,
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
    let width = 760.0;
    let font = 12.0;
    let (legend_svg, legend_h) = legend(series, 10.0, width - 10.0, 6.0, font);
    let widest = groups
        .iter()
        .map(|(l, _)| text_width(l, font))
        .fold(0.0, f64::max);
    // Room for the row labels up to 40% of the width; longer labels shrink or are shortened.
    let left = (widest + 16.0).clamp(80.0, 0.4 * width);
    let plot_w = width - left - 30.0;
    let bar_h = 12.0;
    let bar_gap = 3.0;
    let group_pad = 12.0;
    let n_series = series.len().max(1);
    let group_h = n_series as f64 * (bar_h + bar_gap) + group_pad;
    let top = legend_h + 14.0;
    let plot_bottom = top + group_h * groups.len() as f64;
    let height = plot_bottom + 45.0;
    let x = |v: f64| left + (v.clamp(lo, hi) - lo) / (hi - lo) * plot_w;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"{font}\">\n<title>{t}</title>\n",
        t = escape_html(title)
    );
    s.push_str(&legend_svg);
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
    s.push_str(&fitted_text(
        x_label,
        left + plot_w / 2.0,
        plot_bottom + 36.0,
        "middle",
        plot_w,
        font,
    ));
    for (g, (label, bars)) in groups.iter().enumerate() {
        let gy = top + group_h * g as f64 + group_pad / 2.0;
        s.push_str(&fitted_text(
            label,
            left - 8.0,
            gy + (group_h - group_pad) / 2.0 + 4.0,
            "end",
            left - 12.0,
            font,
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

/// `text` at (`x`, `y`) within `max_width`: as is when it fits, else in a smaller font (down to
/// 75%), else shortened with an ellipsis; a shortened text keeps its whole self as a tooltip.
fn fitted_text(text: &str, x: f64, y: f64, anchor: &str, max_width: f64, font: f64) -> String {
    let (shown, size) = fit(text, max_width, font);
    let size_attr = if size < font {
        format!(" font-size=\"{}\"", fmt(size))
    } else {
        String::new()
    };
    let tip = if shown == text {
        String::new()
    } else {
        format!("<title>{}</title>", escape_html(text))
    };
    format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#222\"{size_attr}>{}{tip}</text>\n",
        fmt(x),
        fmt(y),
        escape_html(&shown)
    )
}

/// The text and font size that fit `max_width` (see [`fitted_text`]).
fn fit(text: &str, max_width: f64, font: f64) -> (String, f64) {
    let width = text_width(text, font);
    if width <= max_width {
        return (text.to_string(), font);
    }
    let min = font * 0.75;
    // Rounded down to the tenth written into the SVG, so the written size still fits.
    let size = (font * max_width / width * 10.0).floor() / 10.0;
    if size >= min {
        return (text.to_string(), size);
    }
    let keep = ((max_width / (0.6 * min)).floor() as usize).saturating_sub(1);
    let mut short: String = text.chars().take(keep).collect();
    short.push('…');
    (short, min)
}

/// A legend of colour swatches and names from [`PALETTE`], left to right from `x0`, wrapping
/// onto another line instead of running past `max_x`; a name too long for a whole line is
/// fitted to it. Returns the SVG and the height used below `y0`.
fn legend(names: &[String], x0: f64, max_x: f64, y0: f64, font: f64) -> (String, f64) {
    let line_h = font + 8.0;
    let swatch = 12.0;
    let (mut s, mut lx, mut line) = (String::new(), x0, 0usize);
    for (k, name) in names.iter().enumerate() {
        let (shown, size) = fit(name, max_x - x0 - swatch - 4.0, font);
        let entry = swatch + 4.0 + text_width(&shown, size);
        if lx > x0 && lx + entry > max_x {
            line += 1;
            lx = x0;
        }
        let y = y0 + line as f64 * line_h;
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{swatch}\" height=\"{swatch}\" fill=\"{}\"/>\n",
            fmt(lx),
            fmt(y + 2.0),
            PALETTE[k % PALETTE.len()]
        ));
        s.push_str(&fitted_text(
            name,
            lx + swatch + 4.0,
            y + 2.0 + swatch - 1.0,
            "start",
            max_x - x0 - swatch - 4.0,
            font,
        ));
        lx += entry + 14.0;
    }
    let lines = if names.is_empty() { 0 } else { line + 1 };
    (s, lines as f64 * line_h)
}

/// Estimated width of `text` at `font_size`. Plots embed no font metrics, so layout reserves
/// 0.6 em per character, about the widest average of common sans-serif faces.
pub fn text_width(text: &str, font_size: f64) -> f64 {
    0.6 * font_size * text.chars().count() as f64
}

/// Every `<text>` element of `svg` whose estimated extent ([`text_width`], one em tall) leaves
/// the root `viewBox`, described for a test failure; empty when all text is inside. A layout
/// check for tests and callers: text past the viewBox is clipped by the browser.
pub fn text_outside_viewbox(svg: &str) -> Vec<String> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let start = tag.find(&key)? + key.len();
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].to_string())
    };
    let Some(root_end) = svg.find('>') else {
        return vec!["no root element".to_string()];
    };
    let root = &svg[..root_end];
    let view: Vec<f64> = attr(root, "viewBox")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [vx, vy, vw, vh] = view[..] else {
        return vec!["no viewBox on the root element".to_string()];
    };
    let root_font: f64 = attr(root, "font-size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(16.0);
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        rest = &rest[start..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let tag = &rest[..open_end];
        let Some(close) = rest.find("</text>") else {
            break;
        };
        let inner = &rest[open_end + 1..close];
        rest = &rest[close..];
        // Visible text only: nested `<title>` tooltips are not drawn.
        let visible = match inner.find('<') {
            Some(i) => &inner[..i],
            None => inner,
        };
        let text = visible
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        let num = |name: &str| attr(tag, name).and_then(|v| v.parse::<f64>().ok());
        let (x, y) = (num("x").unwrap_or(0.0), num("y").unwrap_or(0.0));
        let size = num("font-size").unwrap_or(root_font);
        let w = text_width(&text, size);
        let (x0, x1) = match attr(tag, "text-anchor").as_deref() {
            Some("middle") => (x - w / 2.0, x + w / 2.0),
            Some("end") => (x - w, x),
            _ => (x, x + w),
        };
        let (y0, y1) = (y - 0.8 * size, y + 0.2 * size);
        let eps = 1e-6;
        if x0 < vx - eps || x1 > vx + vw + eps || y0 < vy - eps || y1 > vy + vh + eps {
            out.push(format!(
                "{text:?} spans x {x0:.1}..{x1:.1}, y {y0:.1}..{y1:.1} outside the viewBox {vx} {vy} {vw} {vh}"
            ));
        }
    }
    out
}

fn fmt3(x: f64) -> String {
    format!("{x:.3}")
}

/// Lines with markers over a numeric x axis (linear, or logarithmic when `log_x` and every x
/// is positive), one colour per series from [`PALETTE`] with a legend on top. Points with a
/// non-finite value are left out; each point's value is its tooltip.
pub fn line_chart(
    series: &[(String, Vec<(f64, f64)>)],
    x_label: &str,
    y_label: &str,
    log_x: bool,
    title: &str,
) -> String {
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let log_x = log_x && points.iter().all(|(x, _)| *x > 0.0);
    let tx = |x: f64| if log_x { x.log10() } else { x };
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in &points {
        x_lo = x_lo.min(tx(x));
        x_hi = x_hi.max(tx(x));
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    if points.is_empty() {
        (x_lo, x_hi, y_lo, y_hi) = (0.0, 1.0, 0.0, 1.0);
    }
    if x_hi - x_lo < 1e-12 {
        x_lo -= 0.5;
        x_hi += 0.5;
    }
    let pad = ((y_hi - y_lo) * 0.08).max(1e-3);
    let (y_lo, y_hi) = (y_lo - pad, y_hi + pad);
    let width = 640.0;
    let font = 12.0;
    let names: Vec<String> = series.iter().map(|(n, _)| n.clone()).collect();
    let (legend_svg, legend_h) = legend(&names, 10.0, width - 10.0, 6.0, font);
    let (left, right) = (64.0, 20.0);
    let top = legend_h + 30.0;
    let plot_h = 240.0;
    let plot_w = width - left - right;
    let height = top + plot_h + 50.0;
    let px = |x: f64| left + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w;
    let py = |y: f64| top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"{font}\">\n<title>{t}</title>\n",
        t = escape_html(title)
    );
    s.push_str(&legend_svg);
    for t in ticks(y_lo, y_hi, 5) {
        s.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#e5e5e5\"/>\n<text x=\"{2}\" y=\"{3}\" text-anchor=\"end\" fill=\"#444\">{4}</text>\n",
            fmt(py(t)),
            fmt(left + plot_w),
            fmt(left - 6.0),
            fmt(py(t) + 4.0),
            format_tick(t)
        ));
    }
    let mut xs: Vec<f64> = points.iter().map(|(x, _)| *x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    // Ticks at the data's own x values (few, and the ones that were measured).
    let mut last_right = f64::NEG_INFINITY;
    for &x in &xs {
        let label = format_tick(x);
        let half = text_width(&label, font) / 2.0;
        if px(x) - half < last_right + 4.0 {
            continue;
        }
        last_right = px(x) + half;
        s.push_str(&format!(
            "<line x1=\"{0}\" y1=\"{top}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#f0f0f0\"/>\n<text x=\"{0}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#444\">{3}</text>\n",
            fmt(px(x)),
            fmt(top + plot_h),
            fmt(top + plot_h + 16.0),
            label
        ));
    }
    s.push_str(&format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#888\"/>\n",
        fmt(plot_w)
    ));
    s.push_str(&fitted_text(
        x_label,
        left + plot_w / 2.0,
        top + plot_h + 38.0,
        "middle",
        plot_w,
        font,
    ));
    // The y axis is named above the plot, where it needs no turning.
    s.push_str(&fitted_text(
        y_label,
        left,
        top - 8.0,
        "start",
        plot_w,
        font,
    ));
    for (k, (name, pts)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let mut pts: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_x || *x > 0.0))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() > 1 {
            let d: Vec<String> = pts
                .iter()
                .enumerate()
                .map(|(i, &(x, y))| {
                    format!(
                        "{}{} {}",
                        if i == 0 { "M" } else { "L" },
                        fmt(px(x)),
                        fmt(py(y))
                    )
                })
                .collect();
            s.push_str(&format!(
                "<path d=\"{}\" stroke=\"{colour}\" stroke-width=\"2\" fill=\"none\"/>\n",
                d.join("")
            ));
        }
        for (x, y) in pts {
            s.push_str(&format!(
                "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{colour}\"><title>{}</title></circle>\n",
                fmt(px(x)),
                fmt(py(y)),
                escape_html(&format!("{name}: {} at {}", fmt3(y), format_tick(x)))
            ));
        }
    }
    s.push_str("</svg>");
    s
}

/// A matrix of values as coloured cells with the value written in each (rows and columns
/// labelled, a missing value drawn grey and written `n/a`). Colours run from light (lowest)
/// to dark blue (highest), or the reverse when `lower_is_darker`.
pub fn heatmap(
    rows: &[String],
    columns: &[String],
    values: &[Vec<Option<f64>>],
    lower_is_darker: bool,
    title: &str,
) -> String {
    let finite: Vec<f64> = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let font = 12.0;
    let widest = rows.iter().map(|r| text_width(r, font)).fold(0.0, f64::max);
    let left = (widest + 16.0).clamp(60.0, 260.0);
    let cell_w = 86.0;
    let cell_h = 30.0;
    let head_w = columns
        .iter()
        .map(|c| text_width(c, font))
        .fold(0.0, f64::max);
    // Column labels sit above the cells, turned when they are wider than a cell.
    let turned = head_w > cell_w - 8.0;
    let top = if turned {
        head_w.min(160.0) * 0.75 + 16.0
    } else {
        26.0
    };
    // A turned label runs up and to the right of its column's centre: leave room past the
    // last column for its horizontal extent (cos 40° of its length).
    let overhang = if turned {
        (head_w.min(160.0) * 0.77 - cell_w / 2.0).max(0.0)
    } else {
        0.0
    };
    let width = left + cell_w * columns.len() as f64 + 20.0 + overhang;
    let height = top + cell_h * rows.len() as f64 + 12.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {0} {1}\" width=\"{0}\" height=\"{1}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"{font}\">\n<title>{t}</title>\n",
        fmt(width),
        fmt(height),
        t = escape_html(title)
    );
    for (j, c) in columns.iter().enumerate() {
        let cx = left + cell_w * (j as f64 + 0.5);
        if turned {
            let (shown, size) = fit(c, 160.0, font);
            s.push_str(&format!(
                "<text x=\"{0}\" y=\"{1}\" text-anchor=\"start\" fill=\"#222\" font-size=\"{2}\" transform=\"rotate(-40 {0} {1})\">{3}<title>{4}</title></text>\n",
                fmt(cx),
                fmt(top - 6.0),
                fmt(size),
                escape_html(&shown),
                escape_html(c)
            ));
        } else {
            s.push_str(&fitted_text(c, cx, top - 8.0, "middle", cell_w - 4.0, font));
        }
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + cell_h * i as f64;
        s.push_str(&fitted_text(
            r,
            left - 8.0,
            y + cell_h / 2.0 + 4.0,
            "end",
            left - 12.0,
            font,
        ));
        for (j, column) in columns.iter().enumerate() {
            let x = left + cell_w * j as f64;
            let v = values
                .get(i)
                .and_then(|row| row.get(j))
                .copied()
                .flatten()
                .filter(|v| v.is_finite());
            let (fill, ink, text) = match v {
                None => ("#e0e0e0".to_string(), "#555", "n/a".to_string()),
                Some(v) => {
                    let mut t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                    if lower_is_darker {
                        t = 1.0 - t;
                    }
                    // From #eef4fb to #08306b.
                    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
                    let fill = format!(
                        "#{:02x}{:02x}{:02x}",
                        mix(238.0, 8.0),
                        mix(244.0, 48.0),
                        mix(251.0, 107.0)
                    );
                    (fill, if t > 0.55 { "#ffffff" } else { "#111111" }, fmt3(v))
                }
            };
            s.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{cell_w}\" height=\"{cell_h}\" fill=\"{fill}\" stroke=\"#ffffff\"><title>{}</title></rect>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>\n",
                fmt(x),
                fmt(y),
                escape_html(&format!("{r} → {column}: {text}")),
                fmt(x + cell_w / 2.0),
                fmt(y + cell_h / 2.0 + 4.0),
                text
            ));
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_draws_every_finite_point_inside_the_view() {
        let svg = line_chart(
            &[
                (
                    "soft label".into(),
                    vec![(5.0, 0.7), (50.0, 0.6), (500.0, f64::NAN)],
                ),
                ("per annotator".into(), vec![(5.0, 0.65), (50.0, 0.5)]),
            ],
            "labels per annotator",
            "soft CE",
            true,
            "curve",
        );
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("<path d=\"M").count(), 2);
        assert!(
            text_outside_viewbox(&svg).is_empty(),
            "{:?}",
            text_outside_viewbox(&svg)
        );
    }

    #[test]
    fn heatmap_writes_each_value_and_marks_missing_cells() {
        let names = vec!["target group".to_string(), "control".to_string()];
        let svg = heatmap(
            &names,
            &names,
            &[vec![Some(0.31), None], vec![Some(0.42), Some(0.25)]],
            true,
            "pools",
        );
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains(">0.310<") && svg.contains(">n/a<") && svg.contains(">0.250<"));
        // The lowest value is the darkest cell when lower is better.
        assert!(
            svg.contains("fill=\"#08306b\" stroke=\"#ffffff\"><title>control → control: 0.250")
        );
        assert!(text_outside_viewbox(&svg).is_empty());
    }

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

    /// Three long model ids and a long metric name: every legend entry is drawn in full, on
    /// as many lines as it takes, and no text leaves the viewBox.
    #[test]
    fn interval_bars_show_every_series_and_keep_text_inside() {
        let series: Vec<String> = [
            "openrouter/meta-llama/llama-3.1-405b-instruct-turbo",
            "anthropic/claude-3-5-sonnet-20241022-long-context",
            "local/qwen2.5-72b-instruct-q4_k_m.gguf [partial]",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let bar = Some(IntervalBar {
            value: 0.5,
            interval: Some([0.4, 0.6]),
        });
        let groups = vec![
            (
                "p_not_stereotyped_given_not_unknown_in_ambiguous_contexts".to_string(),
                vec![bar; 3],
            ),
            ("s".to_string(), vec![bar; 3]),
        ];
        let svg = interval_bars(&groups, &series, Some((0.0, 1.0)), "share", "t");
        for name in &series {
            assert!(svg.contains(&format!(">{name}<")), "legend lacks {name}");
        }
        assert_eq!(svg.matches("<path").count(), 6, "every bar of every series");
        let outside = text_outside_viewbox(&svg);
        assert!(outside.is_empty(), "{outside:#?}");
        let short = interval_bars(&groups, &["M1".into()], Some((0.0, 1.0)), "share", "t");
        let height = |svg: &str| -> f64 {
            let key = "height=\"";
            let at = svg.find(key).unwrap() + key.len();
            svg[at..at + svg[at..].find('"').unwrap()].parse().unwrap()
        };
        assert!(
            height(&svg) > height(&short),
            "the chart grows with its series"
        );
    }

    #[test]
    fn the_viewbox_check_finds_clipped_text() {
        let svg = "<svg viewBox=\"0 0 100 50\" font-size=\"10\"><text x=\"95\" y=\"20\">abc</text><text x=\"50\" y=\"20\" text-anchor=\"middle\">ok<title>a very long tooltip</title></text></svg>";
        let outside = text_outside_viewbox(svg);
        assert_eq!(outside.len(), 1, "{outside:?}");
        assert!(outside[0].starts_with("\"abc\""));
    }

    #[test]
    fn box_plots_and_stacked_bars_keep_long_labels_inside() {
        let long = "a_response_type_with_a_rather_long_descriptive_name".to_string();
        let boxes = box_plot(&[(long.clone(), vec![1.0, 2.0])], "reward", "t");
        let segments: Vec<String> = (0..6).map(|k| format!("{long}_{k}")).collect();
        let bars = stacked_bars(&[(long.clone(), vec![1; 6])], &segments, "t");
        for svg in [&boxes, &bars] {
            let outside = text_outside_viewbox(svg);
            assert!(outside.is_empty(), "{outside:#?}");
            assert!(
                svg.contains(&format!("<title>{long} (n=")),
                "full label kept as a tooltip"
            );
        }
        for name in &segments {
            assert!(bars.contains(&format!(">{name}<")), "legend lacks {name}");
        }
    }
}
