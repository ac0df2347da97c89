//! How well a grader's probabilities agree with human labels: per proposition positives,
//! accuracy, precision and recall at the decision threshold ([`THRESHOLD`]), AUROC, expected
//! calibration error, and a reliability diagram (hand-written SVG, n printed per bin), rendered
//! as JSON, Markdown and HTML.
//!
//! Pure: takes grades and labels in memory, returns values and strings.

use std::fmt::Write as _;

use arbiter_core::Sample;
use serde::Serialize;

use crate::grader::SampleGrades;

/// Number of equal-width probability bins for ECE and the diagram.
pub const BINS: usize = 10;

/// The decision threshold on P(yes) behind accuracy, precision and recall: a proposition holds
/// when its probability is at least this. Graders decide at 0.5 and calibration is told no
/// other cut.
pub const THRESHOLD: f64 = 0.5;

/// One reliability bin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    /// Lower edge.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Predictions falling in the bin.
    pub count: usize,
    /// Mean predicted probability (NaN-free: 0 when empty).
    pub mean_predicted: f64,
    /// Share labelled yes.
    pub observed: f64,
}

/// Agreement of one proposition's probabilities with the human labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropositionCalibration {
    /// Proposition name.
    pub name: String,
    /// Samples with both a label and a probability.
    pub n: usize,
    /// Of which labelled yes.
    pub positives: usize,
    /// Samples with a label but no probability (grading failed).
    pub missing: usize,
    /// Samples whose probability carried a flag.
    pub flagged: usize,
    /// Share with (p ≥ [`THRESHOLD`]) == label.
    pub accuracy: f64,
    /// Of the samples called yes (p ≥ [`THRESHOLD`]), the share labelled yes; `None` when none
    /// is called yes.
    pub precision: Option<f64>,
    /// Of the samples labelled yes, the share called yes; `None` without positives.
    pub recall: Option<f64>,
    /// Area under the ROC curve; `None` when only one class is present.
    pub auroc: Option<f64>,
    /// Expected calibration error over [`BINS`] bins.
    pub ece: f64,
    /// Mean squared error of p against the 0/1 label.
    pub brier: f64,
    /// Reliability bins.
    pub bins: Vec<Bin>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationReport {
    /// Grader description.
    pub grader: String,
    /// Labelled data name.
    pub data: String,
    /// Minimum positives for a proposition to enter the mean AUROC.
    pub min_positives: usize,
    /// The decision threshold of accuracy, precision and recall ([`THRESHOLD`]).
    pub threshold: f64,
    /// Mean AUROC over propositions with at least `min_positives` positives.
    pub mean_auroc: Option<f64>,
    /// Propositions in that mean.
    pub n_in_mean: usize,
    /// One entry per proposition, in the order given.
    pub propositions: Vec<PropositionCalibration>,
}

/// AUROC by the rank-sum (Mann–Whitney) statistic, ties counted as one half.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum_pos += mid_rank;
            }
        }
        i = j + 1;
    }
    let pos_f = pos as f64;
    Some((rank_sum_pos - pos_f * (pos_f + 1.0) / 2.0) / (pos_f * neg as f64))
}

/// Reliability bins and the expected calibration error.
pub fn reliability(scores: &[f64], labels: &[bool]) -> (Vec<Bin>, f64) {
    let mut sums = vec![(0usize, 0.0f64, 0usize); BINS];
    for (&p, &y) in scores.iter().zip(labels) {
        let b = ((p * BINS as f64) as usize).min(BINS - 1);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += usize::from(y);
    }
    let n = scores.len().max(1) as f64;
    let mut ece = 0.0;
    let bins = sums
        .into_iter()
        .enumerate()
        .map(|(b, (count, psum, pos))| {
            let (mean_predicted, observed) = if count > 0 {
                (psum / count as f64, pos as f64 / count as f64)
            } else {
                (0.0, 0.0)
            };
            ece += count as f64 / n * (mean_predicted - observed).abs();
            Bin {
                lo: b as f64 / BINS as f64,
                hi: (b + 1) as f64 / BINS as f64,
                count,
                mean_predicted,
                observed,
            }
        })
        .collect();
    (bins, ece)
}

