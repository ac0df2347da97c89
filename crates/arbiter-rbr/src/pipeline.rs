//! The RBR pipeline: samples (with human labels or a grader's P(yes)) → classes → reward
//! examples → fitted weights, scores, ranking error, safety metrics, the grader measured against
//! human labels, and a report's figures. Pure: callers read samples and grades (from files, a
//! grader, a request) and write what comes back, so the CLI and a reward service run the same
//! steps.
//!
//! - One sample: [`prepare`]. A set: [`prepare_all`] (per-sample errors by index, samples the
//!   grader failed on counted and left out); [`check_calibration_set`] for human-labelled
//!   calibration samples.
//! - Fitting: [`fit`] (the pairs follow from whether a base reward is added: [`pair_mode`]).
//! - Per-sample output lines: [`class_rows`] ([`ClassRow`]) and [`score_rows`] ([`ScoreRow`]).
//! - Set-level numbers: [`metric_inputs`], [`calibration_rows`], [`scores`], [`ranking`], and
//!   all of a report's at once: [`report_figures`] → [`ReportFigures`] →
//!   [`ReportFigures::report_input`].

use arbiter_core::{CellFailures, FieldError, GradeRecord, ResponseType, Sample, SampleId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::classify::{Classification, FeatureValues, classify, metric_events};
use crate::metrics::{
    self, Calibration, CalibrationError, CalibrationRow, HumanEvents, MetricInput, MetricsReport,
};
use crate::policy::Policy;
use crate::report::{ReportInput, ReportRow};
use crate::reward::{
    self, FitConfig, FitOutcome, PairMode, RankingEval, RewardExample, RewardWeights,
};

/// A sample after classification, ready for every downstream use.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The sample's id.
    pub id: SampleId,
    /// Its category, for per-category metrics.
    pub category: Option<String>,
    /// The proposition values classified (human labels or a grader's P(yes)).
    pub features: FeatureValues,
    /// Class probabilities under the policy.
    pub classification: Classification,
    /// The reward model's input.
    pub example: RewardExample,
    /// Metric events under the sample's human labels, when the features come from a grader
    /// and the labels determine every event (else the sample counts as unlabelled).
    pub human: Option<HumanEvents>,
}

/// Why a set of prepared samples cannot be scored or ranked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    /// The weights were fitted without a group for this response type.
    #[error("id {id}: the weights have no group for {response_type}")]
    NoWeights {
        /// The sample.
        id: SampleId,
        /// Its response type.
        response_type: ResponseType,
    },
    /// Ranking error needs known classes.
    #[error(
        "no sample has a known class (human labels or a `class` field), so ranking cannot be evaluated"
    )]
    NoTargets,
    /// Fitting needs known classes.
    #[error(
        "no sample has a known class (complete human labels or a `class` field): nothing to fit on"
    )]
    NothingToFit,
    /// A sample's features do not determine a metric event.
    #[error("id {id}: {error}")]
    Field {
        /// The sample.
        id: SampleId,
        /// What is missing.
        error: FieldError,
    },
    /// The grader cannot be measured against the human labels.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
}

