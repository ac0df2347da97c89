//! The one privacy rule: what may leave the server about raters' self-described identity.
//!
//! Every output derived from raters (dashboard, JSON API, exports, datasheet, agreement and
//! dividing items by pool) takes its identity-bearing groups from here. Pure code over counts,
//! so the rule can be property-tested without a server.
//!
//! **The rule.** With `k = max(project k_min, 5)`:
//! 1. *Groups under k are merged.* Per question, the answer counts (with "no answer" as a
//!    group of its own, so the cells add up to the number of raters) are published only for
//!    groups of at least k; smaller groups are merged, and when the merge is itself under k the
//!    next smallest groups join it until it reaches k. When all raters together are under k,
//!    the question is withheld. Pools are treated as one such question whenever any pool is
//!    chosen by an identity answer: a pool under k is merged with others into one class, in
//!    every output, including each export row's pool column.
//! 2. *Counts change only in steps of at least k.* Counts of groups (answers and pool sizes)
//!    come from stored [`Snapshot`]s, never live. A new snapshot is taken only after at least
//!    k raters joined or left since the last one, and only when, against every earlier
//!    snapshot, each published number (every group, the merged group and the total) either
//!    stayed the same or moved by at least k. Otherwise the last snapshot stays in force, so
//!    comparing any two releases never isolates fewer than k raters.
//!
//! **Limits** (stated in the server README and the datasheet): labels in exports carry the
//! rater's pseudonym and pool class, so a pseudonym is known to belong to a class of at least k
//! raters (k-anonymity of the released rows, not of the attacker's outside knowledge); a reader
//! who learns a merged group's make-up elsewhere can narrow it down.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The smallest k the server accepts; projects may only raise it.
pub const K_FLOOR: usize = crate::model::K_MIN_FLOOR as usize;

/// The group of raters who gave no answer to a question (skipped, declined or "prefer not to
/// say"): counted like any other group so the published cells add up to the raters.
pub const NO_ANSWER: &str = "(no answer)";

/// The released name of pools merged because some were under k.
pub const MERGED_POOLS: &str = "(pools under k, merged)";

/// The released name of every pool when all raters together are under k.
pub const WITHHELD_POOLS: &str = "(withheld: fewer than k raters)";

/// The project's k: its `k_min`, never below the floor.
pub fn k_of(k_min: i64) -> usize {
    (k_min.max(0) as usize).max(K_FLOOR)
}

/// Counts of one question (or of pools) after suppression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    /// Group → count, only groups of at least k.
    pub groups: BTreeMap<String, usize>,
    /// Raters in merged groups (at least k), when any group was merged.
    pub merged_small_groups: Option<usize>,
    /// True when all raters together are under k, so nothing is shown.
    pub withheld: bool,
    /// Which groups were merged: never published, used to name pool classes.
    #[serde(skip)]
    pub merged: BTreeSet<String>,
}

/// Suppresses groups under `k`: merges the smallest groups until the merge reaches k, so no
/// group under k can be read off, nor derived from a total.
pub fn suppress(k: usize, counts: &BTreeMap<String, usize>) -> Groups {
    let total: usize = counts.values().sum();
    if total == 0 {
        return Groups {
            groups: BTreeMap::new(),
            merged_small_groups: None,
            withheld: false,
            merged: BTreeSet::new(),
        };
    }
    if total < k {
        return Groups {
            groups: BTreeMap::new(),
            merged_small_groups: None,
            withheld: true,
            merged: counts.keys().cloned().collect(),
        };
    }
    // Smallest first; ties by name so the result is stable.
    let mut sorted: Vec<(&String, usize)> = counts
        .iter()
        .filter(|(_, c)| **c > 0)
        .map(|(a, c)| (a, *c))
        .collect();
    sorted.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    let mut merged = BTreeSet::new();
    let mut merged_n = 0;
    let small = sorted.iter().take_while(|(_, c)| *c < k).count();
    if small > 0 {
        for (a, c) in &sorted {
            if merged.len() >= small && merged_n >= k {
                break;
            }
            merged.insert((*a).clone());
            merged_n += c;
        }
    }
    Groups {
        groups: sorted
            .iter()
            .filter(|(a, _)| !merged.contains(*a))
            .map(|(a, c)| ((*a).clone(), *c))
            .collect(),
        merged_small_groups: (!merged.is_empty()).then_some(merged_n),
        withheld: false,
        merged,
    }
}

