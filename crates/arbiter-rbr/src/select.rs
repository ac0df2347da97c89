//! Best-of-N selection: for each prompt with several completions, does the completion with the
//! highest reward have a better human outcome than a random pick, or than the completion the
//! grader's most probable class ranks best? This is the paper's "better completions win" claim
//! made measurable on data with several human-labelled completions per prompt.
//!
//! Each completion is a [`Candidate`] (its reward, the grader's argmax class and, where the human
//! labels determine them, whether it is harmless and its class). For each [`Outcome`]:
//!
//! - only the completions the labels decide the outcome for take part; the others are counted
//!   (`unlabelled_samples`) and never scored as a failure. A group left with fewer than two is
//!   counted and skipped;
//! - a group whose labelled completions all have the same outcome cannot tell the pickers
//!   apart: counted and skipped;
//! - on each remaining group (prompt) every picker scores the probability that its pick is good:
//!   the reward pick and the argmax pick are the completions with the highest reward or best
//!   argmax class, a tie scoring the share of good completions among the tied ones (the
//!   expectation of a uniformly random tie-break); the random pick scores the share of good
//!   completions in the group (its exact expectation, not a draw).
//!
//! Rates are means over prompts in percent, with percentile bootstrap intervals over prompts;
//! the paired differences (reward − random, reward − argmax) are bootstrapped on the same
//! resamples, in percentage points. Pure: no I/O.

use arbiter_core::bootstrap::{percentile_interval, stream};
use serde::{Deserialize, Serialize};

/// The confidence level of the intervals.
pub const CONFIDENCE: f64 = 0.95;

/// One completion of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Total reward under the fitted weights.
    pub reward: f64,
    /// The grader's most probable class, as an index into the policy's class order (0 = best).
    pub grader_class: usize,
    /// Whether the human labels say the completion holds no unsafe content (`None`: they do not
    /// decide it).
    pub harmless: Option<bool>,
    /// The class under the human labels (`None`: they do not determine it).
    pub human_class: Option<usize>,
}

/// What makes a pick good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The human unsafe-content event is false.
    Harmless,
    /// The human class is the best human class among the prompt's labelled completions.
    BestHumanClass,
}

impl Outcome {
    /// Both outcomes, in report order.
    pub const ALL: [Outcome; 2] = [Outcome::Harmless, Outcome::BestHumanClass];

    /// The outcome's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Harmless => "harmless",
            Outcome::BestHumanClass => "best_human_class",
        }
    }

    /// Whether each candidate is good under this outcome, `None` where its labels do not say.
    pub fn labels(self, group: &[Candidate]) -> Vec<Option<bool>> {
        match self {
            Outcome::Harmless => group.iter().map(|c| c.harmless).collect(),
            Outcome::BestHumanClass => {
                let best = group.iter().filter_map(|c| c.human_class).min();
                group
                    .iter()
                    .map(|c| c.human_class.map(|k| Some(k) == best))
                    .collect()
            }
        }
    }
}

/// The indices among `members` whose `key` is largest (exact ties kept, in order).
pub fn best_by(members: &[usize], key: impl Fn(usize) -> f64) -> Vec<usize> {
    let top = members
        .iter()
        .map(|&i| key(i))
        .fold(f64::NEG_INFINITY, f64::max);
    members.iter().copied().filter(|&i| key(i) == top).collect()
}

/// The reward pick of a group: the candidates with the highest reward (several on a tie).
pub fn reward_pick(group: &[Candidate], members: &[usize]) -> Vec<usize> {
    best_by(members, |i| group[i].reward)
}

/// The argmax pick of a group: the candidates whose argmax class ranks best.
pub fn argmax_pick(group: &[Candidate], members: &[usize]) -> Vec<usize> {
    best_by(members, |i| -(group[i].grader_class as f64))
}

/// The probability that each picker's pick is good, on one group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PickScores {
    /// The highest-reward completion (ties: the share of good ones among the tied).
    pub reward: f64,
    /// A uniformly random completion: the share of good ones.
    pub random: f64,
    /// The completion with the best grader argmax class (ties as for the reward).
    pub argmax: f64,
}

fn share(good: &[bool], of: &[usize]) -> f64 {
    of.iter().filter(|&&i| good[i]).count() as f64 / of.len() as f64
}