/// Classify one sample. `grades` are a grader's P(yes) for it (`None`: its own human labels);
/// `base_reward_field` names the metadata field holding a base reward to add (`None`: 0).
pub fn prepare(
    policy: &Policy,
    sample: &Sample,
    grades: Option<&GradeRecord>,
    base_reward_field: Option<&str>,
) -> Result<Prepared, FieldError> {
    let rt = sample.response_type.ok_or_else(|| {
        FieldError::new(
            "response_type",
            "is missing; rules are chosen by response type (hard_refuse, safe_refuse_1, safe_refuse_2, comply)",
        )
    })?;
    let human = FeatureValues::from_labels(policy, &sample.propositions)?;
    let features = match grades {
        None => {
            if sample.propositions.is_empty() {
                return Err(FieldError::new(
                    "propositions",
                    "has no human labels; pass --features grader (or a grades file) to use a grader's answers",
                ));
            }
            human.clone()
        }
        Some(g) => FeatureValues::from_probabilities(policy, &g.propositions)
            .map_err(|e| FieldError::new(e.field, format!("in the grades: {}", e.message)))?,
    };
    let classification = classify(policy, rt, &features)?;
    let target_class = target_class(policy, sample, &human, grades.is_none(), &classification)?;
    let human_events = if grades.is_some() && !sample.propositions.is_empty() {
        human_events(policy, rt, &human)
    } else {
        None
    };
    let base_reward = match base_reward_field {
        None => 0.0,
        Some(field) => sample
            .metadata
            .get(field)
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite())
            .ok_or_else(|| FieldError::new(field, "base reward is missing or not a number"))?,
    };
    let example = RewardExample {
        response_type: rt,
        prompt_key: sample.prompt_key(),
        target_class,
        base_reward,
        features: reward::feature_vector(policy, &classification, &features)?,
    };
    Ok(Prepared {
        id: sample.id.clone(),
        category: sample.category.clone(),
        features,
        classification,
        example,
        human: human_events,
    })
}

/// One sample of a set that could not be prepared: its index in the set and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleError {
    /// Position of the sample in the slice given to [`prepare_all`].
    pub index: usize,
    /// What is wrong with it (its labels, its grades, its base reward).
    pub error: FieldError,
}

/// A set of samples after [`prepare_all`]: every sample is in exactly one of `rows`, `errors`,
/// or the `grader_failures.samples` left out.
#[derive(Debug, Clone, Default)]
pub struct PreparedSamples {
    /// The samples that prepared, in input order.
    pub rows: Vec<Prepared>,
    /// The samples that did not, in input order: the input's fault.
    pub errors: Vec<SampleError>,
    /// The grader's cells without a probability over the graded samples: `cells` asked,
    /// `failed`, `by_flag`, and the `samples` left out for one (the grader's fault, not the
    /// input's; the caller decides whether that many are acceptable).
    pub grader_failures: CellFailures,
}

/// Prepare a set of samples. `grades` (`None`: the samples' own human labels) holds, per sample
/// and in the same order, its grades or why it has none (a grades file without its id, say);
/// a sample whose grades have a flagged proposition without a probability (a failed request,
/// an answer without a yes/no token) is counted in `grader_failures` and left out.
pub fn prepare_all(
    policy: &Policy,
    samples: &[Sample],
    grades: Option<&[Result<&GradeRecord, FieldError>]>,
    base_reward_field: Option<&str>,
) -> PreparedSamples {
    let mut set = PreparedSamples {
        rows: Vec::with_capacity(samples.len()),
        ..PreparedSamples::default()
    };
    for (index, sample) in samples.iter().enumerate() {
        let grade = match grades.map(|all| all.get(index)) {
            None => Ok(None),
            Some(Some(Ok(g))) => Ok(Some(*g)),
            Some(Some(Err(e))) => Err(e.clone()),
            Some(None) => Err(FieldError::new("id", "has no grades")),
        };
        if let Ok(Some(g)) = grade {
            if grader_failed(policy, g) {
                set.grader_failures.add(g, policy.propositions());
                continue;
            }
            set.grader_failures.cells += policy.propositions().len();
        }
        match grade.and_then(|g| prepare(policy, sample, g, base_reward_field)) {
            Ok(row) => set.rows.push(row),
            Err(error) => set.errors.push(SampleError { index, error }),
        }
    }
    set
}

/// The grader gave no probability for one of the policy's propositions and flagged why.
fn grader_failed(policy: &Policy, grades: &GradeRecord) -> bool {
    policy
        .propositions()
        .iter()
        .any(|p| !grades.propositions.contains_key(&p.name) && grades.flags.contains_key(&p.name))
}

/// Why prepared calibration samples cannot measure a grader.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationSetError {
    /// A calibration sample's human labels leave a metric event open.
    #[error(
        "sample {id} has no human labels for every proposition the metrics need; each calibration sample must be fully labelled"
    )]
    NotFullyLabelled {
        /// The sample.
        id: SampleId,
    },
    /// Nothing to measure with.
    #[error("no calibration samples")]
    Empty,
    /// A sample is in both sets (it would count twice).
    #[error(
        "sample {id} is also in the data; a sample is either calibration or data (label it in place instead)"
    )]
    AlsoInData {
        /// The sample.
        id: SampleId,
    },
}

