//! The one privacy rule: what may leave the server about raters' self-described identity.
//!
//! Every output derived from raters (dashboard, JSON API, exports, datasheet, agreement and
//! dividing items by pool) takes its identity-bearing groups from here. Pure code over counts,
//! so the rule can be property-tested without a server.
//!
//! Identity leaves the server in exactly two forms, which describe disjoint attributes so that
//! neither can be subtracted from the other:
//!
//! 1. **Pool classes, per record.** When any pool is chosen by an identity answer, each label's
//!    pool (in exports, and the per-pool rows of the dashboard) is its pool's *class*: the
//!    pool's own name when the pool has at least k raters, else a merge of the smallest pools
//!    that reaches k ([`pool_classes`]), else withheld. Every named class holds at least k
//!    raters at every moment (k-anonymity of the released rows). The answers to questions that
//!    choose pools are released only in this form, never as counts.
//! 2. **Answer counts, from snapshots.** For every other question, counts per answer ("no
//!    answer" is a group of its own, so the cells add up to the raters) are published only for
//!    groups of at least k; smaller groups are merged until the merge reaches k; with fewer
//!    than k raters in all nothing is published. The counts come from stored [`Snapshot`]s,
//!    never live: a new snapshot is taken only after at least k raters joined or left, and only
//!    when, against every earlier snapshot, the size of every set of answers both releases
//!    determine ([`comparable`]) stayed the same or moved by at least k; otherwise the last one
//!    stays in force. Comparing any two releases never isolates fewer than k raters.
//!
//! With `k = max(project k_min, 5)`. **Limits** (stated in the server README and the
//! datasheet): a pseudonym is known to belong to its class of at least k raters, and as raters
//! join or leave a class its members change record by record; a reader who learns a merged
//! group's make-up elsewhere can narrow it down; a release may wait long when a count keeps
//! moving by less than k.

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
    /// Every possible answer (the questionnaire's options and "no answer", or every pool):
    /// public, and what a reader knows the rest is made of.
    #[serde(default)]
    pub universe: Vec<String>,
}

/// Suppresses groups under `k`: merges the smallest groups until the merge reaches k, so no
/// group under k can be read off, nor derived from a total.
///
/// `counts` names every possible group, zero counts included: they make up the universe.
pub fn suppress(k: usize, counts: &BTreeMap<String, usize>) -> Groups {
    let total: usize = counts.values().sum();
    let universe: Vec<String> = counts.keys().cloned().collect();
    if total == 0 {
        return Groups {
            groups: BTreeMap::new(),
            merged_small_groups: None,
            withheld: false,
            merged: BTreeSet::new(),
            universe,
        };
    }
    if total < k {
        return Groups {
            groups: BTreeMap::new(),
            merged_small_groups: None,
            withheld: true,
            merged: counts.keys().cloned().collect(),
            universe,
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
        universe,
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
            changes: 0,
        }
    }

    /// Every published number under a stable key.
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
        out
    }
}

/// A questionnaire question as the release layer sees it: its id and the answers it stores
/// (its options without "prefer not to say", which is stored as no answer).
pub type QuestionShape = (String, Vec<String>);

/// Builds the candidate snapshot from a census.
pub fn candidate(
    k: usize,
    questions: &[QuestionShape],
    census: &Census,
    seq: i64,
    now: i64,
) -> Snapshot {
    let questions = questions
        .iter()
        .map(|(q, options)| {
            let mut counts: BTreeMap<String, usize> =
                options.iter().map(|o| (o.clone(), 0)).collect();
            for (answer, c) in census.answers.get(q).into_iter().flatten() {
                *counts.entry(answer.clone()).or_default() += c;
            }
            let answered: usize = counts.values().sum();
            counts.insert(
                NO_ANSWER.to_string(),
                census.raters.saturating_sub(answered),
            );
            (q.clone(), suppress(k, &counts))
        })
        .collect();
    Snapshot {
        seq,
        taken_at: now,
        raters: (census.raters >= k).then_some(census.raters),
        questions,
        changes: census.changes,
    }
}

/// The counts of raters a reader can compute exactly from two releases together, as families
/// of `(what, in a, in b)`: all raters, then per question the smallest sets of answers whose
/// sizes both releases determine. Any union of one family's sets is determined too (its size is
/// the sum), so [`safe_after`] checks every such union, not only the smallest sets.
///
/// Within one question, each release splits the possible answers (its
/// `universe`, public) into cells: each group it shows, and the rest (merged, or empty), whose
/// size is the total minus the shown groups. A set of answers has a size both releases
/// determine exactly when it is a union of cells in each; the smallest such sets are the
/// connected components of the cells' overlaps, and every other such set is a union of them.
/// Withheld releases (under k raters in all) determine nothing exactly.
pub fn comparable(a: &Snapshot, b: &Snapshot) -> Vec<Vec<(String, usize, usize)>> {
    let (Some(na), Some(nb)) = (a.raters, b.raters) else {
        return Vec::new();
    };
    let mut out = vec![vec![("raters".to_string(), na, nb)]];
    for (q, ga) in &a.questions {
        if let Some((_, gb)) = b.questions.iter().find(|(id, _)| id == q) {
            out.push(common_blocks(q, (ga, na), (gb, nb)));
        }
    }
    out
}

