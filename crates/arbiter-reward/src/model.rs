//! [`RewardModel`]: a policy, its fitted weights and a grader, scoring batches of samples the
//! way `arbiter rbr score --features grader` does, one sample at a time or thousands at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arbiter_core::{FieldError, GradeRecord, Sample, SampleId};
use arbiter_graders::Grader;
use arbiter_rbr::pipeline::{self, Prepared};
use arbiter_rbr::reward::{RewardWeights, weight_group};
use arbiter_rbr::{Classification, Policy};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cache::{GradeCache, content_key};

/// The metadata field holding a base reward-model score to add to the RBR term (the paper's
/// total reward is RM + RBR). Absent: 0, the RBR term alone.
pub const BASE_REWARD_FIELD: &str = "base_reward";

/// One sample's reward and everything it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reward {
    /// The sample's id.
    pub id: SampleId,
    /// `base_reward + rbr_reward`: what the trainer optimises.
    pub reward: f64,
    /// The rule-based term: the fitted weights · (class probabilities, proposition P(yes)).
    pub rbr_reward: f64,
    /// `metadata.base_reward`, or 0.
    pub base_reward: f64,
    /// The most probable class under the policy.
    pub class: String,
    /// P(class) for every class of the policy, in policy order.
    pub class_probs: Map<String, Value>,
    /// The grader's P(yes) for every proposition of the policy.
    pub propositions: BTreeMap<String, f64>,
}

/// Why one sample cannot be scored. `index` is its position in the batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// The sample itself is unusable (no response type, no weights for it, a bad base reward).
    #[error("sample {index}: field `{}`: {}", error.field, error.message)]
    Invalid {
        /// Position in the batch.
        index: usize,
        /// The field at fault.
        error: FieldError,
    },
    /// The grader gave no probability for a proposition (a failed request, an answer without a
    /// yes/no token). Never replaced by a guess: the sample has no reward.
    #[error("sample {index}: the grader gave no probability for `{proposition}` ({flag})")]
    Ungraded {
        /// Position in the batch.
        index: usize,
        /// The first proposition without a probability.
        proposition: String,
        /// The grader's flag for it.
        flag: String,
    },
}

impl SampleError {
    /// The sample's position in the batch.
    pub fn index(&self) -> usize {
        match self {
            SampleError::Invalid { index, .. } | SampleError::Ungraded { index, .. } => *index,
        }
    }

    /// The same error for a sample at another position (a request's own numbering).
    pub fn at(self, index: usize) -> SampleError {
        match self {
            SampleError::Invalid { error, .. } => SampleError::Invalid { index, error },
            SampleError::Ungraded {
                proposition, flag, ..
            } => SampleError::Ungraded {
                index,
                proposition,
                flag,
            },
        }
    }
}

/// Grading cost of one [`RewardModel::score_each`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchStats {
    /// Samples handed to the grader (cache misses, each distinct content once).
    pub graded: usize,
    /// Samples answered from the cache (or by another sample of the batch with the same content).
    pub cache_hits: usize,
    /// Wall time spent in the grader.
    pub grader_time: Duration,
}

/// A fitted rule-based reward ready to score: policy + weights + grader.
///
/// Scoring is `pipeline::prepare` (grader P(yes) → class probabilities → feature vector) and
/// `RewardWeights::score`, the same functions `arbiter rbr score` calls, so a sample gets the
/// same reward whichever way it is scored.
pub struct RewardModel {
    policy: Policy,
    weights: RewardWeights,
    grader: Box<dyn Grader + Send + Sync>,
    cache: Option<GradeCache>,
}

impl RewardModel {
    /// Join a policy, weights fitted for it and a grader of its propositions.
    pub fn new(
        policy: Policy,
        weights: RewardWeights,
        grader: Box<dyn Grader + Send + Sync>,
    ) -> Result<RewardModel, String> {
        weights.check_policy(&policy)?;
        Ok(RewardModel {
            policy,
            weights,
            grader,
            cache: None,
        })
    }