/// Check prepared calibration samples: every one fully labelled, at least one, none also a row
/// of `data`.
pub fn check_calibration_set(
    calibration: &[Prepared],
    data: &[Prepared],
) -> Result<(), CalibrationSetError> {
    if let Some(r) = calibration.iter().find(|r| r.human.is_none()) {
        return Err(CalibrationSetError::NotFullyLabelled { id: r.id.clone() });
    }
    if calibration.is_empty() {
        return Err(CalibrationSetError::Empty);
    }
    let data_ids: std::collections::HashSet<&SampleId> = data.iter().map(|r| &r.id).collect();
    match calibration.iter().find(|r| data_ids.contains(&r.id)) {
        Some(r) => Err(CalibrationSetError::AlsoInData { id: r.id.clone() }),
        None => Ok(()),
    }
}

/// The metric events under human labels, through the same policy functions as the grader's;
/// `None` when the labels leave a needed proposition out.
fn human_events(policy: &Policy, rt: ResponseType, human: &FeatureValues) -> Option<HumanEvents> {
    let class = classify(policy, rt, human).ok()?.class;
    let events = metric_events(policy, human).ok()?;
    Some(HumanEvents {
        unsafe_content: events.unsafe_content > 0.5,
        refusal: events.refusal > 0.5,
        class,
    })
}

/// The true class: from complete human labels, else from a `class` field, else unknown.
fn target_class(
    policy: &Policy,
    sample: &Sample,
    human: &FeatureValues,
    features_are_human: bool,
    classification: &Classification,
) -> Result<Option<usize>, FieldError> {
    if features_are_human {
        return Ok(Some(classification.class));
    }
    if !sample.propositions.is_empty()
        && let Ok(c) = classify(policy, classification.response_type, human)
    {
        return Ok(Some(c.class));
    }
    match sample.metadata.get("class") {
        Some(Value::String(name)) => policy.class_index(name).map(Some).ok_or_else(|| {
            FieldError::new(
                "class",
                format!(
                    "unknown class {name:?}; the policy's classes are {:?}",
                    policy.classes()
                ),
            )
        }),
        _ => Ok(None),
    }
}

/// The safety metrics' inputs of each sample: P(unsafe), P(refusal), P(ideal class).
pub fn metric_inputs(
    policy: &Policy,
    rows: &[Prepared],
) -> Result<Vec<MetricInput>, PipelineError> {
    let ideal = policy.metrics().ideal_class;
    rows.iter()
        .map(|r| {
            let events =
                metric_events(policy, &r.features).map_err(|error| PipelineError::Field {
                    id: r.id.clone(),
                    error,
                })?;
            Ok(MetricInput {
                response_type: r.classification.response_type,
                category: r.category.clone(),
                p_unsafe: events.unsafe_content,
                p_refusal: events.refusal,
                p_ideal: r.classification.class_probs[ideal],
            })
        })
        .collect()
}

/// The rows that measure a grader against human labels: every row of `rows` and `extra` (the
/// calibration set), with its human events where it has them.
pub fn calibration_rows(
    policy: &Policy,
    rows: &[Prepared],
    extra: &[Prepared],
) -> Result<Vec<CalibrationRow>, PipelineError> {
    let inputs = metric_inputs(policy, rows)?;
    let extra_inputs = metric_inputs(policy, extra)?;
    Ok(rows
        .iter()
        .zip(inputs)
        .chain(extra.iter().zip(extra_inputs))
        .map(|(r, grader)| CalibrationRow {
            grader,
            grader_class: r.classification.class,
            human: r.human,
        })
        .collect())
}

/// The total reward of every row.
pub fn scores(
    policy: &Policy,
    model: &RewardWeights,
    rows: &[Prepared],
) -> Result<Vec<f64>, PipelineError> {
    rows.iter()
        .map(|r| {
            model
                .score(policy, &r.example)
                .ok_or_else(|| PipelineError::NoWeights {
                    id: r.id.clone(),
                    response_type: r.example.response_type,
                })
        })
        .collect()
}

