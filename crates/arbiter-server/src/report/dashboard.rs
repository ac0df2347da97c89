//! The admin dashboard: progress, agreement and predictability per released pool class,
//! dividing items, gold standing and the pay ledger.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ledger::{LedgerLine, LedgerTotals, ledger_line, ledger_totals};
use crate::agreement::{Agreement, Level, Rating};
use crate::db::{Item, LabelRow, OwedRow, Pool, Project, RaterRow};
use crate::model::{LabelSchema, gold_value};
use crate::predictability::{PoolLabel, Predictability};
use crate::release::{self, PoolClasses, Snapshot};

/// Progress and agreement of one released pool class (a pool, or pools merged under k).
#[derive(Debug, Serialize)]
pub struct PoolStats {
    /// Pool name, or the merged class's name.
    pub name: String,
    /// Raters in the class as of the current release (`None` while it publishes none).
    pub raters: Option<usize>,
    /// Labels given by the pool.
    pub labels: usize,
    /// Items with the full per-pool overlap.
    pub items_complete: usize,
    /// `items_complete` / items.
    pub share_complete: f64,
    /// α among this pool's raters.
    pub alpha_within: Option<f64>,
}

/// An item on which pools disagree.
#[derive(Debug, Serialize)]
pub struct DividingItem {
    /// Importer's id.
    pub item: String,
    /// The item's text, cut to [`DIVIDING_TEXT_CHARS`] characters (with "…" when cut), so a
    /// long item does not swamp the dashboard.
    pub text: String,
    /// The item's content warning: the text is then shown only on request.
    pub warning: Option<String>,
    /// Largest total-variation distance between two pools' label distributions.
    pub divergence: f64,
    /// Per pool: label → count.
    pub by_pool: BTreeMap<String, BTreeMap<String, usize>>,
}

/// Gold performance of one rater.
#[derive(Debug, Serialize)]
pub struct GoldStats {
    /// Pseudonym.
    pub rater: String,
    /// Gold items answered.
    pub answered: usize,
    /// Answered correctly.
    pub correct: usize,
    /// Share correct.
    pub accuracy: Option<f64>,
    /// Below the project's threshold.
    pub below_threshold: bool,
    /// Re-qualification standing: "regular work", "qualification round k of n" or
    /// "out of qualification rounds".
    pub standing: String,
}

/// How well one released pool class's labels are predicted from the item texts.
///
/// Soft cross-entropies in nats (lower is better) of the class's label shares per item, each
/// item scored by models not fitted on it. `from_others` above `own` means the other classes'
/// labels miss a viewpoint this class holds, one the pooled label does not carry.
#[derive(Debug, Serialize)]
pub struct PoolPrediction {
    /// The class's released name.
    pub name: String,
    /// Items the class labelled, each scored once.
    pub items_scored: usize,
    /// Model fitted on the other released classes' labels.
    pub from_others: Option<f64>,
    /// Model fitted on this class's own labels.
    pub own: Option<f64>,
    /// This class's label shares, ignoring the text.
    pub prior: Option<f64>,
}

/// Per-pool predictability, or why it is not shown.
#[derive(Debug, Serialize)]
pub struct PoolPredictability {
    /// Per released class, in the order of [`Dashboard::pools`]; empty when not computed.
    pub pools: Vec<PoolPrediction>,
    /// Why nothing is computed, when nothing is.
    pub not_computed: Option<String>,
}

/// Characters of item text shown with a dividing item.
pub const DIVIDING_TEXT_CHARS: usize = 160;

/// `text` cut to at most `max` characters (on a character boundary), with "…" when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", text[..end].trim_end()),
        None => text.to_string(),
    }
}

/// Fewest items with labels from released classes for which predictability is computed: with
/// fewer, the folds leave too little to fit and the figures are noise.
pub const PREDICTABILITY_MIN_ITEMS: usize = 20;

/// The admin dashboard.
#[derive(Debug, Serialize)]
pub struct Dashboard {
    /// Project name.
    pub project: String,
    /// Items in the project.
    pub items: usize,
    /// Current instructions version.
    pub instructions_version: i64,
    /// Per pool.
    pub pools: Vec<PoolStats>,
    /// α over all raters of all pools together.
    pub alpha_pooled: Option<f64>,
    /// α between pools, each pool's majority label acting as one rater.
    pub alpha_between_pools: Option<f64>,
    /// Items that divide pools most.
    pub dividing_items: Vec<DividingItem>,
    /// Per released pool class: its labels predicted from the other classes' labels.
    pub pool_predictability: PoolPredictability,
    /// Gold quality per rater.
    pub gold: Vec<GoldStats>,
    /// Pay per rater who consented or worked, then pay owed to raters who withdrew
    /// (anonymous lines).
    pub ledger: Vec<LedgerLine>,
    /// Sums over every line of `ledger`, anonymous ones included.
    pub ledger_totals: LedgerTotals,
    /// Raters who withdrew (their data is erased).
    pub withdrawn: usize,
    /// The identity release the rater counts come from: its number and time (ms).
    pub release: (i64, i64),
}

