//! How far to trust a grader on data it never saw: figures measured by leave-one-source-out
//! (fit on every source but one, score the one left out), shipped beside the heads and shown
//! by reports next to every metric the grader produces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One event's agreement with human labels on one source left out of fitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFigures {
    /// Samples of the source with a human label for the event.
    pub n: usize,
    /// Of which labelled yes.
    pub positives: usize,
    /// Area under the ROC curve; `None` when the source has one class only.
    pub auroc: Option<f64>,
    /// Share with `(p ≥ threshold) == label`.
    pub accuracy: f64,
    /// The decision threshold `accuracy` uses.
    pub threshold: f64,
    /// Expected calibration error over ten equal-width bins.
    pub ece: f64,
}

/// Leave-one-source-out figures per event (`refusal`, `fully_complies`, `disallowed_content`, …)
/// and per source.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Validation {
    /// How the figures were measured (`leave-one-source-out`).
    pub method: String,
    /// Event → source left out → figures.
    pub events: BTreeMap<String, BTreeMap<String, SourceFigures>>,
}

impl Validation {
    /// One line per event: the worst source's AUROC and accuracy, for a report's header.
    pub fn summary(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(event, sources)| {
                let worst_auroc = sources
                    .iter()
                    .filter_map(|(s, f)| f.auroc.map(|a| (s, a)))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                let worst_acc = sources
                    .iter()
                    .min_by(|a, b| a.1.accuracy.total_cmp(&b.1.accuracy));
                let mut line = format!("{event}: {} sources left out", sources.len());
                if let Some((s, a)) = worst_auroc {
                    line.push_str(&format!(", lowest AUROC {a:.3} ({s})"));
                }
                if let Some((s, f)) = worst_acc {
                    line.push_str(&format!(", lowest accuracy {:.3} ({s})", f.accuracy));
                }
                line
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_the_worst_source() {
        let fig = |auroc, accuracy| SourceFigures {
            n: 10,
            positives: 5,
            auroc,
            accuracy,
            threshold: 0.5,
            ece: 0.1,
        };
        let mut v = Validation {
            method: "leave-one-source-out".into(),
            ..Default::default()
        };
        v.events.insert(
            "refusal".into(),
            [
                ("a".to_string(), fig(Some(0.9), 0.8)),
                ("b".to_string(), fig(Some(0.7), 0.95)),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(
            v.summary(),
            vec!["refusal: 2 sources left out, lowest AUROC 0.700 (b), lowest accuracy 0.800 (a)"]
        );
    }
}