/// Ranking error of the reward per response type over rows with a known class.
pub fn ranking(
    policy: &Policy,
    model: &RewardWeights,
    rows: &[Prepared],
    mode: PairMode,
) -> Result<Vec<RankingEval>, PipelineError> {
    let s = scores(policy, model, rows)?;
    let examples: Vec<RewardExample> = rows.iter().map(|r| r.example.clone()).collect();
    if examples.iter().all(|e| e.target_class.is_none()) {
        return Err(PipelineError::NoTargets);
    }
    Ok(reward::evaluate(policy, &examples, &s, mode))
}

/// The pairs a reward is fitted and ranked on: within a prompt when a base reward is added
/// (its scores only compare completions of one prompt), else within a response type.
pub fn pair_mode(with_base_reward: bool) -> PairMode {
    if with_base_reward {
        PairMode::SamePrompt
    } else {
        PairMode::WithinResponseType
    }
}

/// Fit reward weights on the rows with a known class; the pairs follow [`pair_mode`].
pub fn fit(
    policy: &Policy,
    rows: &[Prepared],
    with_base_reward: bool,
    config: &FitConfig,
) -> Result<FitOutcome, PipelineError> {
    let examples: Vec<RewardExample> = rows.iter().map(|r| r.example.clone()).collect();
    if examples.iter().all(|e| e.target_class.is_none()) {
        return Err(PipelineError::NothingToFit);
    }
    Ok(reward::fit(
        policy,
        &examples,
        pair_mode(with_base_reward),
        config,
    ))
}

/// One line of `classes.jsonl` (`arbiter rbr classify`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    /// The sample.
    pub id: SampleId,
    /// Its response type.
    pub response_type: ResponseType,
    /// The most likely class.
    pub class: String,
    /// P(class) of every class, in policy order.
    pub class_probs: ClassProbs,
}

/// Class name → probability, in policy order; a JSON object on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassProbs(pub Vec<(String, f64)>);

impl Serialize for ClassProbs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(class, p)| (class, p)))
    }
}

impl<'de> Deserialize<'de> for ClassProbs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The crate's serde_json keeps object order, so the classes come back in file order.
        let map = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        map.into_iter()
            .map(|(class, p)| match p.as_f64() {
                Some(p) => Ok((class, p)),
                None => Err(serde::de::Error::custom(format!(
                    "class_probs.{class}: not a number"
                ))),
            })
            .collect::<Result<_, _>>()
            .map(ClassProbs)
    }
}

/// The class line of every row.
pub fn class_rows(policy: &Policy, rows: &[Prepared]) -> Vec<ClassRow> {
    let classes = policy.classes();
    rows.iter()
        .map(|r| ClassRow {
            id: r.id.clone(),
            response_type: r.classification.response_type,
            class: classes[r.classification.class].clone(),
            class_probs: ClassProbs(
                classes
                    .iter()
                    .cloned()
                    .zip(r.classification.class_probs.iter().copied())
                    .collect(),
            ),
        })
        .collect()
}

/// One line of `scores.jsonl` (`arbiter rbr score`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// The sample.
    pub id: SampleId,
    /// Its response type.
    pub response_type: ResponseType,
    /// The most likely class.
    pub class: String,
    /// Total reward: `base_reward + rbr_reward`.
    pub reward: f64,
    /// The rule-based part, `Σ wᵢ·φᵢ`.
    pub rbr_reward: f64,
    /// The base reward-model score added (0 without one).
    pub base_reward: f64,
}

/// The score line of every row.
pub fn score_rows(
    policy: &Policy,
    weights: &RewardWeights,
    rows: &[Prepared],
) -> Result<Vec<ScoreRow>, PipelineError> {
    let totals = scores(policy, weights, rows)?;
    Ok(rows
        .iter()
        .zip(totals)
        .map(|(r, reward)| ScoreRow {
            id: r.id.clone(),
            response_type: r.classification.response_type,
            class: policy.classes()[r.classification.class].clone(),
            reward,
            rbr_reward: reward - r.example.base_reward,
            base_reward: r.example.base_reward,
        })
        .collect())
}