/// Compare grades with the samples' human labels. Grades and samples are matched by position
/// (the grader returns one entry per sample in input order).
pub fn calibrate(
    grader: &str,
    data: &str,
    samples: &[Sample],
    grades: &[SampleGrades],
    propositions: &[String],
    min_positives: usize,
) -> CalibrationReport {
    let mut out = Vec::new();
    for name in propositions {
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        let (mut missing, mut flagged) = (0, 0);
        for (sample, graded) in samples.iter().zip(grades) {
            let Some(&label) = sample.propositions.get(name) else {
                continue;
            };
            match graded.grades.get(name) {
                Some(g) if g.p_yes.is_some() => {
                    scores.push(g.p_yes.unwrap_or_default());
                    labels.push(label);
                    flagged += usize::from(g.flag.is_some());
                }
                _ => missing += 1,
            }
        }
        let positives = labels.iter().filter(|&&l| l).count();
        let correct = scores
            .iter()
            .zip(&labels)
            .filter(|&(&p, &y)| (p >= THRESHOLD) == y)
            .count();
        let called = scores.iter().filter(|&&p| p >= THRESHOLD).count();
        let hits = scores
            .iter()
            .zip(&labels)
            .filter(|&(&p, &y)| p >= THRESHOLD && y)
            .count();
        let n = scores.len();
        let (bins, ece) = reliability(&scores, &labels);
        let brier = scores
            .iter()
            .zip(&labels)
            .map(|(&p, &y)| (p - f64::from(u8::from(y))).powi(2))
            .sum::<f64>()
            / n.max(1) as f64;
        out.push(PropositionCalibration {
            name: name.clone(),
            n,
            positives,
            missing,
            flagged,
            accuracy: correct as f64 / n.max(1) as f64,
            precision: (called > 0).then(|| hits as f64 / called as f64),
            recall: (positives > 0).then(|| hits as f64 / positives as f64),
            auroc: auroc(&scores, &labels),
            ece,
            brier,
            bins,
        });
    }
    let in_mean: Vec<f64> = out
        .iter()
        .filter(|c| c.positives >= min_positives)
        .filter_map(|c| c.auroc)
        .collect();
    CalibrationReport {
        grader: grader.into(),
        data: data.into(),
        min_positives,
        threshold: THRESHOLD,
        mean_auroc: (!in_mean.is_empty())
            .then(|| in_mean.iter().sum::<f64>() / in_mean.len() as f64),
        n_in_mean: in_mean.len(),
        propositions: out,
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

impl CalibrationReport {
    /// A Markdown table, one row per proposition.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Grader calibration\n");
        let _ = writeln!(s, "- grader: `{}`\n- data: `{}`", self.grader, self.data);
        let _ = writeln!(
            s,
            "- mean AUROC over the {} propositions with ≥ {} positives: **{}**",
            self.n_in_mean,
            self.min_positives,
            fmt_opt(self.mean_auroc)
        );
        let _ = writeln!(s, "- {}\n", self.threshold_line());
        let t = self.threshold;
        let _ = writeln!(
            s,
            "| proposition | n | positives | missing | flagged | accuracy@{t} | AUROC | ECE | Brier | precision@{t} | recall@{t} |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for c in &self.propositions {
            let _ = writeln!(
                s,
                "| {}{} | {} | {} | {} | {} | {:.3} | {} | {:.3} | {:.3} | {} | {} |",
                c.name,
                if c.positives >= self.min_positives {
                    ""
                } else {
                    " (few positives)"
                },
                c.n,
                c.positives,
                c.missing,
                c.flagged,
                c.accuracy,
                fmt_opt(c.auroc),
                c.ece,
                c.brier,
                fmt_opt(c.precision),
                fmt_opt(c.recall)
            );
        }
        s
    }

    fn threshold_line(&self) -> String {
        format!(
            "decision threshold: P(yes) ≥ {} (the graders' cut; calibration was given no other) for accuracy, precision and recall",
            self.threshold
        )
    }

    /// A standalone HTML page: the table plus one reliability diagram per proposition.
    pub fn to_html(&self) -> String {
        let mut s = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Grader calibration</title>\n<style>body{font-family:sans-serif;margin:2em;overflow-wrap:anywhere}table{border-collapse:collapse;max-width:100%}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;overflow-wrap:anywhere}td:first-child,th:first-child{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:12px}svg{max-width:100%;height:auto}</style></head><body>\n",
        );
        let _ = writeln!(
            s,
            "<h1>Grader calibration</h1><p>grader <code>{}</code>, data <code>{}</code>; mean AUROC over the {} propositions with ≥ {} positives: <b>{}</b></p><p>{}.</p>",
            escape(&self.grader),
            escape(&self.data),
            self.n_in_mean,
            self.min_positives,
            fmt_opt(self.mean_auroc),
            escape(&self.threshold_line())
        );
        let t = self.threshold;
        let _ = writeln!(
            s,
            "<table><tr><th>proposition</th><th>n</th><th>positives</th><th>missing</th><th>flagged</th><th>accuracy@{t}</th><th>AUROC</th><th>ECE</th><th>Brier</th><th>precision@{t}</th><th>recall@{t}</th></tr>"
        );
        for c in &self.propositions {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
                escape(&c.name),
                c.n,
                c.positives,
                c.missing,
                c.flagged,
                c.accuracy,
                fmt_opt(c.auroc),
                c.ece,
                c.brier,
                fmt_opt(c.precision),
                fmt_opt(c.recall)
            );
        }
        s.push_str("</table>\n<h2>Reliability diagrams</h2><p>Bars: the share labelled yes in each bin of predicted P(yes), wider for fuller bins; dots: the bin's mean prediction, area proportional to its n, printed under the axis.</p><div class=\"grid\">\n");
        for c in &self.propositions {
            s.push_str(&reliability_svg(c));
            s.push('\n');
        }
        s.push_str("</div></body></html>\n");
        s
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Split `text` into lines of at most `max_chars`, breaking after `_`, `-`, `/` or a space
/// where one is near the end of a line, else inside a word.
fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut lines = Vec::new();
    let mut rest: Vec<char> = text.chars().collect();
    while rest.len() > max_chars {
        let cut = rest[..max_chars]
            .iter()
            .rposition(|c| matches!(c, '_' | '-' | '/' | ' '))
            .filter(|&i| i + 1 >= max_chars / 2)
            .map_or(max_chars, |i| i + 1);
        lines.push(
            rest[..cut]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_string(),
        );
        rest.drain(..cut);
    }
    lines.push(rest.into_iter().collect());
    lines
}

