//! The RBR reward: `R_tot = R_rm + Σᵢ wᵢ·φᵢ`, fitted on ordered pairs of completions.
//!
//! Features φ for a sample are the P(yes) of every proposition its weight group grades plus the
//! probability of each completion class. Weights are fitted by minimising
//! `mean(ReLU(margin·m_better + s_worse − s_better))` with AdamW over pairs ordered by the
//! policy (rbr.md §5):
//!
//! - with base reward-model scores, pairs are completions of the **same prompt**;
//! - without them ("RBR only"), pairs may **cross prompts within one response type**, which is
//!   what a set with one completion per prompt (the gold set) allows.

use std::collections::{BTreeMap, HashMap};

use arbiter_core::rng::SeededRng;
use arbiter_core::{FieldError, ResponseType};
use serde::{Deserialize, Serialize};

use crate::classify::{Classification, FeatureValues};
use crate::policy::Policy;

/// Which pairs may be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairMode {
    /// Only completions of the same prompt (used when a base reward is given).
    SamePrompt,
    /// Any two completions of the same response type ("RBR only", no base reward).
    WithinResponseType,
}

/// Optimiser and split settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Full-batch steps.
    pub steps: usize,
    /// Seed for the train/valid split and pair sampling.
    pub seed: u64,
    /// Share of pairs held out for validation loss.
    pub valid_fraction: f64,
    /// Cap on pairs per weight group; above it a seeded sample is used.
    pub max_pairs: usize,
    /// Log every this many steps (and the last step).
    pub log_every: usize,
    /// Where class-probability weights start.
    pub class_prior: ClassPrior,
}

/// Starting point for the weights of the class-probability features.
///
/// Classes absent from the training data of a group (the gold train split has no disallowed
/// `comply` completion) never receive a gradient, so their weights stay where they start. With
/// [`ClassPrior::Rank`] they start in policy order, which keeps unseen classes ranked sensibly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassPrior {
    /// Every weight starts at 0 (the upstream fitter's choice).
    Zero,
    /// Class `c` of `K` starts at `margin × (K − 1 − c)`: best class highest.
    Rank,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            lr: 1e-2,
            weight_decay: 0.0,
            steps: 1000,
            seed: 0,
            valid_fraction: 0.05,
            max_pairs: 500_000,
            log_every: 50,
            class_prior: ClassPrior::Rank,
        }
    }
}

/// One sample prepared for fitting, scoring or evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardExample {
    /// Response type of the prompt.
    pub response_type: ResponseType,
    /// Identifies the prompt (same key = same prompt).
    pub prompt_key: String,
    /// The class the completion truly belongs to (from human labels), if known.
    pub target_class: Option<usize>,
    /// Base reward-model score (0 in "RBR only" mode).
    pub base_reward: f64,
    /// Feature vector in the layout of the sample's weight group.
    pub features: Vec<f64>,
}

/// Response types whose weights live in `group`.
fn group_members(policy: &Policy, group: ResponseType) -> Vec<ResponseType> {
    policy
        .fitting()
        .weight_group
        .iter()
        .filter(|(_, g)| **g == group)
        .map(|(m, _)| *m)
        .collect()
}

/// Names of the features of each weight group: propositions, then `class:NAME`.
pub fn feature_names(policy: &Policy, group: ResponseType) -> Vec<String> {
    let members = group_members(policy, group);
    let mut names: Vec<String> = policy
        .proposition_details()
        .iter()
        .filter(|p| p.response_types.iter().any(|t| members.contains(t)))
        .map(|p| p.spec.name.clone())
        .collect();
    names.extend(policy.classes().iter().map(|c| format!("class:{c}")));
    names
}

/// The weight group a response type belongs to.
pub fn weight_group(policy: &Policy, response_type: ResponseType) -> Option<ResponseType> {
    policy.fitting().weight_group.get(&response_type).copied()
}

/// Build the feature vector of a sample for its weight group.
///
/// A proposition graded for the sample's own response type must be present; one graded only for
/// another member of a pooled group is 0 when absent.
pub fn feature_vector(
    policy: &Policy,
    classification: &Classification,
    features: &FeatureValues,
) -> Result<Vec<f64>, FieldError> {
    let rt = classification.response_type;
    let group = weight_group(policy, rt).ok_or_else(|| {
        FieldError::new(
            "response_type",
            format!("policy `{}` has no weights for {rt}", policy.name()),
        )
    })?;
    let own = policy.propositions_for(rt);
    let mut out = Vec::new();
    for name in feature_names(policy, group) {
        if let Some(class) = name.strip_prefix("class:") {
            let c = policy
                .class_index(class)
                .expect("feature names come from the policy");
            out.push(classification.class_probs[c]);
            continue;
        }
        let i = policy
            .proposition_index(&name)
            .expect("feature names come from the policy");
        match features.get(i) {
            Some(v) => out.push(v),
            None if own.contains(&i) => {
                return Err(FieldError::new(
                    format!("propositions.{name}"),
                    format!("is missing; it is a reward feature for {rt}"),
                ));
            }
            None => out.push(0.0),
        }
    }
    Ok(out)
}