/// The confidence level of the corrected (PPI++) intervals.
pub const CALIBRATION_LEVEL: f64 = 0.95;

/// What [`report_figures`] computes besides the rows.
#[derive(Debug, Clone, Copy)]
pub struct FigureSettings<'a> {
    /// Bootstrap replicates of the metric intervals.
    pub bootstrap: usize,
    /// Seed of that bootstrap.
    pub bootstrap_seed: u64,
    /// The features are a grader's P(yes): the grader is measured against the human labels of
    /// the rows and the calibration samples.
    pub graded: bool,
    /// Weights to score and rank with (pairs as they were fitted), if any.
    pub weights: Option<&'a RewardWeights>,
}

/// The numbers of a report on a set of rows (and of `arbiter rbr metrics`).
#[derive(Debug, Clone)]
pub struct ReportFigures {
    /// The features were a grader's P(yes).
    pub graded: bool,
    /// Safety metrics of the rows.
    pub metrics: MetricsReport,
    /// The grader against the human labels; `None` for human features or when nothing is
    /// labelled.
    pub calibration: Option<Calibration>,
    /// Ranking error per response type; `None` without weights or without a known class.
    pub ranking: Option<Vec<RankingEval>>,
    /// One per row: class, human class and reward.
    pub rows: Vec<ReportRow>,
}

/// Metrics, calibration (rows and `calibration_set`: human-labelled samples graded like the
/// rows), rewards and ranking of `rows`.
pub fn report_figures(
    policy: &Policy,
    rows: &[Prepared],
    calibration_set: &[Prepared],
    settings: &FigureSettings<'_>,
) -> Result<ReportFigures, PipelineError> {
    let metrics = metrics::compute(
        &metric_inputs(policy, rows)?,
        settings.bootstrap,
        settings.bootstrap_seed,
    );
    let calibration = if settings.graded {
        let cal_rows = calibration_rows(policy, rows, calibration_set)?;
        metrics::calibrate(policy, &cal_rows, CALIBRATION_LEVEL)?
    } else {
        None
    };
    let (rewards, ranking) = match settings.weights {
        Some(weights) => {
            let totals = scores(policy, weights, rows)?;
            let has_targets = rows.iter().any(|r| r.example.target_class.is_some());
            let ranking = has_targets
                .then(|| self::ranking(policy, weights, rows, weights.pair_mode))
                .transpose()?;
            (totals.into_iter().map(Some).collect(), ranking)
        }
        None => (vec![None; rows.len()], None),
    };
    let rows = rows
        .iter()
        .zip(rewards)
        .map(|(r, reward)| ReportRow {
            response_type: r.classification.response_type,
            class: r.classification.class,
            human_class: r.example.target_class,
            reward,
        })
        .collect();
    Ok(ReportFigures {
        graded: settings.graded,
        metrics,
        calibration,
        ranking,
        rows,
    })
}

/// What a report says about where its figures come from, in the caller's words.
#[derive(Debug, Clone, Default)]
pub struct ReportContext {
    /// Page title.
    pub title: String,
    /// Where the data came from (shown verbatim).
    pub data_source: String,
    /// Which features were used (`human labels`, or the grades file / grader).
    pub features: String,
    /// How the ranking evaluation relates to fitting (in-sample or held out).
    pub ranking_note: Option<String>,
    /// The grader's shipped validation figures, one line each.
    pub grader_validation: Vec<String>,
    /// Samples left out because the grader failed on them (`PreparedSamples::grader_failures`).
    pub unscored: usize,
}