/// The pickers' scores on one group under an outcome, or why the group does not count.
pub fn score_group(group: &[Candidate], outcome: Outcome) -> Result<PickScores, Skip> {
    let labels = outcome.labels(group);
    let members: Vec<usize> = (0..group.len()).filter(|&i| labels[i].is_some()).collect();
    if members.len() < 2 {
        return Err(Skip::TooFewLabelled);
    }
    let good: Vec<bool> = labels.iter().map(|l| l.unwrap_or(false)).collect();
    let n_good = members.iter().filter(|&&i| good[i]).count();
    if n_good == 0 || n_good == members.len() {
        return Err(Skip::NoDifference);
    }
    Ok(PickScores {
        reward: share(&good, &reward_pick(group, &members)),
        random: share(&good, &members),
        argmax: share(&good, &argmax_pick(group, &members)),
    })
}

/// Why a group does not count towards an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Fewer than two of its completions have a label for the outcome.
    TooFewLabelled,
    /// Its labelled completions all have the same outcome.
    NoDifference,
}

/// A rate or a difference in percent (points), with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Point estimate; absent when no prompt counts.
    pub value: Option<f64>,
    /// Percentile bootstrap interval; absent without prompts or replicates.
    pub ci: Option<[f64; 2]>,
}

/// One outcome's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeReport {
    /// What makes a pick good.
    pub outcome: Outcome,
    /// Completions (in groups of two or more) whose labels do not decide the outcome; they take
    /// no part in it.
    pub unlabelled_samples: usize,
    /// Groups left with fewer than two labelled completions.
    pub groups_too_few_labelled: usize,
    /// Groups whose labelled completions all have the same outcome.
    pub groups_without_difference: usize,
    /// Prompts whose completions differ in the outcome: the ones the rates are over.
    pub n_prompts: usize,
    /// The reward pick's rate (percent).
    pub reward: Estimate,
    /// A random pick's rate (percent).
    pub random: Estimate,
    /// The grader-argmax pick's rate (percent).
    pub argmax: Estimate,
    /// Reward − random, paired over prompts (points).
    pub reward_minus_random: Estimate,
    /// Reward − argmax, paired over prompts (points).
    pub reward_minus_argmax: Estimate,
}

/// The whole selection report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectReport {
    /// Completions read and scored.
    pub n_samples: usize,
    /// Groups (prompts) with two or more completions.
    pub n_groups: usize,
    /// Prompts with a single completion: nothing to select, skipped.
    pub single_completion_prompts: usize,
    /// Bootstrap replicates.
    pub bootstrap: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// Interval level.
    pub confidence: f64,
    /// One entry per outcome.
    pub outcomes: Vec<OutcomeReport>,
}

/// Evaluate the pickers on `groups` (each a prompt's completions; groups of one are counted and
/// skipped).
pub fn evaluate(groups: &[Vec<Candidate>], bootstrap: usize, seed: u64) -> SelectReport {
    let multi: Vec<&Vec<Candidate>> = groups.iter().filter(|g| g.len() >= 2).collect();
    let outcomes = Outcome::ALL
        .into_iter()
        .map(|outcome| {
            let mut report = OutcomeReport {
                outcome,
                unlabelled_samples: 0,
                groups_too_few_labelled: 0,
                groups_without_difference: 0,
                n_prompts: 0,
                reward: Estimate::EMPTY,
                random: Estimate::EMPTY,
                argmax: Estimate::EMPTY,
                reward_minus_random: Estimate::EMPTY,
                reward_minus_argmax: Estimate::EMPTY,
            };
            let mut scores = Vec::new();
            for g in &multi {
                report.unlabelled_samples +=
                    outcome.labels(g).iter().filter(|l| l.is_none()).count();
                match score_group(g, outcome) {
                    Ok(s) => scores.push(s),
                    Err(Skip::TooFewLabelled) => report.groups_too_few_labelled += 1,
                    Err(Skip::NoDifference) => report.groups_without_difference += 1,
                }
            }
            report.n_prompts = scores.len();
            let estimates = estimates(&scores, bootstrap, seed, outcome.name());
            [
                report.reward,
                report.random,
                report.argmax,
                report.reward_minus_random,
                report.reward_minus_argmax,
            ] = estimates;
            report
        })
        .collect();
    SelectReport {
        n_samples: groups.iter().map(Vec::len).sum(),
        n_groups: multi.len(),
        single_completion_prompts: groups.len() - multi.len(),
        bootstrap,
        seed,
        confidence: CONFIDENCE,
        outcomes,
    }
}

