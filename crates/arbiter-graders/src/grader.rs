//! The grader trait: a batch of samples and a set of propositions in, P(yes) per cell out.

use std::collections::BTreeMap;

use arbiter_core::{GradeFlag, GradeRecord, PropositionSpec, Sample, SampleId};

use crate::GraderError;

/// One grader's answer to one proposition about one sample.
///
/// `p_yes` is absent only when the grader could not produce a probability; `flag` then says
/// why. A present `p_yes` may still carry a flag (low label mass, parsed from text).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PropositionGrade {
    /// P(yes) in `[0, 1]`, or `None` when grading failed.
    pub p_yes: Option<f64>,
    /// Probability mass the model put on the yes/no label tokens; `None` for graders that have
    /// no label distribution (the embedded heads).
    pub mass: Option<f64>,
    /// What went wrong, if anything.
    pub flag: Option<GradeFlag>,
}

impl PropositionGrade {
    /// A clean probability.
    pub fn clean(p_yes: f64, mass: Option<f64>) -> Self {
        PropositionGrade {
            p_yes: Some(p_yes),
            mass,
            flag: None,
        }
    }

    /// A failed cell: no probability, flagged `error`.
    pub fn failed() -> Self {
        PropositionGrade {
            p_yes: None,
            mass: None,
            flag: Some(GradeFlag::Error),
        }
    }
}

/// All propositions of one sample, keyed by proposition name.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleGrades {
    /// The graded sample's id.
    pub id: SampleId,
    /// One grade per requested proposition.
    pub grades: BTreeMap<String, PropositionGrade>,
}

impl SampleGrades {
    /// The grades-file line: probabilities where present, flags where set.
    pub fn to_record(&self) -> GradeRecord {
        let mut propositions = BTreeMap::new();
        let mut flags = BTreeMap::new();
        for (name, grade) in &self.grades {
            if let Some(p) = grade.p_yes {
                propositions.insert(name.clone(), p);
            }
            if let Some(flag) = grade.flag {
                flags.insert(name.clone(), flag);
            }
        }
        GradeRecord {
            id: self.id.clone(),
            propositions,
            flags,
        }
    }
}

/// Anything that answers yes/no propositions about samples with a probability.
///
/// Batch-shaped so backends can share work: the embedded model embeds each sample once for all
/// propositions, and the HTTP backend sends a sample's propositions back to back for prefix reuse.
pub trait Grader {
    /// The grader's id for logs and reports: `embedded:all-minilm-l6-v2+heads:DIGEST` (the
    /// heads are part of the instrument), `openai:m@url`.
    fn describe(&self) -> String;

    /// Grade every sample against every proposition. The result has one entry per sample, in
    /// input order. Per-cell problems are flags; `Err` means the grader could not run at all.
    fn grade_batch(
        &self,
        samples: &[Sample],
        propositions: &[PropositionSpec],
    ) -> Result<Vec<SampleGrades>, GraderError>;

    /// [`Grader::grade_batch`] with progress: `progress` is called with the number of samples
    /// of this call graded so far (non-decreasing, ending at `samples.len()` on success). The
    /// default reports once, at the end; graders with finer-grained work report more often.
    fn grade_batch_with_progress(
        &self,
        samples: &[Sample],
        propositions: &[PropositionSpec],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<SampleGrades>, GraderError> {
        let grades = self.grade_batch(samples, propositions)?;
        progress(samples.len());
        Ok(grades)
    }

    /// How many samples to hand to one [`Grader::grade_batch`] call when grading a file: large
    /// for the embedded grader (it sorts a call's texts by length, so bigger calls pad less),
    /// moderate for HTTP graders (results are written and progress shown per call).
    fn preferred_batch_size(&self) -> usize {
        64
    }

    /// One line on requests, cache hits, tokens and cost, for graders that have such things.
    fn usage_summary(&self) -> Option<String> {
        None
    }

    /// Estimated spend so far in US dollars, for cost limits; 0 for graders that cost nothing.
    fn cost_usd(&self) -> f64 {
        0.0
    }

    /// Figures measured on data the grader was not fitted on (leave-one-source-out), shipped
    /// with it; `None` when nobody measured this grader.
    fn validation(&self) -> Option<&crate::Validation> {
        None
    }
}