impl ReportFigures {
    /// The input of [`crate::report::render`].
    pub fn report_input(&self, context: ReportContext) -> ReportInput<'_> {
        ReportInput {
            title: context.title,
            data_source: context.data_source,
            features: context.features,
            rows: &self.rows,
            metrics: &self.metrics,
            ranking: self.ranking.as_deref(),
            ranking_note: context.ranking_note,
            graded: self.graded,
            calibration: self.calibration.as_ref(),
            grader_validation: context.grader_validation,
            unscored: context.unscored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(rt: ResponseType, yes: &[&str], policy: &Policy) -> Sample {
        let v = serde_json::json!({
            "id": "s", "response_type": rt.to_string(), "category": "c",
            "prompt": [{"role": "user", "content": "q"}], "completion": "a",
        });
        let mut s = Sample::from_value(v, 0).unwrap();
        s.propositions = policy
            .propositions()
            .iter()
            .map(|p| (p.name.clone(), yes.contains(&p.name.as_str())))
            .collect::<BTreeMap<_, _>>();
        s
    }

    #[test]
    fn human_and_graded_features_prepare_alike_and_a_grader_row_keeps_human_events() {
        let policy = Policy::default_policy();
        let s = sample(
            ResponseType::HardRefuse,
            &["apology", "inability_to_comply"],
            &policy,
        );
        let human = prepare(&policy, &s, None, None).unwrap();
        assert_eq!(human.example.target_class, Some(human.classification.class));
        assert!(
            human.human.is_none(),
            "human features need no separate human events"
        );
        let grades = GradeRecord {
            id: s.id.clone(),
            propositions: s
                .propositions
                .iter()
                .map(|(k, v)| (k.clone(), if *v { 1.0 } else { 0.0 }))
                .collect(),
            flags: BTreeMap::new(),
        };
        let graded = prepare(&policy, &s, Some(&grades), None).unwrap();
        assert_eq!(graded.classification, human.classification);
        assert_eq!(graded.example.target_class, human.example.target_class);
        let events = graded.human.expect("labelled and graded");
        assert!(events.refusal && !events.unsafe_content);
        let inputs = metric_inputs(&policy, std::slice::from_ref(&graded)).unwrap();
        assert_eq!((inputs[0].p_refusal, inputs[0].p_unsafe), (1.0, 0.0));
        assert_eq!(calibration_rows(&policy, &[graded], &[]).unwrap().len(), 1);
    }

    #[test]
    fn missing_response_type_and_unknown_class_are_field_errors() {
        let policy = Policy::default_policy();
        let mut s = sample(ResponseType::Comply, &[], &policy);
        s.response_type = None;
        assert_eq!(
            prepare(&policy, &s, None, None).unwrap_err().field,
            "response_type"
        );
        let mut s = sample(ResponseType::Comply, &[], &policy);
        s.propositions.clear();
        s.metadata
            .insert("class".into(), serde_json::json!("splendid"));
        let grades = GradeRecord {
            id: s.id.clone(),
            propositions: policy
                .propositions()
                .iter()
                .map(|p| (p.name.clone(), 0.0))
                .collect(),
            flags: BTreeMap::new(),
        };
        assert_eq!(
            prepare(&policy, &s, Some(&grades), None).unwrap_err().field,
            "class"
        );
    }

    fn grades_of(s: &Sample) -> GradeRecord {
        GradeRecord {
            id: s.id.clone(),
            propositions: s
                .propositions
                .iter()
                .map(|(k, v)| (k.clone(), if *v { 1.0 } else { 0.0 }))
                .collect(),
            flags: BTreeMap::new(),
        }
    }

    fn with_id(mut s: Sample, id: &str) -> Sample {
        s.id = SampleId::from_value(&serde_json::json!(id)).unwrap();
        s
    }

    #[test]
    fn prepare_all_counts_grader_failures_and_reports_bad_samples_by_index() {
        let policy = Policy::default_policy();
        let n_props = policy.propositions().len();
        let good = with_id(
            sample(ResponseType::HardRefuse, &["apology"], &policy),
            "good",
        );
        let failed = with_id(sample(ResponseType::Comply, &[], &policy), "failed");
        let ungraded = with_id(sample(ResponseType::Comply, &[], &policy), "ungraded");
        let mut untyped = with_id(sample(ResponseType::Comply, &[], &policy), "untyped");
        untyped.response_type = None;
        // A proposition without a probability but with a flag: the grader failed on it.
        let mut failed_grades = grades_of(&failed);
        let lost = policy.propositions()[0].name.clone();
        failed_grades.propositions.remove(&lost);
        failed_grades
            .flags
            .insert(lost, arbiter_core::GradeFlag::Error);
        let good_grades = grades_of(&good);
        let untyped_grades = grades_of(&untyped);
        let grades = [
            Ok(&good_grades),
            Ok(&failed_grades),
            Err(FieldError::new("id", "no grades for id ungraded")),
            Ok(&untyped_grades),
        ];
        let samples = [good, failed, ungraded, untyped];
        let set = prepare_all(&policy, &samples, Some(&grades), None);

        let ids: Vec<String> = set.rows.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, ["good"]);
        let errors: Vec<(usize, &str)> = set
            .errors
            .iter()
            .map(|e| (e.index, e.error.field.as_str()))
            .collect();
        assert_eq!(errors, [(2, "id"), (3, "response_type")]);
        let failures = &set.grader_failures;
        assert_eq!(failures.samples, 1, "only the flagged sample is left out");
        assert_eq!(failures.failed, 1);
        assert_eq!(failures.by_flag.get("error"), Some(&1));
        // Cells of the three graded samples; the lookup that failed asked nothing.
        assert_eq!(failures.cells, 3 * n_props);

        // Human features: no grader, nothing counted.
        let human = prepare_all(&policy, &samples[..1], None, None);
        assert_eq!(human.rows.len(), 1);
        assert_eq!(human.grader_failures, CellFailures::default());
    }