/// How pools are released: each pool's published class name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolClasses {
    /// Pool id → class name (the pool's own name, [`MERGED_POOLS`] or [`WITHHELD_POOLS`]).
    pub class: BTreeMap<i64, String>,
    /// Whether pool membership carries identity (some pool is chosen by an answer).
    pub identity: bool,
}

impl PoolClasses {
    /// The published class of a pool: empty for no pool (a rater before the questionnaire),
    /// withheld for a pool not in the map.
    pub fn of(&self, pool: Option<i64>) -> &str {
        match pool {
            None => "",
            Some(p) => self.class.get(&p).map_or(WITHHELD_POOLS, String::as_str),
        }
    }
}

/// Classes of the current pools from their live sizes. Without identity pools every pool is
/// its own class; with them, pools under k are merged by [`suppress`].
pub fn pool_classes(
    k: usize,
    pools: &[(i64, String, bool)],
    sizes: &BTreeMap<i64, usize>,
) -> PoolClasses {
    let identity = pools.iter().any(|(_, _, rule)| *rule);
    if !identity {
        return PoolClasses {
            class: pools
                .iter()
                .map(|(id, name, _)| (*id, name.clone()))
                .collect(),
            identity,
        };
    }
    let counts: BTreeMap<String, usize> = pools
        .iter()
        .map(|(id, name, _)| (name.clone(), sizes.get(id).copied().unwrap_or(0)))
        .collect();
    let g = suppress(k, &counts);
    PoolClasses {
        class: pools
            .iter()
            .map(|(id, name, _)| {
                let class = if g.withheld {
                    WITHHELD_POOLS
                } else if g.merged.contains(name) {
                    MERGED_POOLS
                } else {
                    name.as_str()
                };
                (*id, class.to_string())
            })
            .collect(),
        identity,
    }
}

/// The live counts a snapshot is made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Raters who finished the questionnaire step (answered or declined).
    pub raters: usize,
    /// Per question id: answer → raters (without [`NO_ANSWER`]; it is derived).
    pub answers: BTreeMap<String, BTreeMap<String, usize>>,
    /// Pool name → raters, when pools carry identity; empty otherwise.
    pub pools: BTreeMap<String, usize>,
    /// Joins and withdrawals counted so far (monotone).
    pub changes: u64,
}

/// A released snapshot of group counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// 1, 2, …; 0 for the empty release before any snapshot.
    pub seq: i64,
    /// When it was taken (ms since the epoch).
    pub taken_at: i64,
    /// Raters counted (published only when at least k).
    pub raters: Option<usize>,
    /// Per question id, in questionnaire order.
    pub questions: Vec<(String, Groups)>,
    /// Pool sizes, when pools carry identity.
    pub pools: Option<Groups>,
    /// The census's change counter when taken.
    pub changes: u64,
}

impl Snapshot {
    /// The release before any snapshot: nothing published.
    pub fn empty() -> Snapshot {
        Snapshot {
            seq: 0,
            taken_at: 0,
            raters: None,
            questions: Vec::new(),
            pools: None,
            changes: 0,
        }
    }

    /// Every published number under a stable key: what a reader can compare across releases.
    pub fn cells(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        if let Some(n) = self.raters {
            out.insert("raters".to_string(), n);
        }
        let mut add = |prefix: &str, g: &Groups| {
            for (a, c) in &g.groups {
                out.insert(format!("{prefix}\u{1f}{a}"), *c);
            }
            if let Some(m) = g.merged_small_groups {
                out.insert(format!("{prefix}\u{1f}\u{1f}merged"), m);
            }
        };
        for (q, g) in &self.questions {
            add(&format!("q\u{1f}{q}"), g);
        }
        if let Some(p) = &self.pools {
            add("pools", p);
        }
        out
    }
}

/// Builds the candidate snapshot from a census.
pub fn candidate(k: usize, questions: &[String], census: &Census, seq: i64, now: i64) -> Snapshot {
    let questions = questions
        .iter()
        .map(|q| {
            let mut counts = census.answers.get(q).cloned().unwrap_or_default();
            let answered: usize = counts.values().sum();
            let none = census.raters.saturating_sub(answered);
            if none > 0 {
                counts.insert(NO_ANSWER.to_string(), none);
            }
            (q.clone(), suppress(k, &counts))
        })
        .collect();
    Snapshot {
        seq,
        taken_at: now,
        raters: (census.raters >= k).then_some(census.raters),
        questions,
        pools: (!census.pools.is_empty()).then(|| suppress(k, &census.pools)),
        changes: census.changes,
    }
}