/// The smallest sets of answers whose sizes two releases of one question both determine.
fn common_blocks(
    what: &str,
    a: (&Groups, usize),
    b: (&Groups, usize),
) -> Vec<(String, usize, usize)> {
    let values: Vec<&str> = {
        let mut v: Vec<&str> =
            a.0.universe
                .iter()
                .chain(&b.0.universe)
                .chain(a.0.groups.keys())
                .chain(b.0.groups.keys())
                .map(String::as_str)
                .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let index = |v: &str| values.binary_search(&v).ok();
    let mut parent: Vec<usize> = (0..values.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    // A release's rest is one cell: join its answers.
    let rests: Vec<Vec<usize>> = [a.0, b.0]
        .iter()
        .map(|g| {
            (0..values.len())
                .filter(|i| !g.groups.contains_key(values[*i]))
                .collect()
        })
        .collect();
    for rest in &rests {
        for w in rest.windows(2) {
            let (x, y) = (root(&mut parent, w[0]), root(&mut parent, w[1]));
            parent[x] = y;
        }
    }
    // Sizes per component, from each release's published numbers only.
    let mut sums: BTreeMap<usize, [usize; 2]> = BTreeMap::new();
    for (side, (g, n)) in [a, b].into_iter().enumerate() {
        let shown: usize = g.groups.values().sum();
        if let Some(&first) = rests[side].first() {
            sums.entry(root(&mut parent, first)).or_default()[side] += n.saturating_sub(shown);
        }
        for (v, c) in &g.groups {
            if let Some(i) = index(v) {
                sums.entry(root(&mut parent, i)).or_default()[side] += c;
            }
        }
    }
    let mut members: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        members.entry(root(&mut parent, i)).or_default().push(v);
    }
    sums.into_iter()
        .map(|(r, [x, y])| {
            let name = members.get(&r).map(|m| m.join(" + ")).unwrap_or_default();
            (format!("{what}: {name}"), x, y)
        })
        .collect()
}

/// Whether publishing `next` after `earlier` releases keeps every count a reader can compute
/// from two releases (see [`comparable`]) unchanged or moved by at least k: each smallest set,
/// and each union of one family's sets, since a set that grew by k and one that shrank by k − 1
/// together moved by one rater.
pub fn safe_after(k: usize, next: &Snapshot, earlier: &[Snapshot]) -> bool {
    earlier.iter().all(|e| {
        comparable(e, next).iter().all(|family| {
            let moves: Vec<i64> = family
                .iter()
                .map(|(_, x, y)| *y as i64 - *x as i64)
                .collect();
            no_small_move(k, &moves)
        })
    })
}

/// Whether no nonempty selection of `moves` sums to a move under k (zero excepted).
///
/// Moves of one sign only add up away from zero, so each alone is checked; mixed signs need
/// the sums every selection reaches, marked in a table over the range they can span (at most
/// twice the raters counted), one pass per move.
fn no_small_move(k: usize, moves: &[i64]) -> bool {
    let k = k as i64;
    let moves: Vec<i64> = moves.iter().copied().filter(|d| *d != 0).collect();
    if moves.iter().any(|d| d.abs() < k) {
        return false;
    }
    if moves.iter().all(|d| *d > 0) || moves.iter().all(|d| *d < 0) {
        return true;
    }
    let below: i64 = moves.iter().filter(|d| **d < 0).map(|d| -d).sum();
    let above: i64 = moves.iter().filter(|d| **d > 0).sum();
    let at = |sum: i64| (sum + below) as usize;
    let mut reached = vec![false; at(above) + 1];
    for &d in &moves {
        // Each selection without `d` extended by it, read before written (downwards for a
        // gain, upwards for a loss) so that `d` is added once.
        let shift = d.unsigned_abs() as usize;
        if d > 0 {
            for i in (0..reached.len() - shift).rev() {
                reached[i + shift] |= reached[i];
            }
        } else {
            for i in shift..reached.len() {
                reached[i - shift] |= reached[i];
            }
        }
        reached[at(d)] = true;
    }
    (-(k - 1)..k)
        .filter(|&s| s != 0 && -below <= s && s <= above)
        .all(|s| !reached[at(s)])
}

/// What to publish now: a new snapshot when at least k joins and withdrawals happened since the
/// last one and it is safe against every earlier release; otherwise `None` (the latest stays).
pub fn next_snapshot(
    k: usize,
    questions: &[QuestionShape],
    census: &Census,
    earlier: &[Snapshot],
    now: i64,
) -> Option<Snapshot> {
    let last = earlier.last();
    let since = census.changes.saturating_sub(last.map_or(0, |s| s.changes));
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
        let qs = vec![(
            "gender".to_string(),
            vec!["man".to_string(), "woman".to_string()],
        )];
        let mut census = Census {
            raters: 12,
            answers: BTreeMap::from([("gender".to_string(), counts(&[("man", 5), ("woman", 7)]))]),
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

    #[test]
    fn sets_that_moved_by_k_but_together_by_one_hold_the_release() {
        let qs = vec![(
            "age".to_string(),
            vec!["18-29".to_string(), "30-49".to_string(), "50+".to_string()],
        )];
        let census = |young: usize, middle: usize, old: usize, changes: u64| Census {
            raters: young + middle + old,
            answers: BTreeMap::from([(
                "age".to_string(),
                counts(&[("18-29", young), ("30-49", middle), ("50+", old)]),
            )]),
            changes,
        };
        let first = next_snapshot(5, &qs, &census(10, 10, 10, 30), &[], 1).expect("first");
        // 18-29 grows by 6, 30-49 shrinks by 5, 50+ grows by 5: each answer and the total
        // moved by at least k, but "under 50" moved by one rater.
        let later = census(16, 5, 15, 46);
        assert!(next_snapshot(5, &qs, &later, std::slice::from_ref(&first), 2).is_none());
        // Once "under 50" has moved by k as well, the release may go out.
        let later = census(20, 5, 15, 50);
        let second = next_snapshot(5, &qs, &later, std::slice::from_ref(&first), 3);
        assert_eq!(second.expect("second").questions[0].1.groups["18-29"], 20);
    }

    #[test]
    fn small_moves_are_found_in_any_selection() {
        assert!(no_small_move(5, &[]));
        assert!(no_small_move(5, &[0, 5, 9, 0]));
        assert!(no_small_move(5, &[-5, -7]));
        assert!(!no_small_move(5, &[4]));
        assert!(!no_small_move(5, &[6, -5]));
        assert!(!no_small_move(5, &[12, -5, -5]));
        assert!(no_small_move(5, &[12, -6, -6]));
        assert!(no_small_move(5, &[10, -5]));
    }

    use proptest::prelude::*;

    /// A rater of the simulated project: an answer (or none) per question.
    #[derive(Debug, Clone)]
    struct Sim {
        answers: Vec<Option<usize>>,
    }

    /// Everything a reader can compute from release `r` about the answers in `set`, if the
    /// set is a union of the release's published cells (shown answers and the rest).
    fn count_of(
        r: &Snapshot,
        group: Option<&Groups>,
        universe: &[String],
        set: &BTreeSet<String>,
    ) -> Option<usize> {
        let n = r.raters?;
        let g = group?;
        let rest: BTreeSet<String> = universe
            .iter()
            .filter(|v| !g.groups.contains_key(*v))
            .cloned()
            .collect();
        let rest_n = n - g.groups.values().sum::<usize>();
        let mut total = 0;
        let mut covered = BTreeSet::new();
        for (v, c) in &g.groups {
            if set.contains(v) {
                total += c;
                covered.insert(v.clone());
            }
        }
        if rest.iter().any(|v| set.contains(v)) {
            if !rest.iter().all(|v| set.contains(v)) {
                return None;
            }
            total += rest_n;
            covered.extend(rest);
        }
        (covered == *set).then_some(total)
    }

    fn attacker_finds_a_small_group(
        k: usize,
        releases: &[Snapshot],
        universes: &[(String, Vec<String>)],
    ) -> Option<String> {
        for r in releases {
            for (key, v) in r.cells() {
                if v < k {
                    return Some(format!("release {} publishes {key} = {v}", r.seq));
                }
            }
        }
        for (i, a) in releases.iter().enumerate() {
            for b in &releases[i + 1..] {
                for (question, universe) in universes {
                    let group = |r: &Snapshot| -> Option<Groups> {
                        r.questions
                            .iter()
                            .find(|(id, _)| id == question)
                            .map(|(_, g)| g.clone())
                    };
                    let (ga, gb) = (group(a), group(b));
                    // Every subset of the possible answers, the empty one excluded.
                    for mask in 1u32..(1 << universe.len()) {
                        let set: BTreeSet<String> = universe
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| mask & (1 << i) != 0)
                            .map(|(_, v)| v.clone())
                            .collect();
                        if let (Some(x), Some(y)) = (
                            count_of(a, ga.as_ref(), universe, &set),
                            count_of(b, gb.as_ref(), universe, &set),
                        ) {
                            let d = x.abs_diff(y);
                            if d > 0 && d < k {
                                return Some(format!(
                                    "releases {} and {}: {question:?} {set:?} moved {x} -> {y}",
                                    a.seq, b.seq
                                ));
                            }
                        }
                    }
                }
            }
        }
        None
    }

    proptest! {
        /// The table of reached sums against every selection, enumerated.
        #[test]
        fn small_moves_match_every_selection_enumerated(
            k in 5usize..8,
            moves in proptest::collection::vec(-60i64..60, 0..10),
        ) {
            let small = (1u32..(1 << moves.len())).any(|mask| {
                let sum: i64 = moves
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, d)| d)
                    .sum();
                sum != 0 && sum.unsigned_abs() < k as u64
            });
            prop_assert_eq!(no_small_move(k, &moves), !small, "{:?}", moves);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random projects (pools chosen by an identity answer, joins and withdrawals in random
        /// order, the release checked after every event): no released number is under k, no
        /// two releases differ on any set a reader can compute by less than k, and every pool
        /// class named in an export has at least k raters.
        #[test]
        fn no_release_or_pair_of_releases_isolates_fewer_than_k(
            k in 5usize..7,
            n_options in proptest::collection::vec(2usize..4, 2..4),
            events in proptest::collection::vec((0u8..10, proptest::collection::vec(0usize..5, 2), 0usize..1000), 1..90),
        ) {
            let questions: Vec<String> = (0..n_options.len()).map(|q| format!("q{q}")).collect();
            let options: Vec<Vec<String>> = n_options
                .iter()
                .map(|n| (0..*n).map(|o| format!("o{o}")).collect())
                .collect();
            // Pools: one per answer of the first question, and a default pool.
            let mut pools: Vec<(i64, String, bool)> = options[0]
                .iter()
                .enumerate()
                .map(|(i, o)| (i as i64, format!("pool-{o}"), true))
                .collect();
            pools.push((99, "default".into(), false));
            let mut raters: Vec<Sim> = Vec::new();
            let mut releases: Vec<Snapshot> = Vec::new();
            for (step, (kind, picks, which)) in events.iter().enumerate() {
                if *kind < 7 || raters.is_empty() {
                    let answers = picks
                        .iter()
                        .zip(&options)
                        .map(|(p, opts)| (*p < opts.len()).then_some(*p))
                        .chain(std::iter::repeat(None))
                        .take(questions.len())
                        .collect();
                    raters.push(Sim { answers });
                } else {
                    raters.remove(which % raters.len());
                }
                let changes = step as u64 + 1;
                let mut census = Census { raters: raters.len(), changes, ..Default::default() };
                let mut sizes: BTreeMap<i64, usize> = BTreeMap::new();
                for r in &raters {
                    for (qi, a) in r.answers.iter().enumerate() {
                        if let Some(a) = a {
                            *census
                                .answers
                                .entry(questions[qi].clone())
                                .or_default()
                                .entry(options[qi][*a].clone())
                                .or_default() += 1;
                        }
                    }
                    let pool = r.answers[0].map_or(99, |a| a as i64);
                    *sizes.entry(pool).or_default() += 1;
                }
                // q0 chooses pools: its answers are released only as pool classes.
                let shapes: Vec<QuestionShape> = questions
                    .iter()
                    .cloned()
                    .zip(options.iter().cloned())
                    .skip(1)
                    .collect();
                if let Some(next) = next_snapshot(k, &shapes, &census, &releases, step as i64) {
                    releases.push(next);
                }
                // Export classes: every named class holds at least k raters.
                let classes = pool_classes(k, &pools, &sizes);
                let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
                for (id, _, _) in &pools {
                    *per_class.entry(classes.of(Some(*id))).or_default() += sizes.get(id).copied().unwrap_or(0);
                }
                for (class, n) in per_class {
                    prop_assert!(
                        class == WITHHELD_POOLS || n == 0 || n >= k,
                        "class {class} has {n} raters"
                    );
                }
            }
            let universes: Vec<(String, Vec<String>)> = questions
                .iter()
                .zip(&options)
                .map(|(q, opts)| {
                    let mut u = opts.clone();
                    u.push(NO_ANSWER.to_string());
                    (q.clone(), u)
                })
                .collect();
            for r in &releases {
                prop_assert!(r.questions.iter().all(|(q, _)| q != "q0"), "the pool question was counted");
            }
            let found = attacker_finds_a_small_group(k, &releases, &universes);
            prop_assert!(found.is_none(), "{}", found.unwrap_or_default());
        }
    }
}
