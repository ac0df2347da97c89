//! How well a grader's probabilities agree with human labels: per proposition positives,
//! accuracy at 0.5, AUROC, expected calibration error, and a reliability diagram (hand-written
//! SVG), rendered as JSON, Markdown and HTML.
//!
//! Pure: takes grades and labels in memory, returns values and strings.

use std::fmt::Write as _;

use arbiter_core::Sample;
use serde::Serialize;

use crate::grader::SampleGrades;

/// Number of equal-width probability bins for ECE and the diagram.
pub const BINS: usize = 10;

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
    /// Share with (p ≥ 0.5) == label.
    pub accuracy: f64,
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
            .filter(|&(&p, &y)| (p >= 0.5) == y)
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
            "- mean AUROC over the {} propositions with ≥ {} positives: **{}**\n",
            self.n_in_mean,
            self.min_positives,
            fmt_opt(self.mean_auroc)
        );
        let _ = writeln!(
            s,
            "| proposition | n | positives | missing | flagged | accuracy@0.5 | AUROC | ECE | Brier |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for c in &self.propositions {
            let _ = writeln!(
                s,
                "| {}{} | {} | {} | {} | {} | {:.3} | {} | {:.3} | {:.3} |",
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
                c.brier
            );
        }
        s
    }

    /// A standalone HTML page: the table plus one reliability diagram per proposition.
    pub fn to_html(&self) -> String {
        let mut s = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Grader calibration</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>\n",
        );
        let _ = writeln!(
            s,
            "<h1>Grader calibration</h1><p>grader <code>{}</code>, data <code>{}</code>; mean AUROC over the {} propositions with ≥ {} positives: <b>{}</b></p>",
            escape(&self.grader),
            escape(&self.data),
            self.n_in_mean,
            self.min_positives,
            fmt_opt(self.mean_auroc)
        );
        s.push_str("<table><tr><th>proposition</th><th>n</th><th>positives</th><th>missing</th><th>flagged</th><th>accuracy@0.5</th><th>AUROC</th><th>ECE</th><th>Brier</th></tr>\n");
        for c in &self.propositions {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                escape(&c.name),
                c.n,
                c.positives,
                c.missing,
                c.flagged,
                c.accuracy,
                fmt_opt(c.auroc),
                c.ece,
                c.brier
            );
        }
        s.push_str("</table>\n<h2>Reliability diagrams</h2><div class=\"grid\">\n");
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

/// A 240×260 reliability diagram: the diagonal, one bar per non-empty bin at its observed rate
/// (width ∝ count), and a dot at (mean predicted, observed).
pub fn reliability_svg(c: &PropositionCalibration) -> String {
    let (w, h, pad) = (240.0, 260.0, 30.0);
    let plot = w - 2.0 * pad;
    let x = |v: f64| pad + v * plot;
    let y = |v: f64| pad + 20.0 + (1.0 - v) * plot;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"10\">"
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"16\" text-anchor=\"middle\" font-size=\"11\">{} (AUROC {}, ECE {:.3})</text>",
        w / 2.0,
        escape(&c.name),
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
    for b in c.bins.iter().filter(|b| b.count > 0) {
        let bw = (b.hi - b.lo) * plot * (0.25 + 0.7 * b.count as f64 / max_count);
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
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#c0392b\"/>",
            x(b.mean_predicted),
            y(b.observed)
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
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">predicted P(yes)</text></svg>",
        w / 2.0,
        h - 2.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grader::PropositionGrade;
    use arbiter_core::SampleId;
    use serde_json::json;
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
}