/// Width of `chars` characters at `font` px, reserving 0.6 em each (no font metrics here).
fn text_px(chars: usize, font: f64) -> f64 {
    0.6 * font * chars as f64
}

/// A 240-wide reliability diagram: the diagonal, one bar per non-empty bin at its observed rate
/// (width ∝ count), a dot at (mean predicted, observed) whose area is proportional to the bin's
/// count, and each bin's n printed under the axis, so a 1-sample bin does not pass for a full
/// one. The proposition's name wraps over as many lines as it needs (at most four, then it is
/// shortened, whole in a tooltip); every text stays inside the viewBox.
pub fn reliability_svg(c: &PropositionCalibration) -> String {
    let (w, pad) = (240.0, 30.0);
    let plot = w - 2.0 * pad;
    let title_font = 11.0;
    let max_chars = ((w - 8.0) / text_px(1, title_font)).floor() as usize;
    let mut title = wrap(&c.name, max_chars);
    let full_name = title.len() > 4;
    if full_name {
        title.truncate(4);
        let last = &mut title[3];
        let kept: String = last.chars().take(max_chars.saturating_sub(1)).collect();
        *last = format!("{kept}…");
    }
    let header = title.len() as f64 * 13.0 + 16.0;
    let x = |v: f64| pad + v * plot;
    let y = |v: f64| header + 8.0 + (1.0 - v) * plot;
    let h = y(0.0) + 50.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"10\">"
    );
    if full_name {
        let _ = write!(s, "<title>{}</title>", escape(&c.name));
    }
    for (k, line) in title.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{title_font}\">{}</text>",
            w / 2.0,
            14.0 + 13.0 * k as f64,
            escape(line)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">n={}, AUROC {}, ECE {:.3}</text>",
        w / 2.0,
        header + 1.0,
        c.n,
        fmt_opt(c.auroc),
        c.ece
    );
    let _ = write!(
        s,
        "<rect x=\"{}\" y=\"{}\" width=\"{plot}\" height=\"{plot}\" fill=\"none\" stroke=\"#999\"/>",
        x(0.0),
        y(1.0)
    );
    let _ = write!(
        s,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>",
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    let max_count = c.bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let count_y = y(0.0) + 25.0;
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{count_y:.1}\" text-anchor=\"end\" font-size=\"8\" fill=\"#444\">n</text>",
        x(0.0) - 4.0
    );
    for b in c.bins.iter().filter(|b| b.count > 0) {
        let share = b.count as f64 / max_count;
        let bin_w = (b.hi - b.lo) * plot;
        let bw = bin_w * (0.25 + 0.7 * share);
        let cx = x((b.lo + b.hi) / 2.0);
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#4a7ebb\" fill-opacity=\"0.45\"><title>{} in [{:.1}, {:.1}): observed {:.2}</title></rect>",
            cx - bw / 2.0,
            y(b.observed),
            y(0.0) - y(b.observed),
            b.count,
            b.lo,
            b.hi,
            b.observed
        );
        // Area ∝ n: the fullest bin gets radius 7; a floor keeps a lone sample visible.
        let r = (7.0 * share.sqrt()).max(1.2);
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r:.2}\" fill=\"#c0392b\" fill-opacity=\"0.8\"/>",
            x(b.mean_predicted),
            y(b.observed)
        );
        let digits = b.count.to_string();
        let font = (bin_w / text_px(digits.len(), 1.0)).min(8.0);
        let _ = write!(
            s,
            "<text class=\"count\" x=\"{cx:.1}\" y=\"{count_y:.1}\" text-anchor=\"middle\" font-size=\"{:.1}\" fill=\"#444\">{digits}</text>",
            (font * 10.0).floor() / 10.0
        );
    }
    for t in [0.0, 0.5, 1.0] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{t}</text>",
            x(t),
            y(0.0) + 12.0,
            x(0.0) - 4.0,
            y(t) + 3.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">predicted P(yes); dot area ∝ n</text></svg>",
        w / 2.0,
        h - 6.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grader::PropositionGrade;
    use arbiter_core::SampleId;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    #[test]
    fn auroc_matches_hand_computed_values() {
        assert_eq!(
            auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auroc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[0.9, 0.1], &[false, true]), Some(0.0));
        assert_eq!(auroc(&[0.9, 0.1], &[true, true]), None);
    }

    #[test]
    fn ece_is_zero_when_calibrated_and_large_when_not() {
        let scores = vec![0.25; 4];
        let (_, ece) = reliability(&scores, &[true, false, false, false]);
        assert!(ece.abs() < 1e-12);
        let (bins, ece) = reliability(&[1.0, 1.0], &[false, false]);
        assert!((ece - 1.0).abs() < 1e-12);
        assert_eq!(bins[9].count, 2, "p = 1.0 lands in the last bin");
    }

    #[test]
    fn report_counts_missing_and_flagged_and_renders() {
        let samples: Vec<Sample> = [true, false, true]
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                Sample::from_value(
                    json!({"prompt": [{"role": "user", "content": "q"}], "completion": "a",
                    "propositions": {"apology": y}}),
                    i,
                )
                .unwrap()
            })
            .collect();
        let grade = |p: Option<f64>, flag| {
            let mut grades = BTreeMap::new();
            grades.insert(
                "apology".to_string(),
                PropositionGrade {
                    p_yes: p,
                    mass: None,
                    flag,
                },
            );
            grades
        };
        let grades = vec![
            SampleGrades {
                id: SampleId::Index(0),
                grades: grade(Some(0.9), None),
            },
            SampleGrades {
                id: SampleId::Index(1),
                grades: grade(Some(0.2), Some(arbiter_core::GradeFlag::LowMass)),
            },
            SampleGrades {
                id: SampleId::Index(2),
                grades: grade(None, Some(arbiter_core::GradeFlag::Error)),
            },
        ];
        let r = calibrate("g", "d.jsonl", &samples, &grades, &["apology".into()], 1);
        let c = &r.propositions[0];
        assert_eq!((c.n, c.positives, c.missing, c.flagged), (2, 1, 1, 1));
        assert_eq!(c.accuracy, 1.0);
        assert_eq!(c.auroc, Some(1.0));
        assert_eq!(r.mean_auroc, Some(1.0));
        assert!(
            r.to_markdown()
                .contains("| apology | 2 | 1 | 1 | 1 | 1.000 | 1.000 |")
        );
        let html = r.to_html();
        assert!(html.contains("<svg") && html.contains("</html>"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["propositions"][0]["positives"], json!(1));
    }

    /// One proposition's report from bare scores and labels, through [`calibrate`].
    fn report_of(name: &str, scores: &[f64], labels: &[bool]) -> CalibrationReport {
        let samples: Vec<Sample> = labels
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                Sample::from_value(
                    json!({"prompt": [{"role": "user", "content": "q"}], "completion": "a",
                    "propositions": {name: y}}),
                    i,
                )
                .unwrap()
            })
            .collect();
        let grades: Vec<SampleGrades> = scores
            .iter()
            .enumerate()
            .map(|(i, &p)| SampleGrades {
                id: SampleId::Index(i as u64),
                grades: BTreeMap::from([(
                    name.to_string(),
                    PropositionGrade {
                        p_yes: Some(p),
                        mass: None,
                        flag: None,
                    },
                )]),
            })
            .collect();
        calibrate("g", "d.jsonl", &samples, &grades, &[name.to_string()], 1)
    }

    /// `(attribute value, text)` of every `<tag …>` element carrying `attr` in `svg`.
    fn elements(svg: &str, tag: &str, attr: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for piece in svg.split(&format!("<{tag} ")).skip(1) {
            let open = &piece[..piece.find('>').unwrap()];
            let key = format!("{attr}=\"");
            let Some(at) = open.find(&key) else { continue };
            let value = &open[at + key.len()..];
            let value = value[..value.find('"').unwrap()].to_string();
            let rest = &piece[open.len() + 1..];
            let text = rest[..rest.find('<').unwrap_or(0)].to_string();
            out.push((value, text));
        }
        out
    }

    /// A 1-sample, a 20-sample and a 150-sample bin under a long proposition name: the title
    /// stays whole and inside the viewBox, every bin prints its n, and marker area grows with n.
    #[test]
    fn reliability_diagram_keeps_its_title_and_shows_bin_counts() {
        let name = "threatening_language_or_incitement_against_a_protected_group";
        let mut scores = vec![0.05];
        let mut labels = vec![true];
        scores.extend(std::iter::repeat_n(0.55, 20));
        labels.extend((0..20).map(|i| i % 2 == 0));
        scores.extend(std::iter::repeat_n(0.95, 150));
        labels.extend((0..150).map(|i| i % 10 != 0));
        let r = report_of(name, &scores, &labels);
        let svg = reliability_svg(&r.propositions[0]);

        let outside = arbiter_report::svg::text_outside_viewbox(&svg);
        assert!(outside.is_empty(), "{outside:#?}");
        let visible: String = elements(&svg, "text", "x")
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert!(visible.contains(name), "{visible}");

        let counts: Vec<String> = elements(&svg, "text", "class")
            .into_iter()
            .filter(|(c, _)| c == "count")
            .map(|(_, t)| t)
            .collect();
        assert_eq!(counts, ["1", "20", "150"]);

        let radii: Vec<f64> = elements(&svg, "circle", "r")
            .into_iter()
            .map(|(r, _)| r.parse().unwrap())
            .collect();
        assert_eq!(radii.len(), 3, "{svg}");
        assert!(radii[0] < radii[1] && radii[1] < radii[2], "{radii:?}");
        let area_ratio = (radii[2] / radii[1]).powi(2);
        assert!((area_ratio - 150.0 / 20.0).abs() < 0.2, "{area_ratio}");
    }

    /// Hand-computed: at p ≥ 0.5, 0.9, 0.8, 0.7 and 0.6 are called yes (two of them labelled
    /// yes) and the yes labelled 0.4 is missed: precision 2/4, recall 2/3.
    #[test]
    fn precision_and_recall_at_the_threshold() {
        let r = report_of(
            "a",
            &[0.9, 0.8, 0.6, 0.4, 0.3, 0.7],
            &[true, true, false, true, false, false],
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["threshold"], json!(0.5));
        assert_eq!(json["propositions"][0]["precision"], json!(0.5));
        let recall = json["propositions"][0]["recall"].as_f64().unwrap();
        assert!((recall - 2.0 / 3.0).abs() < 1e-12);
        let md = r.to_markdown();
        assert!(md.contains("precision@0.5 | recall@0.5 |"), "{md}");
        assert!(md.contains("| 0.500 | 0.667 |"), "{md}");
        assert!(r.to_html().contains("<td>0.500</td><td>0.667</td>"));

        let none_called = report_of("b", &[0.1, 0.2], &[true, false]);
        let json = serde_json::to_value(&none_called).unwrap();
        assert_eq!(json["propositions"][0]["precision"], Value::Null);
        assert_eq!(json["propositions"][0]["recall"], json!(0.0));
    }
}