fn level(schema: &LabelSchema) -> Level {
    match schema {
        LabelSchema::Ordinal { labels } => Level::Ordinal(labels.clone()),
        _ => Level::Nominal,
    }
}

fn ratings<'a>(rows: impl Iterator<Item = &'a LabelRow>) -> Vec<Rating> {
    rows.filter_map(|r| {
        r.label.as_ref().map(|l| Rating {
            item: r.item_id,
            rater: r.rater_id,
            label: l.clone(),
        })
    })
    .collect()
}

/// Everything the dashboard is computed from.
pub struct DashboardInput<'a> {
    /// The project.
    pub project: &'a Project,
    /// Items in the project (their texts feed the predictability models).
    pub items: &'a [Item],
    /// Its pools.
    pub pools: &'a [Pool],
    /// How pools are released.
    pub classes: &'a PoolClasses,
    /// The current identity release.
    pub snapshot: &'a Snapshot,
    /// Current raters.
    pub raters: &'a [RaterRow],
    /// Their annotations.
    pub rows: &'a [LabelRow],
    /// Pay owed to raters who withdrew.
    pub owed: &'a [OwedRow],
    /// Raters who withdrew.
    pub withdrawn: usize,
}

/// Pools regrouped as their released classes: class ids, names, and pools per class.
fn class_pools(
    pools: &[Pool],
    classes: &PoolClasses,
) -> (Vec<Pool>, BTreeMap<i64, i64>, BTreeMap<i64, i64>) {
    let mut names: Vec<String> = Vec::new();
    let mut of_pool = BTreeMap::new();
    let mut width: BTreeMap<i64, i64> = BTreeMap::new();
    for p in pools {
        let name = classes.of(Some(p.id)).to_string();
        let idx = match names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                names.push(name);
                names.len() - 1
            }
        } as i64;
        of_pool.insert(p.id, idx);
        *width.entry(idx).or_default() += 1;
    }
    let virtual_pools = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Pool {
            id: i as i64,
            name,
            rule_question: None,
            rule_answer: None,
        })
        .collect();
    (virtual_pools, of_pool, width)
}

/// Raters in a released class: every named class holds at least k (see `release`); a
/// withheld class has no published size.
fn class_size(input: &DashboardInput, class: &Pool, members: &[i64]) -> Option<usize> {
    (class.name != release::WITHHELD_POOLS).then(|| {
        input
            .raters
            .iter()
            .filter(|r| !r.withdrawn && r.pool_id.is_some_and(|p| members.contains(&p)))
            .count()
    })
}

/// Per-pool predictability over the released classes only (never a withheld one), for
/// single-choice schemas; labels are classes by their position in the schema.
fn pool_predictability(
    input: &DashboardInput,
    classes: &[Pool],
    rows: &[LabelRow],
    seam: &dyn Predictability,
) -> PoolPredictability {
    let not = |why: String| PoolPredictability {
        pools: Vec::new(),
        not_computed: Some(why),
    };
    let scale = match &input.project.spec.label_schema {
        LabelSchema::Nominal { labels } | LabelSchema::Ordinal { labels } => labels,
        LabelSchema::MultiLabel { .. } => {
            return not(
                "multi-label answers are sets of labels; the models predict one \
                 label per rater"
                    .into(),
            );
        }
    };
    let released: Vec<&Pool> = classes
        .iter()
        .filter(|c| c.name != release::WITHHELD_POOLS)
        .collect();
    let index: BTreeMap<i64, u32> = released
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i as u32))
        .collect();
    let text: BTreeMap<i64, &str> = input
        .items
        .iter()
        .map(|i| (i.id, i.body.as_str()))
        .collect();
    let mut item_index: BTreeMap<i64, u32> = BTreeMap::new();
    let mut labelled: Vec<(i64, u32, u16)> = Vec::new();
    for r in rows {
        let (Some(label), Some(pool)) = (&r.label, r.pool_id.and_then(|p| index.get(&p))) else {
            continue;
        };
        let Some(class) = scale.iter().position(|l| l == label) else {
            continue;
        };
        if text.contains_key(&r.item_id) {
            item_index.insert(r.item_id, 0);
            labelled.push((r.item_id, *pool, class as u16));
        }
    }
    let with_labels: BTreeSet<u32> = labelled.iter().map(|l| l.1).collect();
    if with_labels.len() < 2 {
        return not(format!(
            "it needs labels from at least two released pool classes, and {} have them",
            with_labels.len()
        ));
    }
    if item_index.len() < PREDICTABILITY_MIN_ITEMS {
        return not(format!(
            "it needs at least {PREDICTABILITY_MIN_ITEMS} items with labels, and {} have them",
            item_index.len()
        ));
    }
    for (n, v) in item_index.values_mut().enumerate() {
        *v = n as u32;
    }
    let texts: Vec<&str> = item_index.keys().map(|id| text[id]).collect();
    let labels: Vec<PoolLabel> = labelled
        .iter()
        .map(|&(item, pool, class)| PoolLabel {
            item: item_index[&item],
            pool,
            class,
        })
        .collect();
    let fits = seam.per_pool(&texts, &labels, released.len(), scale.len());
    PoolPredictability {
        pools: released
            .iter()
            .zip(fits)
            .map(|(c, f)| PoolPrediction {
                name: c.name.clone(),
                items_scored: f.items_scored,
                from_others: f.from_others,
                own: f.own,
                prior: f.prior,
            })
            .collect(),
        not_computed: None,
    }
}