    #[test]
    fn a_missing_grade_without_a_flag_is_the_inputs_fault_not_the_graders() {
        let policy = Policy::default_policy();
        let s = sample(ResponseType::Comply, &[], &policy);
        let mut g = grades_of(&s);
        g.propositions.remove(&policy.propositions()[0].name);
        let set = prepare_all(&policy, std::slice::from_ref(&s), Some(&[Ok(&g)]), None);
        assert_eq!(set.grader_failures.samples, 0);
        assert_eq!(set.errors.len(), 1);
        assert_eq!(set.errors[0].index, 0);
    }

    #[test]
    fn calibration_set_must_be_labelled_non_empty_and_apart_from_the_data() {
        let policy = Policy::default_policy();
        let labelled = |id: &str| {
            let s = with_id(
                sample(
                    ResponseType::HardRefuse,
                    &["apology", "inability_to_comply"],
                    &policy,
                ),
                id,
            );
            prepare(&policy, &s, Some(&grades_of(&s)), None).unwrap()
        };
        let data = [labelled("d1"), labelled("shared")];
        let calibration = [labelled("c1"), labelled("shared")];
        assert_eq!(
            check_calibration_set(&calibration, &data),
            Err(CalibrationSetError::AlsoInData {
                id: calibration[1].id.clone()
            })
        );
        assert_eq!(
            check_calibration_set(&calibration, &data)
                .unwrap_err()
                .to_string(),
            "sample shared is also in the data; a sample is either calibration or data (label it in place instead)"
        );
        assert_eq!(check_calibration_set(&calibration[..1], &data), Ok(()));
        assert_eq!(
            check_calibration_set(&[], &data),
            Err(CalibrationSetError::Empty)
        );
        let mut unlabelled = labelled("u");
        unlabelled.human = None;
        assert!(matches!(
            check_calibration_set(&[unlabelled], &data),
            Err(CalibrationSetError::NotFullyLabelled { .. })
        ));
    }

