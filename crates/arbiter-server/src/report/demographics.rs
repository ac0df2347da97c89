//! Demographics as released: read from the release snapshot, never from live answers.

use std::collections::{BTreeMap, BTreeSet};

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
    /// True when nothing is shown: all raters together are under k, the question chooses
    /// pools, or the release predates the question.
    pub withheld: bool,
    /// Why the question is withheld, when it is for another reason than fewer than k raters.
    pub note: Option<String>,
}

/// The demographics of a release, per questionnaire question. Questions in `pool_questions`
/// choose pools and are released only as pool classes; a question the release predates is
/// withheld until the next release.
pub fn demographics(
    questions: &[String],
    pool_questions: &BTreeSet<String>,
    snapshot: &Snapshot,
) -> Vec<QuestionGroups> {
    questions
        .iter()
        .map(|q| {
            let withheld = |note: &str| QuestionGroups {
                question: q.clone(),
                groups: BTreeMap::new(),
                merged_small_groups: None,
                withheld: true,
                note: Some(note.to_string()),
            };
            if pool_questions.contains(q) {
                return withheld(
                    "this question chooses pools: its answers are released only as pool classes of at least k raters",
                );
            }
            match snapshot.questions.iter().find(|(id, _)| id == q) {
                Some((_, g)) => QuestionGroups {
                    question: q.clone(),
                    groups: g.groups.clone(),
                    merged_small_groups: g.merged_small_groups,
                    withheld: g.withheld,
                    note: None,
                },
                None => withheld("no release counts this question yet"),
            }
        })
        .collect()
}