/// Fitted weights of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupWeights {
    /// Response types sharing these weights.
    pub response_types: Vec<ResponseType>,
    /// Feature names, aligned with `weights`.
    pub features: Vec<String>,
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// Number of pairs fitted on (train + valid).
    pub n_pairs: usize,
}

/// One line of the training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Weight group.
    pub group: ResponseType,
    /// Step (1-based).
    pub step: usize,
    /// Training hinge loss.
    pub loss: f64,
    /// Validation hinge loss (absent without validation pairs).
    pub valid_loss: Option<f64>,
    /// Share of training pairs already past their margin.
    pub frac_clipped: f64,
}

/// A fitted reward: weights per group and how they were obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardWeights {
    /// Name of the policy the features come from.
    pub policy: String,
    /// Pairing used for fitting.
    pub pair_mode: PairMode,
    /// Settings used.
    pub config: FitConfig,
    /// Weights per group, keyed by the group's response type.
    pub groups: BTreeMap<ResponseType, GroupWeights>,
}

impl RewardWeights {
    /// Check that the model fits this policy (same name, same feature layout).
    pub fn check_policy(&self, policy: &Policy) -> Result<(), String> {
        if self.policy != policy.name() {
            return Err(format!(
                "the weights were fitted for policy `{}`, not `{}`",
                self.policy,
                policy.name()
            ));
        }
        for (group, w) in &self.groups {
            if w.features != feature_names(policy, *group) || w.weights.len() != w.features.len() {
                return Err(format!(
                    "the weights for {group} do not match the policy's features; refit them"
                ));
            }
        }
        Ok(())
    }

    /// Total reward of an example: base reward plus the RBR term of its group.
    pub fn score(&self, policy: &Policy, example: &RewardExample) -> Option<f64> {
        let group = weight_group(policy, example.response_type)?;
        let w = self.groups.get(&group)?;
        Some(example.base_reward + dot(&w.weights, &example.features))
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// An ordered pair: `better` should outscore `worse` by `margin`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// Index of the better example.
    pub better: usize,
    /// Index of the worse example.
    pub worse: usize,
    /// Required score gap.
    pub margin: f64,
}

/// All ordered pairs among `members` (indices into `examples`) allowed by the policy.
pub fn pairs(
    policy: &Policy,
    examples: &[RewardExample],
    members: &[usize],
    mode: PairMode,
) -> Vec<Pair> {
    let fitting = policy.fitting();
    let mut buckets: HashMap<(ResponseType, &str), Vec<usize>> = HashMap::new();
    for &i in members {
        let e = &examples[i];
        if e.target_class.is_none() {
            continue;
        }
        let key = match mode {
            PairMode::SamePrompt => e.prompt_key.as_str(),
            PairMode::WithinResponseType => "",
        };
        buckets.entry((e.response_type, key)).or_default().push(i);
    }
    let mut keys: Vec<_> = buckets.keys().copied().collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let bucket = &buckets[&key];
        for &b in bucket {
            let cb = examples[b].target_class.expect("filtered");
            for &w in bucket {
                let cw = examples[w].target_class.expect("filtered");
                if fitting.orderings[cb].contains(&cw) {
                    out.push(Pair {
                        better: b,
                        worse: w,
                        margin: fitting.margin * fitting.margins[cb],
                    });
                }
            }
        }
    }
    out
}

/// The fitted model and its training log.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// Fitted weights.
    pub model: RewardWeights,
    /// Loss curve per group.
    pub log: Vec<LogEntry>,
}

fn hinge(pairs: &[Pair], scores: &[f64]) -> (f64, usize) {
    let mut total = 0.0;
    let mut clipped = 0;
    for p in pairs {
        let v = p.margin + scores[p.worse] - scores[p.better];
        if v > 0.0 {
            total += v;
        } else {
            clipped += 1;
        }
    }
    (total / pairs.len().max(1) as f64, clipped)
}

