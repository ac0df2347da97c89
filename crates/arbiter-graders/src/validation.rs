//! How far to trust a grader on data it never saw: figures measured by leave-one-source-out
//! (fit on every source but one, score the one left out), shipped beside the heads and shown
//! by reports next to every metric the grader produces.

use std::collections::{BTreeMap, BTreeSet};

use arbiter_core::{PropositionSpec, Sample};
use serde::{Deserialize, Serialize};

use crate::GraderError;
use crate::calibration::{auroc, reliability};
use crate::embedded::logistic::Matrix;
use crate::embedded::{FitOptions, Head, fit_heads, predict};

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

/// Agreement of event probabilities with human labels.
pub fn figures(scores: &[f64], labels: &[bool], threshold: f64) -> SourceFigures {
    let n = scores.len();
    let correct = scores
        .iter()
        .zip(labels)
        .filter(|&(&p, &y)| (p >= threshold) == y)
        .count();
    SourceFigures {
        n,
        positives: labels.iter().filter(|&&y| y).count(),
        auroc: auroc(scores, labels),
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        threshold,
        ece: reliability(scores, labels).1,
    }
}

/// A metric event a grader is checked on.
pub struct EventDef<'a> {
    /// Its name in reports (`refusal`, `disallowed_content`, …).
    pub name: &'a str,
    /// The propositions whose probabilities it needs.
    pub needs: Vec<String>,
    /// The human label of the event for a sample, where the sample's source gives one.
    pub human: &'a (dyn Fn(&Sample) -> Option<bool> + Sync),
    /// The event's probability from proposition probabilities (names as in `needs`).
    pub predicted: &'a (dyn Fn(&BTreeMap<String, f64>) -> f64 + Sync),
}

/// How `heads` (for the features `x` of `samples`) agree with the human labels of `event` on
/// the rows `rows` that have one; `None` when none has.
pub fn score_event(
    x: &Matrix,
    samples: &[Sample],
    rows: &[usize],
    heads: &BTreeMap<String, Head>,
    event: &EventDef<'_>,
    threshold: f64,
) -> Option<SourceFigures> {
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    for &i in rows {
        let Some(y) = (event.human)(&samples[i]) else {
            continue;
        };
        let probs: BTreeMap<String, f64> = event
            .needs
            .iter()
            .map(|n| (n.clone(), predict(&heads[n.as_str()], x.row(i))))
            .collect();
        scores.push((event.predicted)(&probs));
        labels.push(y);
    }
    (!scores.is_empty()).then(|| figures(&scores, &labels, threshold))
}

