//! Demographics as released: read from the release snapshot, never from live answers.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::release::Snapshot;

/// Group counts for one question; groups under k are merged or withheld.
#[derive(Debug, Serialize)]
pub struct QuestionGroups {
    /// Question id.
    pub question: String,
    /// Answer → count, only for groups of at least k (`(no answer)` counts raters who skipped
    /// the question or preferred not to say).
    pub groups: BTreeMap<String, usize>,
    /// Raters in groups merged because some were under k (always at least k).
    pub merged_small_groups: Option<usize>,
    /// True when all raters together are under k, so nothing is shown.
    pub withheld: bool,
}

/// The demographics of a release, per questionnaire question (questions the release predates
/// are withheld).
pub fn demographics(questions: &[String], snapshot: &Snapshot) -> Vec<QuestionGroups> {
    questions
        .iter()
        .map(
            |q| match snapshot.questions.iter().find(|(id, _)| id == q) {
                Some((_, g)) => QuestionGroups {
                    question: q.clone(),
                    groups: g.groups.clone(),
                    merged_small_groups: g.merged_small_groups,
                    withheld: g.withheld,
                },
                None => QuestionGroups {
                    question: q.clone(),
                    groups: BTreeMap::new(),
                    merged_small_groups: None,
                    withheld: true,
                },
            },
        )
        .collect()
}