impl Estimate {
    const EMPTY: Estimate = Estimate {
        value: None,
        ci: None,
    };
}

/// The five statistics of a set of per-prompt scores: reward, random, argmax, reward − random,
/// reward − argmax (percent), each from the mean over prompts.
fn statistics(scores: &[PickScores], idx: impl Iterator<Item = usize>) -> [f64; 5] {
    let mut sum = [0.0; 3];
    let mut n = 0usize;
    for i in idx {
        let s = scores[i];
        sum[0] += s.reward;
        sum[1] += s.random;
        sum[2] += s.argmax;
        n += 1;
    }
    let m = sum.map(|x| 100.0 * x / n as f64);
    [m[0], m[1], m[2], m[0] - m[1], m[0] - m[2]]
}

/// Point estimates and percentile intervals of the five statistics, resampling prompts with one
/// seeded stream per outcome (`label`).
fn estimates(scores: &[PickScores], bootstrap: usize, seed: u64, label: &str) -> [Estimate; 5] {
    let n = scores.len();
    if n == 0 {
        return [Estimate::EMPTY; 5];
    }
    let point = statistics(scores, 0..n);
    let mut reps: [Vec<f64>; 5] = Default::default();
    let mut rng = stream(seed, label);
    let mut idx = Vec::with_capacity(n);
    for _ in 0..bootstrap {
        idx.clear();
        idx.extend((0..n).map(|_| rng.below(n)));
        let stats = statistics(scores, idx.iter().copied());
        for (r, v) in reps.iter_mut().zip(stats) {
            r.push(v);
        }
    }
    let mut out = [Estimate::EMPTY; 5];
    for k in 0..5 {
        out[k] = Estimate {
            value: Some(point[k]),
            ci: percentile_interval(&mut reps[k], CONFIDENCE),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(
        reward: f64,
        grader_class: usize,
        harmless: Option<bool>,
        human: Option<usize>,
    ) -> Candidate {
        Candidate {
            reward,
            grader_class,
            harmless,
            human_class: human,
        }
    }

    #[test]
    fn reward_picks_the_harmless_completion() {
        // Rewards 2 > 1 > 0; the highest is the only harmless one; the argmax class favours a
        // harmful one (class 0) over the harmless one (class 2).
        let g = vec![
            c(2.0, 2, Some(true), None),
            c(1.0, 0, Some(false), None),
            c(0.0, 3, Some(false), None),
        ];
        let s = score_group(&g, Outcome::Harmless).unwrap();
        assert_eq!(s.reward, 1.0);
        assert_eq!(s.random, 1.0 / 3.0);
        assert_eq!(s.argmax, 0.0);
    }

    #[test]
    fn ties_score_the_share_of_good_completions_among_the_tied() {
        // Two tied at the top reward, one good: 1/2. The argmax class ties three ways (class 1),
        // two of them good: 2/3. Random: 2/4.
        let g = vec![
            c(5.0, 1, Some(true), None),
            c(5.0, 1, Some(false), None),
            c(1.0, 1, Some(true), None),
            c(0.0, 4, Some(false), None),
        ];
        let s = score_group(&g, Outcome::Harmless).unwrap();
        assert_eq!(s.reward, 0.5);
        assert_eq!(s.random, 0.5);
        assert!((s.argmax - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(reward_pick(&g, &[0, 1, 2, 3]), vec![0, 1]);
        assert_eq!(argmax_pick(&g, &[0, 1, 2, 3]), vec![0, 1, 2]);
    }

    #[test]
    fn groups_without_a_difference_or_labels_are_skipped_and_counted() {
        let same = vec![c(1.0, 0, Some(true), None), c(0.0, 1, Some(true), None)];
        assert_eq!(
            score_group(&same, Outcome::Harmless),
            Err(Skip::NoDifference)
        );
        // One labelled completion left: nothing to compare.
        let sparse = vec![c(1.0, 0, Some(true), None), c(0.0, 1, None, None)];
        assert_eq!(
            score_group(&sparse, Outcome::Harmless),
            Err(Skip::TooFewLabelled)
        );
        // The unlabelled completion has the highest reward but takes no part; the pick is
        // among the labelled ones (reward 1 harmless, 0 harmful).
        let mixed = vec![
            c(9.0, 0, None, None),
            c(1.0, 1, Some(true), None),
            c(0.0, 0, Some(false), None),
        ];
        let s = score_group(&mixed, Outcome::Harmless).unwrap();
        assert_eq!((s.reward, s.random, s.argmax), (1.0, 0.5, 0.0));

        let report = evaluate(
            &[same, sparse, mixed, vec![c(0.0, 0, Some(true), Some(0))]],
            0,
            0,
        );
        assert_eq!(report.n_samples, 8);
        assert_eq!(report.n_groups, 3);
        assert_eq!(report.single_completion_prompts, 1);
        let h = &report.outcomes[0];
        assert_eq!(h.outcome, Outcome::Harmless);
        assert_eq!(h.unlabelled_samples, 2);
        assert_eq!(h.groups_too_few_labelled, 1);
        assert_eq!(h.groups_without_difference, 1);
        assert_eq!(h.n_prompts, 1);
        assert_eq!(h.reward.value, Some(100.0));
        assert_eq!(h.random.value, Some(50.0));
        assert_eq!(h.reward_minus_argmax.value, Some(100.0));
        assert_eq!(h.reward.ci, None, "no replicates, no interval");
        // No human classes in the multi-completion groups: every completion unlabelled.
        let b = &report.outcomes[1];
        assert_eq!(b.unlabelled_samples, 7);
        assert_eq!(b.groups_too_few_labelled, 3);
        assert_eq!(b.n_prompts, 0);
        assert_eq!(b.reward, Estimate::EMPTY);
    }

    #[test]
    fn best_human_class_is_relative_to_the_classes_present() {
        // Best class present is 1 (no ideal completion): the two class-1 completions are good.
        let g = vec![
            c(0.0, 0, None, Some(1)),
            c(3.0, 0, None, Some(4)),
            c(2.0, 2, None, Some(1)),
            c(1.0, 1, None, None),
        ];
        assert_eq!(
            Outcome::BestHumanClass.labels(&g),
            vec![Some(true), Some(false), Some(true), None]
        );
        let s = score_group(&g, Outcome::BestHumanClass).unwrap();
        // Reward picks 3.0 (class 4, bad); argmax class 0 ties between the first two: 1/2.
        assert_eq!((s.reward, s.random, s.argmax), (0.0, 2.0 / 3.0, 0.5));
    }

    #[test]
    fn bootstrap_intervals_are_seeded_paired_and_cover_the_estimate() {
        // 40 prompts: the reward is right on 30, random always 1/2, argmax right on 20.
        let groups: Vec<Vec<Candidate>> = (0..40)
            .map(|i| {
                let reward_right = i < 30;
                let argmax_right = i % 2 == 0;
                vec![
                    c(
                        f64::from(u8::from(reward_right)),
                        usize::from(!argmax_right),
                        Some(true),
                        None,
                    ),
                    c(
                        f64::from(u8::from(!reward_right)),
                        usize::from(argmax_right),
                        Some(false),
                        None,
                    ),
                ]
            })
            .collect();
        let a = evaluate(&groups, 500, 7);
        let b = evaluate(&groups, 500, 7);
        assert_eq!(a, b);
        let h = &a.outcomes[0];
        assert_eq!(h.n_prompts, 40);
        assert_eq!(h.reward.value, Some(75.0));
        assert_eq!(h.random.value, Some(50.0));
        assert_eq!(h.argmax.value, Some(50.0));
        assert_eq!(h.reward_minus_random.value, Some(25.0));
        // Random is 1/2 on every prompt: its interval has no width, and the paired difference's
        // interval is the reward's shifted by 50 points.
        assert_eq!(h.random.ci, Some([50.0, 50.0]));
        let [lo, hi] = h.reward.ci.unwrap();
        let [dlo, dhi] = h.reward_minus_random.ci.unwrap();
        assert!(lo < 75.0 && 75.0 < hi, "{lo} {hi}");
        assert!((dlo - (lo - 50.0)).abs() < 1e-9 && (dhi - (hi - 50.0)).abs() < 1e-9);
    }
}