/// Whether publishing `next` after `earlier` releases keeps every difference of a published
/// number at 0 or at least k (the numbers are already at least k each).
pub fn safe_after(k: usize, next: &Snapshot, earlier: &[Snapshot]) -> bool {
    let cells = next.cells();
    earlier.iter().all(|e| {
        e.cells().iter().all(|(key, before)| match cells.get(key) {
            Some(after) => before.abs_diff(*after) == 0 || before.abs_diff(*after) >= k,
            None => true,
        })
    })
}

/// What to publish now: a new snapshot when at least k joins and withdrawals happened since the
/// last one and it is safe against every earlier release; otherwise `None` (the latest stays).
pub fn next_snapshot(
    k: usize,
    questions: &[String],
    census: &Census,
    earlier: &[Snapshot],
    now: i64,
) -> Option<Snapshot> {
    let last = earlier.last();
    let since = census.changes - last.map_or(0, |s| s.changes).min(census.changes);
    if last.is_some() && since < k as u64 {
        return None;
    }
    let seq = last.map_or(1, |s| s.seq + 1);
    let next = candidate(k, questions, census, seq, now);
    if let Some(l) = last
        && l.cells() == next.cells()
    {
        return None;
    }
    safe_after(k, &next, earlier).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(&str, usize)]) -> BTreeMap<String, usize> {
        v.iter().map(|(a, c)| (a.to_string(), *c)).collect()
    }

    #[test]
    fn small_groups_merge_until_the_merge_reaches_k() {
        let g = suppress(5, &counts(&[("a", 7), ("b", 3)]));
        assert!(g.groups.is_empty());
        assert_eq!(g.merged_small_groups, Some(10));
        let g = suppress(5, &counts(&[("a", 1), ("b", 1), ("c", 10), ("d", 12)]));
        assert_eq!(g.groups, counts(&[("d", 12)]));
        assert_eq!(g.merged_small_groups, Some(12));
        let g = suppress(5, &counts(&[("a", 2), ("b", 2)]));
        assert!(g.withheld && g.groups.is_empty() && g.merged_small_groups.is_none());
        let g = suppress(5, &counts(&[("a", 5), ("b", 6)]));
        assert_eq!(g.groups.len(), 2);
        assert_eq!(g.merged_small_groups, None);
        assert_eq!(k_of(2), 5);
        assert_eq!(k_of(8), 8);
    }

    #[test]
    fn a_two_member_identity_pool_is_never_named() {
        let pools = vec![
            (1, "women".to_string(), true),
            (2, "everyone".to_string(), false),
        ];
        let sizes = BTreeMap::from([(1, 2), (2, 30)]);
        let c = pool_classes(5, &pools, &sizes);
        assert_eq!(c.of(Some(1)), MERGED_POOLS);
        assert_eq!(c.of(Some(2)), MERGED_POOLS);
        let sizes = BTreeMap::from([(1, 6), (2, 30)]);
        let c = pool_classes(5, &pools, &sizes);
        assert_eq!(c.of(Some(1)), "women");
        // Without identity pools, names are kept at any size.
        let plain = vec![(1, "a".to_string(), false), (2, "b".to_string(), false)];
        assert_eq!(
            pool_classes(5, &plain, &BTreeMap::from([(1, 1)])).of(Some(1)),
            "a"
        );
    }

    #[test]
    fn one_withdrawal_does_not_move_the_release() {
        let qs = vec!["gender".to_string()];
        let mut census = Census {
            raters: 12,
            answers: BTreeMap::from([("gender".to_string(), counts(&[("man", 5), ("woman", 7)]))]),
            pools: BTreeMap::new(),
            changes: 12,
        };
        let first = next_snapshot(5, &qs, &census, &[], 1).expect("first release");
        assert_eq!(first.questions[0].1.groups["man"], 5);
        // One man withdraws: the change count moved by 1, so the release stays.
        census.raters = 11;
        census
            .answers
            .get_mut("gender")
            .map(|m| m.insert("man".into(), 4));
        census.changes = 13;
        assert!(next_snapshot(5, &qs, &census, std::slice::from_ref(&first), 2).is_none());
    }
}