/// Fit weights per group with AdamW on the hinge loss.
pub fn fit(
    policy: &Policy,
    examples: &[RewardExample],
    mode: PairMode,
    config: &FitConfig,
) -> FitOutcome {
    let mut rng = SeededRng::new(config.seed);
    let mut groups = BTreeMap::new();
    let mut log = Vec::new();
    let group_keys: Vec<ResponseType> = {
        let mut g: Vec<ResponseType> = policy.fitting().weight_group.values().copied().collect();
        g.sort();
        g.dedup();
        g
    };
    for group in group_keys {
        let names = feature_names(policy, group);
        let response_types = group_members(policy, group);
        let members: Vec<usize> = (0..examples.len())
            .filter(|&i| weight_group(policy, examples[i].response_type) == Some(group))
            .collect();
        let mut all_pairs = pairs(policy, examples, &members, mode);
        let mut group_rng = rng.fork();
        group_rng.shuffle(&mut all_pairs);
        all_pairs.truncate(config.max_pairs);
        let n_pairs = all_pairs.len();
        let n_valid = if n_pairs >= 20 {
            ((n_pairs as f64) * config.valid_fraction).round() as usize
        } else {
            0
        };
        let (valid, train) = all_pairs.split_at(n_valid);
        let frozen: Vec<bool> = names
            .iter()
            .map(|n| policy.fitting().ignore_features.contains(n))
            .collect();
        let n_classes = policy.classes().len();
        let mut weights = vec![0.0; names.len()];
        if config.class_prior == ClassPrior::Rank {
            let first_class = names.len() - n_classes;
            for c in 0..n_classes {
                if !frozen[first_class + c] {
                    weights[first_class + c] = policy.fitting().margin * (n_classes - 1 - c) as f64;
                }
            }
        }
        if !train.is_empty() {
            adamw(
                examples,
                train,
                valid,
                &frozen,
                &mut weights,
                config,
                group,
                &mut log,
            );
        }
        groups.insert(
            group,
            GroupWeights {
                response_types,
                features: names,
                weights,
                n_pairs,
            },
        );
    }
    FitOutcome {
        model: RewardWeights {
            policy: policy.name().to_string(),
            pair_mode: mode,
            config: config.clone(),
            groups,
        },
        log,
    }
}

#[allow(clippy::too_many_arguments)]
fn adamw(
    examples: &[RewardExample],
    train: &[Pair],
    valid: &[Pair],
    frozen: &[bool],
    weights: &mut [f64],
    config: &FitConfig,
    group: ResponseType,
    log: &mut Vec<LogEntry>,
) {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;
    let n_features = weights.len();
    let mut m = vec![0.0; n_features];
    let mut v = vec![0.0; n_features];
    let mut scores = vec![0.0; examples.len()];
    let mut grad_scores = vec![0.0; examples.len()];
    let used: Vec<usize> = {
        let mut u: Vec<usize> = train
            .iter()
            .chain(valid)
            .flat_map(|p| [p.better, p.worse])
            .collect();
        u.sort_unstable();
        u.dedup();
        u
    };
    let inv_n = 1.0 / train.len() as f64;
    for step in 1..=config.steps {
        for &i in &used {
            scores[i] = examples[i].base_reward + dot(weights, &examples[i].features);
            grad_scores[i] = 0.0;
        }
        let (loss, clipped) = hinge(train, &scores);
        if step % config.log_every.max(1) == 0 || step == 1 || step == config.steps {
            log.push(LogEntry {
                group,
                step,
                loss,
                valid_loss: (!valid.is_empty()).then(|| hinge(valid, &scores).0),
                frac_clipped: clipped as f64 / train.len() as f64,
            });
        }
        for p in train {
            if p.margin + scores[p.worse] - scores[p.better] > 0.0 {
                grad_scores[p.worse] += inv_n;
                grad_scores[p.better] -= inv_n;
            }
        }
        let mut grad = vec![0.0; n_features];
        for &i in &used {
            let g = grad_scores[i];
            if g != 0.0 {
                for (gk, xk) in grad.iter_mut().zip(&examples[i].features) {
                    *gk += g * xk;
                }
            }
        }
        let bias1 = 1.0 - BETA1.powi(step as i32);
        let bias2 = 1.0 - BETA2.powi(step as i32);
        for k in 0..n_features {
            if frozen[k] {
                continue;
            }
            weights[k] -= config.lr * config.weight_decay * weights[k];
            m[k] = BETA1 * m[k] + (1.0 - BETA1) * grad[k];
            v[k] = BETA2 * v[k] + (1.0 - BETA2) * grad[k] * grad[k];
            let m_hat = m[k] / bias1;
            let v_hat = v[k] / bias2;
            weights[k] -= config.lr * m_hat / (v_hat.sqrt() + EPS);
        }
    }
}

/// Ranking quality of a reward on one response type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingEval {
    /// Response type.
    pub response_type: ResponseType,
    /// Number of examples.
    pub n_examples: usize,
    /// Ordered pairs compared.
    pub n_pairs: usize,
    /// Pairs where the worse completion scored higher (ties count one half).
    pub n_wrong: f64,
    /// `n_wrong / n_pairs`; absent without pairs.
    pub error_rate: Option<f64>,
    /// (ideal, non-ideal) pairs compared.
    pub n_ideal_pairs: usize,
    /// Error rate on (ideal, non-ideal) pairs only (paper Fig. 2b); absent without such pairs.
    pub ideal_error_rate: Option<f64>,
}