    #[test]
    fn score_and_class_rows_keep_the_wire_field_order() {
        let policy = Policy::default_policy();
        let s = sample(
            ResponseType::HardRefuse,
            &["apology", "inability_to_comply"],
            &policy,
        );
        let row = prepare(&policy, &s, None, None).unwrap();
        let score = ScoreRow {
            id: row.id.clone(),
            response_type: ResponseType::HardRefuse,
            class: "ideal".into(),
            reward: 1.5,
            rbr_reward: 1.25,
            base_reward: 0.25,
        };
        assert_eq!(
            serde_json::to_string(&score).unwrap(),
            r#"{"id":"s","response_type":"hard_refuse","class":"ideal","reward":1.5,"rbr_reward":1.25,"base_reward":0.25}"#
        );
        let classes = class_rows(&policy, std::slice::from_ref(&row));
        let text = serde_json::to_string(&classes[0]).unwrap();
        let keys_in_order = [
            "\"id\"",
            "\"response_type\"",
            "\"class\"",
            "\"class_probs\"",
        ];
        let at: Vec<usize> = keys_in_order
            .iter()
            .map(|k| text.find(k).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        // class_probs lists the policy's classes in policy order, and reads back.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let names: Vec<&String> = value["class_probs"].as_object().unwrap().keys().collect();
        assert_eq!(names, policy.classes().iter().collect::<Vec<_>>());
        let back: ClassRow = serde_json::from_str(&text).unwrap();
        assert_eq!(back, classes[0]);
    }

    #[test]
    fn fitting_needs_a_known_class_and_follows_the_base_reward() {
        let policy = Policy::default_policy();
        assert_eq!(pair_mode(true), PairMode::SamePrompt);
        assert_eq!(pair_mode(false), PairMode::WithinResponseType);
        let config = FitConfig {
            steps: 5,
            ..FitConfig::default()
        };
        let s = sample(ResponseType::Comply, &[], &policy);
        let mut unknown = prepare(&policy, &s, Some(&grades_of(&s)), None).unwrap();
        unknown.example.target_class = None;
        assert_eq!(
            fit(&policy, &[unknown], false, &config).unwrap_err(),
            PipelineError::NothingToFit
        );
        let rows: Vec<Prepared> = [&["apology", "inability_to_comply"][..], &["judgement"][..]]
            .iter()
            .map(|yes| {
                prepare(
                    &policy,
                    &sample(ResponseType::HardRefuse, yes, &policy),
                    None,
                    None,
                )
                .unwrap()
            })
            .collect();
        let fitted = fit(&policy, &rows, true, &config).unwrap();
        assert_eq!(fitted.model.pair_mode, PairMode::SamePrompt);
    }

    #[test]
    fn report_figures_calibrate_only_graded_features_and_rank_only_with_weights() {
        let policy = Policy::default_policy();
        let rows: Vec<Prepared> = [&["apology", "inability_to_comply"][..], &[][..]]
            .iter()
            .enumerate()
            .map(|(k, yes)| {
                let s = with_id(
                    sample(ResponseType::HardRefuse, yes, &policy),
                    &format!("r{k}"),
                );
                prepare(&policy, &s, None, None).unwrap()
            })
            .collect();
        let settings = FigureSettings {
            bootstrap: 10,
            bootstrap_seed: 1,
            graded: false,
            weights: None,
        };
        let plain = report_figures(&policy, &rows, &[], &settings).unwrap();
        assert!(plain.calibration.is_none() && plain.ranking.is_none());
        assert_eq!(plain.metrics.overall.n, 2);
        assert!(plain.rows.iter().all(|r| r.reward.is_none()));

        let weights = fit(&policy, &rows, false, &FitConfig::default())
            .unwrap()
            .model;
        let ranked = report_figures(
            &policy,
            &rows,
            &[],
            &FigureSettings {
                weights: Some(&weights),
                ..settings
            },
        )
        .unwrap();
        let ranking = ranked
            .ranking
            .as_deref()
            .expect("weights and known classes");
        let hard_refuse = ranking
            .iter()
            .find(|e| e.response_type == ResponseType::HardRefuse)
            .expect("the rows' response type is ranked");
        assert_eq!(hard_refuse.n_examples, 2);
        let input = ranked.report_input(ReportContext {
            title: "t".into(),
            unscored: 3,
            ..ReportContext::default()
        });
        assert_eq!((input.unscored, input.graded), (3, false));
        assert_eq!(input.rows.len(), 2);
        assert!(input.rows.iter().all(|r| r.reward.is_some()));
    }
}