/// Builds the dashboard.
pub fn dashboard(
    input: &DashboardInput,
    agreement: &dyn Agreement,
    predictability: &dyn Predictability,
) -> Dashboard {
    let project = input.project;
    let n_items = input.items.len();
    let (pools, of_pool, width) = class_pools(input.pools, input.classes);
    let remapped: Vec<LabelRow> = input
        .rows
        .iter()
        .map(|r| LabelRow {
            pool_id: r.pool_id.and_then(|p| of_pool.get(&p).copied()),
            ..r.clone()
        })
        .collect();
    let rows = &remapped[..];
    let raters = input.raters;
    let spec = &project.spec;
    let lvl = level(&spec.label_schema);
    let pool_name: BTreeMap<i64, &str> = pools.iter().map(|p| (p.id, p.name.as_str())).collect();
    let mut pool_stats = Vec::new();
    let mut majorities: Vec<Rating> = Vec::new();
    // item -> pool -> label -> count
    let mut dist: BTreeMap<i64, BTreeMap<i64, BTreeMap<String, usize>>> = BTreeMap::new();
    for r in rows {
        if let (Some(l), Some(p)) = (&r.label, r.pool_id) {
            *dist
                .entry(r.item_id)
                .or_default()
                .entry(p)
                .or_default()
                .entry(l.clone())
                .or_default() += 1;
        }
    }
    for pool in &pools {
        let in_pool: Vec<&LabelRow> = rows.iter().filter(|r| r.pool_id == Some(pool.id)).collect();
        let members: Vec<i64> = of_pool
            .iter()
            .filter(|(_, c)| **c == pool.id)
            .map(|(p, _)| *p)
            .collect();
        let needed = spec.overlap_per_pool * width.get(&pool.id).copied().unwrap_or(1);
        let labels = in_pool.iter().filter(|r| r.label.is_some()).count();
        let complete = dist
            .values()
            .filter(|by_pool| {
                by_pool
                    .get(&pool.id)
                    .map_or(0, |m| m.values().sum::<usize>()) as i64
                    >= needed
            })
            .count();
        pool_stats.push(PoolStats {
            name: pool.name.clone(),
            raters: class_size(input, pool, &members),
            labels,
            items_complete: complete,
            share_complete: if n_items == 0 {
                0.0
            } else {
                complete as f64 / n_items as f64
            },
            alpha_within: agreement.alpha(&ratings(in_pool.into_iter()), &lvl),
        });
    }
    for (item, by_pool) in &dist {
        for (pool, counts) in by_pool {
            // Majority label; ties go to the label first in sort order, so the result is stable.
            if let Some((label, _)) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
                majorities.push(Rating {
                    item: *item,
                    rater: *pool,
                    label: label.clone(),
                });
            }
        }
    }
    let mut dividing: Vec<DividingItem> = Vec::new();
    let external: BTreeMap<i64, &str> = rows
        .iter()
        .map(|r| (r.item_id, r.external_id.as_str()))
        .collect();
    let item_of: BTreeMap<i64, &Item> = input.items.iter().map(|i| (i.id, i)).collect();
    for (item, by_pool) in &dist {
        let shares: Vec<BTreeMap<&str, f64>> = by_pool
            .values()
            .map(|counts| {
                let total: usize = counts.values().sum();
                counts
                    .iter()
                    .map(|(l, c)| (l.as_str(), *c as f64 / total as f64))
                    .collect()
            })
            .collect();
        let mut best = 0.0f64;
        for i in 0..shares.len() {
            for j in i + 1..shares.len() {
                let keys: BTreeSet<&str> =
                    shares[i].keys().chain(shares[j].keys()).copied().collect();
                let tv: f64 = keys
                    .iter()
                    .map(|k| {
                        (shares[i].get(k).unwrap_or(&0.0) - shares[j].get(k).unwrap_or(&0.0)).abs()
                    })
                    .sum::<f64>()
                    / 2.0;
                best = best.max(tv);
            }
        }
        if best > 0.0 {
            let stored = item_of.get(item);
            dividing.push(DividingItem {
                item: external.get(item).copied().unwrap_or("?").to_string(),
                text: stored.map_or(String::new(), |i| {
                    truncate_chars(&i.body, DIVIDING_TEXT_CHARS)
                }),
                warning: stored.and_then(|i| i.warning.clone()),
                divergence: best,
                by_pool: by_pool
                    .iter()
                    .map(|(p, c)| {
                        (
                            pool_name.get(p).copied().unwrap_or("?").to_string(),
                            c.clone(),
                        )
                    })
                    .collect(),
            });
        }
    }
    dividing.sort_by(|a, b| {
        b.divergence
            .total_cmp(&a.divergence)
            .then(a.item.cmp(&b.item))
    });
    dividing.truncate(10);
    let ledger = ledger(input);

    Dashboard {
        project: spec.name.clone(),
        items: n_items,
        instructions_version: project.instructions_version,
        pools: pool_stats,
        alpha_pooled: agreement.alpha(&ratings(rows.iter()), &lvl),
        alpha_between_pools: agreement.alpha(&majorities, &lvl),
        dividing_items: dividing,
        pool_predictability: pool_predictability(input, &pools, rows, predictability),
        gold: gold(project, raters, rows),
        ledger_totals: ledger_totals(&ledger, &spec.currency),
        ledger,
        withdrawn: input.withdrawn,
        release: (input.snapshot.seq, input.snapshot.taken_at),
    }
}

