//! Majority vote and its skill-weighted variants (Wawa, Zero-Based Skill).

use super::{Aggregator, Convergence, Fitted, Prepared};
use crate::{Ratings, StatsError};

/// Plain majority vote. Posterior = vote shares; skill = accuracy against the majority label.
#[derive(Debug, Clone, Copy, Default)]
pub struct MajorityVote;

impl Aggregator for MajorityVote {
    fn name(&self) -> &'static str {
        "mv"
    }
    fn fit(&self, ratings: &Ratings) -> Result<Fitted, StatsError> {
        let p = Prepared::new(ratings);
        let (shares, labels) = p.vote(None);
        let skills = p.accuracy(&p.distinct_answers(), &labels);
        Ok(p.finish(shares, skills, Convergence::closed_form()))
    }
}

/// Worker Agreement With Aggregate: skill = agreement with the majority vote, then a
/// skill-weighted vote.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wawa;

impl Aggregator for Wawa {
    fn name(&self) -> &'static str {
        "wawa"
    }
    fn fit(&self, ratings: &Ratings) -> Result<Fitted, StatsError> {
        let p = Prepared::new(ratings);
        let (_, mv_labels) = p.vote(None);
        let skills = p.accuracy(&p.distinct_answers(), &mv_labels);
        let (shares, _) = p.vote(Some(&skills));
        Ok(p.finish(shares, skills, Convergence::closed_form()))
    }
}

/// Zero-Based Skill: skills start at 1/K + ε and move towards the accuracy against the current
/// weighted vote, with a learning rate halved every `lr_steps_to_reduce` iterations. Like
/// crowd-kit it always runs `n_iter` iterations; `loss_history` records the largest skill
/// change per iteration and `converged` says whether the last one was below `eps`.
#[derive(Debug, Clone, Copy)]
pub struct ZeroBasedSkill {
    /// Iterations (100).
    pub n_iter: usize,
    /// Initial learning rate (1.0).
    pub lr_init: f64,
    /// Halve the rate when `iteration % lr_steps_to_reduce == 0`, iterations counted from 1 (20).
    pub lr_steps_to_reduce: usize,
    /// Factor applied to the rate (0.5).
    pub lr_reduce_factor: f64,
    /// Added to the initial skill 1/K (1e-5).
    pub eps: f64,
}

impl Default for ZeroBasedSkill {
    fn default() -> Self {
        ZeroBasedSkill {
            n_iter: 100,
            lr_init: 1.0,
            lr_steps_to_reduce: 20,
            lr_reduce_factor: 0.5,
            eps: 1e-5,
        }
    }
}

impl Aggregator for ZeroBasedSkill {
    fn name(&self) -> &'static str {
        "zbs"
    }
    fn fit(&self, ratings: &Ratings) -> Result<Fitted, StatsError> {
        let p = Prepared::new(ratings);
        let distinct = p.distinct_answers();
        let start = if p.k > 0 { 1.0 / p.k as f64 } else { 0.0 } + self.eps;
        let mut skills = vec![start; p.n_raters];
        let mut lr = self.lr_init;
        let mut history = Vec::with_capacity(self.n_iter);
        for iteration in 1..=self.n_iter {
            if self.lr_steps_to_reduce > 0 && iteration % self.lr_steps_to_reduce == 0 {
                lr *= self.lr_reduce_factor;
            }
            let (_, labels) = p.vote(Some(&skills));
            let acc = p.accuracy(&distinct, &labels);
            let mut max_change: f64 = 0.0;
            for (s, a) in skills.iter_mut().zip(&acc) {
                let step = lr * (a - *s);
                *s += step;
                max_change = max_change.max(step.abs());
            }
            history.push(max_change);
        }
        let (shares, _) = p.vote(Some(&skills));
        let converged = history.last().is_none_or(|c| *c < self.eps);
        Ok(p.finish(
            shares,
            skills,
            Convergence {
                iterations: self.n_iter,
                converged,
                loss_history: history,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::table;
    use super::*;

    #[test]
    fn ties_go_to_the_smallest_label() {
        let t = table(&[
            ("a", "x", "b"),
            ("a", "y", "a"),
            ("b", "x", "2"),
            ("b", "y", "10"),
        ]);
        let f = MajorityVote.fit(&t).unwrap();
        // Domain: 10, 2, a, b (lexicographic because not all numeric).
        assert_eq!(t.domain().values(), ["10", "2", "a", "b"]);
        assert_eq!(f.labels, [Some(2), Some(0)]);
    }

    #[test]
    fn wawa_downweights_the_outlier() {
        // z disagrees with the majority everywhere; on item d, x is alone against z and the
        // tie breaks by skill, not by label order.
        let t = table(&[
            ("a", "x", "1"),
            ("a", "y", "1"),
            ("a", "z", "0"),
            ("b", "x", "0"),
            ("b", "y", "0"),
            ("b", "z", "1"),
            ("d", "x", "1"),
            ("d", "z", "0"),
        ]);
        assert_eq!(MajorityVote.fit(&t).unwrap().labels[2], Some(0));
        let f = Wawa.fit(&t).unwrap();
        assert_eq!(f.labels[2], Some(1));
        assert!((f.skills[2].unwrap() - 1.0 / 3.0).abs() < 1e-12);
    }
}
