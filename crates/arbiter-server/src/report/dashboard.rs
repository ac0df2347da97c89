//! The admin dashboard: progress and agreement per released pool class, dividing items,
//! gold standing and the pay ledger.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ledger::{LedgerLine, ledger_line};
use crate::agreement::{Agreement, Level, Rating};
use crate::db::{LabelRow, OwedRow, Pool, Project, RaterRow};
use crate::model::{LabelSchema, gold_value};
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
    /// Gold quality per rater.
    pub gold: Vec<GoldStats>,
    /// Pay per rater, then pay owed to raters who withdrew (anonymous lines).
    pub ledger: Vec<LedgerLine>,
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
    /// Items in the project.
    pub n_items: usize,
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

/// Builds the dashboard.
pub fn dashboard(input: &DashboardInput, agreement: &dyn Agreement) -> Dashboard {
    let project = input.project;
    let n_items = input.n_items;
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
            dividing.push(DividingItem {
                item: external.get(item).copied().unwrap_or("?").to_string(),
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

    Dashboard {
        project: spec.name.clone(),
        items: n_items,
        instructions_version: project.instructions_version,
        pools: pool_stats,
        alpha_pooled: agreement.alpha(&ratings(rows.iter()), &lvl),
        alpha_between_pools: agreement.alpha(&majorities, &lvl),
        dividing_items: dividing,
        gold: gold(project, raters, rows),
        ledger: raters
            .iter()
            .filter(|r| !r.withdrawn)
            .map(|r| {
                let mine: Vec<&LabelRow> = rows.iter().filter(|x| x.rater_id == r.id).collect();
                let skipped = mine.iter().filter(|x| x.label.is_none()).count() as i64;
                let ms: i64 = mine.iter().map(|x| x.duration_ms).sum();
                ledger_line(
                    project,
                    &r.pseudonym,
                    mine.len() as i64 - skipped,
                    skipped,
                    ms,
                )
            })
            .chain(input.owed.iter().map(|o| {
                ledger_line(
                    project,
                    &format!("withdrawn rater, reference {}", o.reference),
                    o.labelled,
                    o.skipped,
                    o.duration_ms,
                )
            }))
            .collect(),
        withdrawn: input.withdrawn,
        release: (input.snapshot.seq, input.snapshot.taken_at),
    }
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
                below_threshold: accuracy < project.spec.gold_min_accuracy,
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