/// Pay per current rater who consented (or, however that came about, worked), with the
/// released class of their pool, then the anonymous lines of raters who withdrew.
fn ledger(input: &DashboardInput) -> Vec<LedgerLine> {
    let project = input.project;
    input
        .raters
        .iter()
        .filter(|r| !r.withdrawn)
        .filter_map(|r| {
            let mine: Vec<&LabelRow> = input.rows.iter().filter(|x| x.rater_id == r.id).collect();
            if !r.consented && mine.is_empty() {
                return None;
            }
            let skipped = mine.iter().filter(|x| x.label.is_none()).count() as i64;
            let ms: i64 = mine.iter().map(|x| x.duration_ms).sum();
            let pool = Some(input.classes.of(r.pool_id))
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            Some(ledger_line(
                project,
                &r.pseudonym,
                pool,
                mine.len() as i64 - skipped,
                skipped,
                ms,
            ))
        })
        .chain(input.owed.iter().map(|o| {
            ledger_line(
                project,
                &format!("withdrawn rater, reference {}", o.reference),
                None,
                o.labelled,
                o.skipped,
                o.duration_ms,
            )
        }))
        .collect()
}

fn gold(project: &Project, raters: &[RaterRow], rows: &[LabelRow]) -> Vec<GoldStats> {
    let schema = &project.spec.label_schema;
    raters
        .iter()
        .filter(|r| !r.withdrawn)
        .filter_map(|r| {
            let answered: Vec<(&String, &String)> = rows
                .iter()
                .filter(|x| x.rater_id == r.id)
                .filter_map(|x| Some((x.label.as_ref()?, x.gold_label.as_ref()?)))
                .collect();
            if answered.is_empty() {
                return None;
            }
            let correct = answered
                .iter()
                .filter(|(l, g)| gold_matches(schema, l, g))
                .count();
            let accuracy = correct as f64 / answered.len() as f64;
            Some(GoldStats {
                rater: r.pseudonym.clone(),
                answered: answered.len(),
                correct,
                accuracy: Some(accuracy),
                // A rate from one or two answers says little: it counts only from the minimum.
                below_threshold: answered.len() as i64 >= project.spec.gold_min_answers
                    && accuracy < project.spec.gold_min_accuracy,
                standing: match r.qual_round {
                    0 => "regular work".into(),
                    k if k > 0 => format!(
                        "qualification round {k} of {}",
                        project.spec.requalify_attempts
                    ),
                    _ => "out of qualification rounds: no more items".into(),
                },
            })
        })
        .collect()
}