/// The source of a sample (`metadata.source`), `""` when it has none.
fn source(sample: &Sample) -> &str {
    sample
        .metadata
        .get("source")
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

/// The split a sample belongs to within its source (`metadata.split`), if any.
fn split(sample: &Sample) -> Option<&str> {
    sample.metadata.get("split").and_then(|v| v.as_str())
}

/// Leave-one-source-out figures of heads fitted on the features `x` of `samples`.
///
/// For each source: fit the heads `events` need on every other source, predict the source left
/// out, and compare each event with its human labels there. Rows in a `test` split are never
/// fitted on (they stay clean for the split's own check). A source with a `train` split is
/// scored on its other rows; a proposition labelled by no other source (e.g. one only the RBR
/// gold set labels) is fitted on that `train` split, since otherwise the event could not be
/// computed at all; this is the one place a source contributes to its own figures, and it
/// never touches the rows scored. Rows made for training ([`crate::sources::opening_rows`])
/// are fitted on, never scored.
pub fn leave_one_source_out(
    x: &Matrix,
    samples: &[Sample],
    events: &[EventDef<'_>],
    options: FitOptions,
    threshold: f64,
) -> Result<Validation, GraderError> {
    let sources: BTreeSet<&str> = samples.iter().map(source).collect();
    let needed: BTreeSet<&str> = events
        .iter()
        .flat_map(|e| e.needs.iter().map(String::as_str))
        .collect();
    let mut validation = Validation {
        method: "leave-one-source-out".into(),
        events: BTreeMap::new(),
    };
    for &left in &sources {
        let train: Vec<usize> = (0..samples.len())
            .filter(|&i| source(&samples[i]) != left && split(&samples[i]) != Some("test"))
            .collect();
        let own_train: Vec<usize> = (0..samples.len())
            .filter(|&i| source(&samples[i]) == left && split(&samples[i]) == Some("train"))
            .collect();
        let scored: Vec<usize> = (0..samples.len())
            .filter(|&i| {
                source(&samples[i]) == left
                    && split(&samples[i]) != Some("train")
                    && !crate::sources::is_augmented(&samples[i])
            })
            .collect();
        let mut heads = BTreeMap::new();
        for &name in &needed {
            let spec = [PropositionSpec {
                name: name.to_string(),
                question: String::new(),
            }];
            let labelled = |rows: &[usize]| {
                rows.iter()
                    .any(|&i| samples[i].propositions.contains_key(name))
            };
            let rows = if labelled(&train) {
                &train
            } else if labelled(&own_train) {
                &own_train
            } else {
                return Err(GraderError::Training(format!(
                    "leaving {left} out: no other source labels {name:?}"
                )));
            };
            heads.extend(fit_heads(x, samples, rows, &spec, options)?);
        }
        for event in events {
            if let Some(f) = score_event(x, samples, &scored, &heads, event, threshold) {
                validation
                    .events
                    .entry(event.name.to_string())
                    .or_default()
                    .insert(left.to_string(), f);
            }
        }
    }
    Ok(validation)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two features: the first predicts the label in every source, the second only in the
    /// source it was drawn for; leaving a source out shows which one generalises.
    fn toy() -> (Matrix, Vec<Sample>) {
        let mut rng = arbiter_core::rng::SeededRng::new(5);
        let mut rows = Vec::new();
        let mut samples = Vec::new();
        for (k, src) in ["a", "b", "c"].iter().enumerate() {
            for i in 0..120 {
                let y = i % 2 == 0;
                let signal = if y { 1.0 } else { -1.0 } + rng.next_f64() - 0.5;
                // A source-specific cue: informative in `a` only, reversed in `b`.
                let cue = match k {
                    0 if y => 1.0,
                    1 if !y => 1.0,
                    _ => 0.0,
                };
                rows.push(vec![signal, cue]);
                let mut s = Sample::from_value(
                    serde_json::json!({"prompt": [{"role": "user", "content": "q"}],
                                       "completion": "r", "propositions": {"p": y}}),
                    i,
                )
                .unwrap();
                s.metadata.insert("source".into(), (*src).into());
                samples.push(s);
            }
        }
        (Matrix::from_rows(&rows).unwrap(), samples)
    }

    #[test]
    fn leaving_a_source_out_scores_it_with_heads_fitted_elsewhere() {
        let (x, samples) = toy();
        let human = |s: &Sample| s.propositions.get("p").copied();
        let predicted = |p: &BTreeMap<String, f64>| p["p"];
        let events = [EventDef {
            name: "p",
            needs: vec!["p".into()],
            human: &human,
            predicted: &predicted,
        }];
        let options = FitOptions {
            allow_missing: true,
            balance_sources: true,
            seed: 1,
        };
        let v = leave_one_source_out(&x, &samples, &events, options, 0.5).unwrap();
        let p = &v.events["p"];
        assert_eq!(p.len(), 3);
        for f in p.values() {
            assert_eq!((f.n, f.positives), (120, 60));
            assert!(f.auroc.unwrap() > 0.95, "{f:?}");
        }
        // Unlabelled everywhere else: an error naming the source and proposition.
        let mut only_a = samples.clone();
        for s in only_a.iter_mut().skip(120) {
            s.propositions.clear();
        }
        let err = leave_one_source_out(&x, &only_a, &events, options, 0.5).unwrap_err();
        assert!(err.to_string().contains("leaving a out"), "{err}");
    }

    #[test]
    fn figures_count_hits_at_the_threshold() {
        let f = figures(&[0.9, 0.2, 0.6, 0.4], &[true, false, false, true], 0.5);
        assert_eq!((f.n, f.positives), (4, 2));
        assert_eq!(f.accuracy, 0.5);
        assert_eq!(f.auroc, Some(0.75));
    }

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