    /// Keep the grades of up to `entries` distinct (prompt, completion) contents, so content
    /// seen again (a resent request, a repeated rollout) is not graded twice. 0: no cache.
    pub fn with_cache(mut self, entries: usize) -> RewardModel {
        self.cache = (entries > 0).then(|| GradeCache::new(entries));
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The grader's id (`embedded:…+heads:…`, `openai:m@url`).
    pub fn grader_id(&self) -> String {
        self.grader.describe()
    }

    /// How many samples the grader likes in one call.
    pub fn preferred_batch_size(&self) -> usize {
        self.grader.preferred_batch_size()
    }

    /// Entries in the grade cache (0 without one).
    pub fn cached(&self) -> usize {
        self.cache.as_ref().map_or(0, GradeCache::len)
    }

    /// The checks that need no grader: a response type the weights cover and a numeric base
    /// reward where one is given. Run before queueing, so a bad sample costs no grading.
    pub fn check(&self, sample: &Sample) -> Result<(), FieldError> {
        let rt = sample.response_type.ok_or_else(|| {
            FieldError::new(
                "response_type",
                "is missing; the reward's rules are chosen by response type (hard_refuse, safe_refuse_1, safe_refuse_2, comply)",
            )
        })?;
        let group = weight_group(&self.policy, rt).filter(|g| self.weights.groups.contains_key(g));
        if group.is_none() {
            return Err(FieldError::new(
                "response_type",
                format!(
                    "the weights have no group for {rt}; they cover {}",
                    self.weights
                        .groups
                        .keys()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        base_reward(sample).map(|_| ())
    }

    /// Score every sample: one result per sample, in order. `Err` only when the grader could
    /// not run at all; a sample it could not grade, or that is invalid, gets its own error.
    pub fn score_each(
        &self,
        samples: &[Sample],
    ) -> Result<(Vec<Result<Reward, SampleError>>, BatchStats), arbiter_graders::GraderError> {
        let (grades, stats) = self.grades(samples)?;
        let results = samples
            .iter()
            .zip(grades)
            .enumerate()
            .map(|(index, (sample, grade))| self.reward(index, sample, &grade))
            .collect();
        Ok((results, stats))
    }

    /// Score every sample, failing on the first that cannot be scored.
    pub fn score(&self, samples: &[Sample]) -> Result<Vec<Reward>, ScoreError> {
        let (results, _) = self.score_each(samples)?;
        results
            .into_iter()
            .map(|r| r.map_err(ScoreError::Sample))
            .collect()
    }

    fn reward(
        &self,
        index: usize,
        sample: &Sample,
        grade: &GradeRecord,
    ) -> Result<Reward, SampleError> {
        let invalid = |error| SampleError::Invalid { index, error };
        if let Some(p) = self
            .policy
            .propositions()
            .iter()
            .find(|p| !grade.propositions.contains_key(&p.name))
        {
            return Err(SampleError::Ungraded {
                index,
                proposition: p.name.clone(),
                flag: grade
                    .flags
                    .get(&p.name)
                    .map_or_else(|| "no answer".to_string(), |f| format!("{f:?}")),
            });
        }
        self.check(sample).map_err(invalid)?;
        let field = sample
            .metadata
            .contains_key(BASE_REWARD_FIELD)
            .then_some(BASE_REWARD_FIELD);
        let prepared: Prepared =
            pipeline::prepare(&self.policy, sample, Some(grade), field).map_err(invalid)?;
        // `check` made sure the weights cover the response type.
        let total = self
            .weights
            .score(&self.policy, &prepared.example)
            .ok_or_else(|| invalid(FieldError::new("response_type", "no weights for it")))?;
        let base = prepared.example.base_reward;
        Ok(Reward {
            id: sample.id.clone(),
            reward: total,
            rbr_reward: total - base,
            base_reward: base,
            class: self.policy.classes()[prepared.classification.class].clone(),
            class_probs: class_probs(&self.policy, &prepared.classification),
            propositions: grade.propositions.clone(),
        })
    }

    /// A grade record per sample: from the cache, else from the grader (each distinct content
    /// once, in the grader's preferred batch size).
    fn grades(
        &self,
        samples: &[Sample],
    ) -> Result<(Vec<GradeRecord>, BatchStats), arbiter_graders::GraderError> {
        let mut stats = BatchStats::default();
        let keys: Vec<[u8; 32]> = samples.iter().map(content_key).collect();
        let mut found: Vec<Option<GradeRecord>> = match &self.cache {
            Some(cache) => keys.iter().map(|k| cache.get(k)).collect(),
            None => vec![None; samples.len()],
        };
        // Each distinct missing content is graded once.
        let mut first_of: std::collections::HashMap<[u8; 32], usize> = Default::default();
        let mut to_grade: Vec<usize> = Vec::new();
        let mut graded_here = vec![false; samples.len()];
        for (i, key) in keys.iter().enumerate() {
            if found[i].is_none() && !first_of.contains_key(key) {
                first_of.insert(*key, i);
                to_grade.push(i);
                graded_here[i] = true;
            }
        }
        let batch = self.grader.preferred_batch_size().max(1);
        for chunk in to_grade.chunks(batch) {
            let chunk_samples: Vec<Sample> = chunk.iter().map(|&i| samples[i].clone()).collect();
            let started = Instant::now();
            let graded = self
                .grader
                .grade_batch(&chunk_samples, self.policy.propositions())?;
            stats.grader_time += started.elapsed();
            stats.graded += chunk.len();
            for (&i, g) in chunk.iter().zip(graded) {
                let record = g.to_record();
                // Only complete grades are kept: a failed cell is retried next time.
                if let Some(cache) = &self.cache
                    && record.flags.is_empty()
                {
                    cache.insert(keys[i], record.clone());
                }
                found[i] = Some(record);
            }
        }
        let mut records = Vec::with_capacity(samples.len());
        for (i, sample) in samples.iter().enumerate() {
            // A sample not graded itself shares the grade of the first with its content.
            let source = found[i]
                .as_ref()
                .or_else(|| first_of.get(&keys[i]).and_then(|&f| found[f].as_ref()));
            let Some(source) = source else {
                return Err(arbiter_graders::GraderError::Source(format!(
                    "internal: sample {i} was neither cached nor graded"
                )));
            };
            if !graded_here[i] {
                stats.cache_hits += 1;
            }
            let mut record = source.clone();
            record.id = sample.id.clone();
            records.push(record);
        }
        Ok((records, stats))
    }
}

/// Why a batch could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The grader could not run.
    #[error(transparent)]
    Grader(#[from] arbiter_graders::GraderError),
    /// One sample could not be scored.
    #[error(transparent)]
    Sample(SampleError),
}

/// `metadata.base_reward` as a finite number, 0 when absent.
fn base_reward(sample: &Sample) -> Result<f64, FieldError> {
    match sample.metadata.get(BASE_REWARD_FIELD) {
        None => Ok(0.0),
        Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            FieldError::new(
                format!("metadata.{BASE_REWARD_FIELD}"),
                format!("must be a finite number, found {v}"),
            )
        }),
    }
}

fn class_probs(policy: &Policy, c: &Classification) -> Map<String, Value> {
    policy
        .classes()
        .iter()
        .zip(&c.class_probs)
        .map(|(name, p)| (name.clone(), Value::from(*p)))
        .collect()
}