/// Whether a stored canonical label equals the gold label.
pub fn gold_matches(schema: &LabelSchema, label: &str, gold: &str) -> bool {
    schema
        .canonical(&gold_value(schema, gold))
        .map(|g| g == label)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::agreement::StatsAlpha;
    use crate::model::ProjectSpec;
    use crate::predictability::{PerspectivesFit, PoolFit};

    fn project(schema: serde_json::Value) -> Project {
        let spec: ProjectSpec = serde_json::from_value(serde_json::json!({
            "name": "pilot",
            "instructions": "Label each comment.",
            "label_schema": schema,
            "consent_text": "Some comments are offensive.",
            "session_cap": 100,
            "daily_cap": 500,
            "pay_standard_per_hour": 15.0,
            "pay_per_item": 0.25,
            "overlap_per_pool": 3,
        }))
        .unwrap();
        Project {
            id: 1,
            spec,
            instructions_version: 1,
            instructions: "Label each comment.".into(),
        }
    }

    fn nominal() -> serde_json::Value {
        serde_json::json!({ "kind": "nominal", "labels": ["not toxic", "toxic"] })
    }

    fn pool(id: i64, name: &str) -> Pool {
        Pool {
            id,
            name: name.into(),
            rule_question: None,
            rule_answer: None,
        }
    }

    fn item(id: i64, body: &str) -> Item {
        Item {
            id,
            external_id: format!("e{id}"),
            body: body.into(),
            warning: None,
            gold_label: None,
            gold_note: None,
            blur: false,
        }
    }

    fn row(item: i64, rater: i64, pool: i64, label: &str) -> LabelRow {
        LabelRow {
            item_id: item,
            external_id: format!("e{item}"),
            rater_id: rater,
            pseudonym: format!("r{rater}"),
            pool_id: Some(pool),
            label: Some(label.into()),
            rationale: None,
            instructions_version: 1,
            duration_ms: 1000,
            submitted_at: 0,
            gold_label: None,
        }
    }

    fn rater(id: i64, pool: i64) -> RaterRow {
        RaterRow {
            id,
            pseudonym: format!("r{id}"),
            pool_id: Some(pool),
            withdrawn: false,
            consented: true,
            qual_round: 0,
        }
    }

    #[test]
    fn gold_flags_a_rater_only_after_the_minimum_answers() {
        let mut p = project(nominal());
        p.spec.gold_min_answers = 5;
        let gold_row = |item: i64, rater: i64, label: &str| LabelRow {
            gold_label: Some("toxic".into()),
            ..row(item, rater, 1, label)
        };
        // Rater 1: both of 2 wrong; rater 2: 3 of 5 right (0.6 < 0.7); rater 3: 4 of 5.
        let mut rows = vec![
            gold_row(1, 1, "not toxic"),
            gold_row(2, 1, "not toxic"),
            row(3, 1, 1, "toxic"),
        ];
        for (rater, right) in [(2, 3), (3, 4)] {
            for i in 0..5 {
                let label = if i < right { "toxic" } else { "not toxic" };
                rows.push(gold_row(10 + i, rater, label));
            }
        }
        let raters = [rater(1, 1), rater(2, 1), rater(3, 1)];
        let g = gold(&p, &raters, &rows);
        let shown: Vec<(usize, usize, bool)> = g
            .iter()
            .map(|s| (s.answered, s.correct, s.below_threshold))
            .collect();
        assert_eq!(shown, [(2, 0, false), (5, 3, true), (5, 4, false)]);
        p.spec.gold_min_answers = 2;
        assert!(gold(&p, &raters, &rows)[0].below_threshold);
    }

    #[test]
    fn dividing_text_is_cut_on_a_character_boundary() {
        // Two-, three- and four-byte characters: a byte cut at 160 would split one.
        let long: String = "é€😀x".repeat(100);
        let cut = truncate_chars(&long, DIVIDING_TEXT_CHARS);
        assert!(cut.ends_with('…'), "{cut}");
        assert_eq!(cut.chars().count(), DIVIDING_TEXT_CHARS + 1);
        assert!(long.starts_with(cut.trim_end_matches('…')));
        assert_eq!(truncate_chars("短い", 2), "短い");
        assert_eq!(truncate_chars("短いテキスト", 2), "短い…");
        assert_eq!(
            truncate_chars("ab cd", 3),
            "ab…",
            "no space before the ellipsis"
        );
        assert_eq!(truncate_chars("", 3), "");
    }

    #[test]
    fn dividing_items_carry_text_and_warning() {
        let mut f = identity_fixture(3);
        f.items[0].body = "ä".repeat(400);
        f.items[1].warning = Some("slurs".into());
        let d = f.build(&Recorder::default());
        let by: BTreeMap<&str, &DividingItem> = d
            .dividing_items
            .iter()
            .map(|i| (i.item.as_str(), i))
            .collect();
        let first = by["e1"];
        assert_eq!(first.text, format!("{}…", "ä".repeat(DIVIDING_TEXT_CHARS)));
        assert_eq!(first.warning, None);
        assert_eq!(by["e2"].warning.as_deref(), Some("slurs"));
        assert_eq!(by["e2"].text, "text 2");
        // Counts per released class: a and b one label each, c and d merged into one class.
        let merged = &first.by_pool[release::MERGED_POOLS];
        assert_eq!(merged.values().sum::<usize>(), 2, "{first:?}");
        assert!(!first.by_pool.contains_key("c"));
    }

    #[test]
    fn ledger_leaves_out_raters_who_never_consented_and_sums_every_line() {
        let mut f = identity_fixture(2);
        f.raters.push(RaterRow {
            consented: false,
            pool_id: None,
            ..rater(106, 1)
        });
        let owed = [OwedRow {
            reference: "owed-abc".into(),
            labelled: 3,
            skipped: 1,
            duration_ms: 11 * 60_000,
        }];
        let d = dashboard(
            &DashboardInput {
                project: &f.project,
                items: &f.items,
                pools: &f.pools,
                classes: &f.classes,
                snapshot: &Snapshot::empty(),
                raters: &f.raters,
                rows: &f.rows,
                owed: &owed,
                withdrawn: 1,
            },
            &StatsAlpha,
            &Recorder::default(),
        );
        let lines: Vec<(&str, Option<&str>)> = d
            .ledger
            .iter()
            .map(|l| (l.rater.as_str(), l.pool.as_deref()))
            .collect();
        assert_eq!(
            lines,
            [
                ("r101", Some("a")),
                ("r102", Some("b")),
                ("r103", Some(release::MERGED_POOLS)),
                ("r104", Some(release::MERGED_POOLS)),
                ("r105", Some(release::WITHHELD_POOLS)),
                ("withdrawn rater, reference owed-abc", None),
            ]
        );
        // Two labels of 1 s each per current rater; the withdrawn rater's 11 minutes give a rate.
        assert!(d.ledger[..5].iter().all(|l| l.effective_hourly.is_none()));
        assert!((d.ledger[5].effective_hourly.unwrap() - 1.0 / (11.0 / 60.0)).abs() < 1e-9);
        let t = &d.ledger_totals;
        assert_eq!((t.labelled, t.skipped), (13, 1));
        assert!((t.earned - 14.0 * 0.25).abs() < 1e-9, "{t:?}");
        assert!((t.minutes - (11.0 + 10.0 / 60.0)).abs() < 1e-9, "{t:?}");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["ledger_totals"]["labelled"], 13);
        assert!(json["ledger"][5]["pool"].is_null());
    }

    /// One call of the seam: texts, labels, pools, classes.
    type Call = (Vec<String>, Vec<PoolLabel>, usize, usize);

    /// What the dashboard handed the seam, and fixed figures back (pool index + 1 as CE).
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<Call>>,
    }

    impl Predictability for Recorder {
        fn per_pool(
            &self,
            texts: &[&str],
            labels: &[PoolLabel],
            n_pools: usize,
            n_classes: usize,
        ) -> Vec<PoolFit> {
            self.calls.lock().unwrap().push((
                texts.iter().map(|t| t.to_string()).collect(),
                labels.to_vec(),
                n_pools,
                n_classes,
            ));
            (0..n_pools)
                .map(|p| PoolFit {
                    items_scored: 10 + p,
                    from_others: Some(p as f64 + 1.0),
                    own: Some(0.5),
                    prior: None,
                })
                .collect()
        }
    }

    struct Fixture {
        project: Project,
        items: Vec<Item>,
        pools: Vec<Pool>,
        classes: PoolClasses,
        raters: Vec<RaterRow>,
        rows: Vec<LabelRow>,
    }

    impl Fixture {
        fn build(&self, seam: &dyn Predictability) -> Dashboard {
            dashboard(
                &DashboardInput {
                    project: &self.project,
                    items: &self.items,
                    pools: &self.pools,
                    classes: &self.classes,
                    snapshot: &Snapshot::empty(),
                    raters: &self.raters,
                    rows: &self.rows,
                    owed: &[],
                    withdrawn: 0,
                },
                &StatsAlpha,
                seam,
            )
        }
    }

    /// Pools 1 and 2 named, 3 and 4 merged under k, pool 5 withheld (not in the classes);
    /// one rater per pool labels every item, and item 1000 (no labels) is left out.
    fn identity_fixture(n_items: i64) -> Fixture {
        let names = [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")];
        let class: BTreeMap<i64, String> = [
            (1, "a"),
            (2, "b"),
            (3, release::MERGED_POOLS),
            (4, release::MERGED_POOLS),
        ]
        .into_iter()
        .map(|(p, n)| (p, n.to_string()))
        .collect();
        let mut items: Vec<Item> = (1..=n_items)
            .map(|i| item(i, &format!("text {i}")))
            .collect();
        items.push(item(1000, "never labelled"));
        let mut rows = Vec::new();
        for i in 1..=n_items {
            for (p, _) in names {
                let label = if (i + p) % 2 == 0 {
                    "toxic"
                } else {
                    "not toxic"
                };
                rows.push(row(i, 100 + p, p, label));
            }
        }
        Fixture {
            project: project(nominal()),
            items,
            pools: names.iter().map(|(id, n)| pool(*id, n)).collect(),
            classes: PoolClasses {
                class,
                identity: true,
            },
            raters: names.iter().map(|(p, _)| rater(100 + p, *p)).collect(),
            rows,
        }
    }

    #[test]
    fn predictability_sees_only_released_classes_and_their_labels() {
        let f = identity_fixture(25);
        let seam = Recorder::default();
        let d = f.build(&seam);
        let calls = seam.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        let (texts, labels, n_pools, n_classes) = &calls[0];
        // Classes in the dashboard's order: a, b, merged (c and d); e is withheld and absent.
        let names: Vec<&str> = d.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names[..3], ["a", "b", release::MERGED_POOLS]);
        assert_eq!((*n_pools, *n_classes), (3, 2));
        assert_eq!(texts.len(), 25, "only labelled items: {texts:?}");
        assert_eq!(texts[0], "text 1");
        assert_eq!(labels.len(), 25 * 4, "pool e's labels never reach the seam");
        for l in labels {
            let (i, p) = (i64::from(l.item) + 1, [1, 2, 3][l.pool as usize]);
            assert_eq!(texts[l.item as usize], format!("text {i}"));
            // Class index = position in the schema; c (3) and d (4) share the merged class.
            let expect = if l.pool == 2 {
                None
            } else {
                Some(u16::from((i + p) % 2 == 0))
            };
            if let Some(e) = expect {
                assert_eq!(l.class, e, "{l:?}");
            }
        }
        let merged: Vec<u16> = labels
            .iter()
            .filter(|l| l.pool == 2 && l.item == 0)
            .map(|l| l.class)
            .collect();
        assert_eq!(merged.len(), 2, "c and d both labelled item 1");
        assert_eq!(merged.iter().sum::<u16>(), 1, "one says toxic, one not");
        let p = &d.pool_predictability;
        assert_eq!(p.not_computed, None);
        let shown: Vec<(&str, usize, Option<f64>)> = p
            .pools
            .iter()
            .map(|r| (r.name.as_str(), r.items_scored, r.from_others))
            .collect();
        assert_eq!(
            shown,
            [
                ("a", 10, Some(1.0)),
                ("b", 11, Some(2.0)),
                (release::MERGED_POOLS, 12, Some(3.0))
            ]
        );
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["pool_predictability"]["pools"][1]["from_others"], 2.0);
        assert!(json["pool_predictability"]["pools"][0]["prior"].is_null());
    }

    #[test]
    fn predictability_is_left_out_with_a_reason() {
        // Too few items.
        let f = identity_fixture(PREDICTABILITY_MIN_ITEMS as i64 - 1);
        let seam = Recorder::default();
        let why = f.build(&seam).pool_predictability.not_computed.unwrap();
        assert!(why.contains("at least 20 items"), "{why}");
        // One released class: every pool withheld (all raters under k).
        let mut f = identity_fixture(30);
        for c in f.classes.class.values_mut() {
            *c = release::WITHHELD_POOLS.into();
        }
        let why = f.build(&seam).pool_predictability.not_computed.unwrap();
        assert!(why.contains("two released pool classes, and 0"), "{why}");
        // Multi-label answers.
        let mut f = identity_fixture(30);
        f.project = project(serde_json::json!({ "kind": "multi_label", "labels": ["a", "b"] }));
        let d = f.build(&seam);
        assert!(d.pool_predictability.pools.is_empty());
        let why = d.pool_predictability.not_computed.unwrap();
        assert!(why.contains("multi-label"), "{why}");
        assert!(
            seam.calls.lock().unwrap().is_empty(),
            "the seam is never asked"
        );
    }

    /// A small xorshift, so the synthetic labels need no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Invitation pools of five raters ("north", "south", "east", then more); each item is
    /// labelled by three raters per pool. Every pool calls a comment toxic when it mentions a
    /// storm, except "south", when it mentions a harbour: the south's labels are the ones the
    /// others cannot stand for.
    fn disagreeing_pools(n_items: i64, n_pools: usize) -> Fixture {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let words = ["storm", "harbour", "window", "garden", "letter", "bridge"];
        let pools: Vec<Pool> = ["north", "south", "east", "west", "up", "down"][..n_pools]
            .iter()
            .zip(1..)
            .map(|(n, id)| pool(id, n))
            .collect();
        let mut raters = Vec::new();
        for p in 1..=n_pools as i64 {
            for r in 0..5 {
                raters.push(rater(p * 10 + r, p));
            }
        }
        let mut items = Vec::new();
        let mut rows = Vec::new();
        for i in 0..n_items {
            let text: Vec<&str> = (0..3)
                .map(|_| words[(rng.next() % words.len() as u64) as usize])
                .collect();
            let text = text.join(" ");
            for p in 1..=n_pools as i64 {
                let trigger = if p == 2 { "harbour" } else { "storm" };
                let share = if text.contains(trigger) { 0.9 } else { 0.1 };
                for k in 0..3 {
                    let label = if rng.unit() < share {
                        "toxic"
                    } else {
                        "not toxic"
                    };
                    rows.push(row(i, p * 10 + (i + k) % 5, p, label));
                }
            }
            items.push(item(i, &text));
        }
        Fixture {
            project: project(nominal()),
            items,
            classes: PoolClasses {
                class: pools.iter().map(|p| (p.id, p.name.clone())).collect(),
                identity: false,
            },
            pools,
            raters,
            rows,
        }
    }

    #[test]
    fn the_disagreeing_pool_is_predicted_worst_from_the_others() {
        let f = disagreeing_pools(400, 3);
        let started = std::time::Instant::now();
        let d = f.build(&PerspectivesFit::default());
        let with = started.elapsed();
        let started = std::time::Instant::now();
        f.build(&Recorder::default());
        let without = started.elapsed();
        eprintln!(
            "dashboard over {} labels, {} items, 3 pools: {with:?} with predictability, {without:?} without",
            f.rows.len(),
            f.items.len()
        );
        let p = &d.pool_predictability;
        assert_eq!(p.not_computed, None);
        let by: BTreeMap<&str, &PoolPrediction> =
            p.pools.iter().map(|r| (r.name.as_str(), r)).collect();
        for r in by.values() {
            assert_eq!(r.items_scored, 400);
            // The text tells each pool's own model something its label shares do not.
            assert!(r.own.unwrap() < r.prior.unwrap() - 0.1, "{r:?}");
        }
        let loss = |r: &PoolPrediction| r.from_others.unwrap() - r.own.unwrap();
        let south = by["south"];
        assert!(
            loss(south) > 2.0 * loss(by["north"]).max(loss(by["east"])),
            "{p:?}"
        );
        // Stood in for by the others, the south is predicted worse than by its label shares.
        assert!(south.from_others.unwrap() > south.prior.unwrap(), "{p:?}");
        for r in [by["north"], by["east"]] {
            assert!(r.from_others.unwrap() < r.prior.unwrap(), "{r:?}");
        }
    }

    /// The cost the README states: `cargo test -p arbiter-server --lib dashboard_time -- --ignored
    /// --nocapture` (arbiter-server and arbiter-perspectives are optimised in dev builds).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn dashboard_time_at_scale() {
        for (n_items, n_pools) in [(100, 3), (400, 3), (1000, 3), (2000, 3), (1000, 6)] {
            let f = disagreeing_pools(n_items, n_pools);
            let started = std::time::Instant::now();
            f.build(&PerspectivesFit::default());
            eprintln!(
                "{} labels, {n_items} items, {n_pools} pools: {:?}",
                f.rows.len(),
                started.elapsed()
            );
        }
    }
}