/// Error rate of `scores` on every ordered pair per response type.
pub fn evaluate(
    policy: &Policy,
    examples: &[RewardExample],
    scores: &[f64],
    mode: PairMode,
) -> Vec<RankingEval> {
    let ideal = policy.metrics().ideal_class;
    let mut out = Vec::new();
    for rt in policy.response_types() {
        let members: Vec<usize> = (0..examples.len())
            .filter(|&i| examples[i].response_type == rt)
            .collect();
        if members.is_empty() {
            continue;
        }
        let ps = pairs(policy, examples, &members, mode);
        let wrongness = |p: &Pair| {
            let (b, w) = (scores[p.better], scores[p.worse]);
            if w > b {
                1.0
            } else if w == b {
                0.5
            } else {
                0.0
            }
        };
        let n_wrong: f64 = ps.iter().map(wrongness).sum();
        let ideal_pairs: Vec<&Pair> = ps
            .iter()
            .filter(|p| examples[p.better].target_class == Some(ideal))
            .collect();
        let ideal_wrong: f64 = ideal_pairs.iter().map(|p| wrongness(p)).sum();
        out.push(RankingEval {
            response_type: rt,
            n_examples: members.len(),
            n_pairs: ps.len(),
            n_wrong,
            error_rate: (!ps.is_empty()).then(|| n_wrong / ps.len() as f64),
            n_ideal_pairs: ideal_pairs.len(),
            ideal_error_rate: (!ideal_pairs.is_empty())
                .then(|| ideal_wrong / ideal_pairs.len() as f64),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(rt: ResponseType, class: usize, features: Vec<f64>) -> RewardExample {
        RewardExample {
            response_type: rt,
            prompt_key: String::new(),
            target_class: Some(class),
            base_reward: 0.0,
            features,
        }
    }

    #[test]
    fn fitting_learns_to_rank_separable_classes() {
        let policy = Policy::default_policy();
        let n = feature_names(&policy, ResponseType::Comply).len();
        let mut examples = Vec::new();
        for class in 0..5 {
            for k in 0..6 {
                let mut f = vec![0.0; n];
                f[n - 5 + class] = 1.0;
                f[0] = (k as f64) / 10.0;
                examples.push(example(ResponseType::Comply, class, f));
            }
        }
        let before = evaluate(
            &policy,
            &examples,
            &vec![0.0; examples.len()],
            PairMode::WithinResponseType,
        );
        assert_eq!(before[0].error_rate, Some(0.5));
        let out = fit(
            &policy,
            &examples,
            PairMode::WithinResponseType,
            &FitConfig::default(),
        );
        let model = &out.model;
        let scores: Vec<f64> = examples
            .iter()
            .map(|e| model.score(&policy, e).unwrap())
            .collect();
        let after = evaluate(&policy, &examples, &scores, PairMode::WithinResponseType);
        assert_eq!(after[0].n_pairs, 6 * 6 * 10);
        assert_eq!(after[0].error_rate, Some(0.0));
        let last = out
            .log
            .iter()
            .rfind(|l| l.group == ResponseType::Comply)
            .unwrap();
        assert!(last.loss < 0.05, "{last:?}");
        assert!(last.frac_clipped > 0.9);
    }

    #[test]
    fn same_prompt_mode_only_pairs_within_a_prompt() {
        let policy = Policy::default_policy();
        let mut a = example(ResponseType::HardRefuse, 0, vec![]);
        a.prompt_key = "p1".into();
        let mut b = example(ResponseType::HardRefuse, 2, vec![]);
        b.prompt_key = "p1".into();
        let mut c = example(ResponseType::HardRefuse, 4, vec![]);
        c.prompt_key = "p2".into();
        let ex = vec![a, b, c];
        let same = pairs(&policy, &ex, &[0, 1, 2], PairMode::SamePrompt);
        assert_eq!(same.len(), 1);
        let cross = pairs(&policy, &ex, &[0, 1, 2], PairMode::WithinResponseType);
        assert_eq!(cross.len(), 3);
    }

    #[test]
    fn ties_count_half() {
        let policy = Policy::default_policy();
        let ex = vec![
            example(ResponseType::Comply, 0, vec![]),
            example(ResponseType::Comply, 2, vec![]),
        ];
        let e = evaluate(&policy, &ex, &[1.0, 1.0], PairMode::WithinResponseType);
        assert_eq!(e[0].error_rate, Some(0.5));
        assert_eq!(e[0].ideal_error_rate, Some(0.5));
    }
}
