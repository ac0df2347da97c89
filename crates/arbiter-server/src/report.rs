//! Dashboard statistics, pay ledger, k-anonymous demographics, exports and the datasheet.
//!
//! Everything here is computed from rows already loaded by `db`, so it is plain code over
//! values. Pools and group counts come only from the release layer (`release`): pools appear
//! as their released classes and every count of raters from the current release snapshot, so
//! rater identity leaves the server only as pseudonyms and groups of at least k.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

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

/// Pay ledger line for one rater.
#[derive(Debug, Serialize, Clone)]
pub struct LedgerLine {
    /// Pseudonym.
    pub rater: String,
    /// Items labelled.
    pub labelled: i64,
    /// Items skipped (paid as well: skipping carries no penalty).
    pub skipped: i64,
    /// Hours on task.
    pub hours: f64,
    /// Earned amount.
    pub earned: f64,
    /// Earned per hour on task.
    pub effective_hourly: Option<f64>,
    /// The project's stated standard.
    pub standard_hourly: f64,
    /// Whether the effective pay reaches the standard.
    pub meets_standard: Option<bool>,
    /// Currency.
    pub currency: String,
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

/// Raters in a released class, from the snapshot when pools carry identity, else live.
fn class_size(input: &DashboardInput, class: &Pool, members: &[i64]) -> Option<usize> {
    if !input.classes.identity {
        return Some(
            input
                .raters
                .iter()
                .filter(|r| r.pool_id.is_some_and(|p| members.contains(&p)))
                .count(),
        );
    }
    let groups = input.snapshot.pools.as_ref()?;
    if class.name == release::MERGED_POOLS {
        groups.merged_small_groups
    } else {
        groups.groups.get(&class.name).copied()
    }
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

/// One ledger line from counts and time on task.
pub fn ledger_line(
    project: &Project,
    rater: &str,
    labelled: i64,
    skipped: i64,
    ms: i64,
) -> LedgerLine {
    let spec = &project.spec;
    let hours = ms as f64 / 3_600_000.0;
    let earned = (labelled + skipped) as f64 * spec.pay_per_item;
    let effective = (hours > 0.0).then(|| earned / hours);
    LedgerLine {
        rater: rater.to_string(),
        labelled,
        skipped,
        hours,
        earned,
        effective_hourly: effective,
        standard_hourly: spec.pay_standard_per_hour,
        meets_standard: effective.map(|e| e >= spec.pay_standard_per_hour),
        currency: spec.currency.clone(),
    }
}

/// Group counts for one question; groups under k are merged or withheld.
#[derive(Debug, Serialize)]
pub struct QuestionGroups {
    /// Question id.
    pub question: String,
    /// Answer → count, only for groups of at least k (`(no answer)` counts raters who skipped
    /// the question or preferred not to say).
    pub groups: BTreeMap<String, usize>,
    /// Raters in groups merged because some were under k (always at least k).
    pub merged_small_groups: Option<usize>,
    /// True when all raters together are under k, so nothing is shown.
    pub withheld: bool,
}

/// The demographics of a release, per questionnaire question (questions the release predates
/// are withheld).
pub fn demographics(questions: &[String], snapshot: &Snapshot) -> Vec<QuestionGroups> {
    questions
        .iter()
        .map(
            |q| match snapshot.questions.iter().find(|(id, _)| id == q) {
                Some((_, g)) => QuestionGroups {
                    question: q.clone(),
                    groups: g.groups.clone(),
                    merged_small_groups: g.merged_small_groups,
                    withheld: g.withheld,
                },
                None => QuestionGroups {
                    question: q.clone(),
                    groups: BTreeMap::new(),
                    merged_small_groups: None,
                    withheld: true,
                },
            },
        )
        .collect()
}

/// Export rows: labels only (skips are not labels), pseudonymous rater ids, pool names.
///
/// The same columns, in this order, in every export format.
#[derive(Debug, Serialize)]
pub struct ExportRow<'a> {
    /// Importer's item id.
    pub item: &'a str,
    /// Pseudonymous rater id.
    pub rater: &'a str,
    /// Pool name.
    pub pool: &'a str,
    /// Canonical label.
    pub label: &'a str,
    /// Rationale, if any.
    pub rationale: &'a str,
    /// Instructions version in force.
    pub instructions_version: i64,
    /// Time on task, ms.
    pub duration_ms: i64,
}

/// Export formats.
pub const EXPORT_FORMATS: &[&str] = &["jsonl", "csv", "parquet"];

/// MIME type and file extension of an export format.
pub fn export_mime(format: &str) -> &'static str {
    match format {
        "csv" => "text/csv; charset=utf-8",
        "parquet" => "application/vnd.apache.parquet",
        _ => "application/x-ndjson",
    }
}

/// A CSV cell that a spreadsheet would run as a formula (`= + - @`, or a leading tab or
/// carriage return) gets a leading apostrophe, so it is shown as text.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// Labels of current raters as JSONL, CSV or Parquet, each row's pool as its released class.
/// Erased raters have no rows left (see `Db::label_rows`).
pub fn export(format: &str, classes: &PoolClasses, rows: &[LabelRow]) -> Result<Vec<u8>, String> {
    let records: Vec<ExportRow> = rows
        .iter()
        .filter_map(|r| {
            Some(ExportRow {
                item: &r.external_id,
                rater: &r.pseudonym,
                pool: classes.of(r.pool_id),
                label: r.label.as_deref()?,
                rationale: r.rationale.as_deref().unwrap_or(""),
                instructions_version: r.instructions_version,
                duration_ms: r.duration_ms,
            })
        })
        .collect();
    match format {
        "jsonl" => {
            let mut out = Vec::new();
            for r in &records {
                serde_json::to_writer(&mut out, r).map_err(|e| e.to_string())?;
                out.push(b'\n');
            }
            Ok(out)
        }
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
                "item",
                "rater",
                "pool",
                "label",
                "rationale",
                "instructions_version",
                "duration_ms",
            ])
            .map_err(|e| e.to_string())?;
            for r in &records {
                let (v, d) = (
                    r.instructions_version.to_string(),
                    r.duration_ms.to_string(),
                );
                w.write_record([
                    csv_cell(r.item).as_ref(),
                    csv_cell(r.rater).as_ref(),
                    csv_cell(r.pool).as_ref(),
                    csv_cell(r.label).as_ref(),
                    csv_cell(r.rationale).as_ref(),
                    &v,
                    &d,
                ])
                .map_err(|e| e.to_string())?;
            }
            w.into_inner().map_err(|e| e.to_string())
        }
        "parquet" => parquet_export(&records).map_err(|e| format!("writing Parquet: {e}")),
        other => Err(format!(
            "unknown export format {other:?}; use {}",
            EXPORT_FORMATS.join(", ")
        )),
    }
}

/// The Parquet schema of an export: the columns of [`ExportRow`], all required; strings are
/// UTF-8 (`STRING` logical type), so readers give them back as text.
pub const PARQUET_SCHEMA: &str = "message labels {
  REQUIRED BYTE_ARRAY item (STRING);
  REQUIRED BYTE_ARRAY rater (STRING);
  REQUIRED BYTE_ARRAY pool (STRING);
  REQUIRED BYTE_ARRAY label (STRING);
  REQUIRED BYTE_ARRAY rationale (STRING);
  REQUIRED INT64 instructions_version;
  REQUIRED INT64 duration_ms;
}";

/// Rows per Parquet row group.
const PARQUET_ROW_GROUP: usize = 65_536;

/// Writes the records as one Parquet file with the low-level column writer of the `parquet`
/// crate (no Arrow), Snappy-compressed. `created_by` carries no version, so the same rows give
/// the same bytes.
fn parquet_export(records: &[ExportRow]) -> parquet::errors::Result<Vec<u8>> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;

    let schema = Arc::new(parquet::schema::parser::parse_message_type(PARQUET_SCHEMA)?);
    let props = WriterProperties::builder()
        .set_created_by("arbiter-server".into())
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, Arc::new(props))?;
    for chunk in records.chunks(PARQUET_ROW_GROUP) {
        let mut group = writer.next_row_group()?;
        let texts: [Vec<ByteArray>; 5] = [
            chunk.iter().map(|r| ByteArray::from(r.item)).collect(),
            chunk.iter().map(|r| ByteArray::from(r.rater)).collect(),
            chunk.iter().map(|r| ByteArray::from(r.pool)).collect(),
            chunk.iter().map(|r| ByteArray::from(r.label)).collect(),
            chunk.iter().map(|r| ByteArray::from(r.rationale)).collect(),
        ];
        let ints: [Vec<i64>; 2] = [
            chunk.iter().map(|r| r.instructions_version).collect(),
            chunk.iter().map(|r| r.duration_ms).collect(),
        ];
        let missing =
            || parquet::errors::ParquetError::General("schema has too few columns".into());
        for values in texts {
            let mut col = group.next_column()?.ok_or_else(missing)?;
            col.typed::<ByteArrayType>()
                .write_batch(&values, None, None)?;
            col.close()?;
        }
        for values in ints {
            let mut col = group.next_column()?.ok_or_else(missing)?;
            col.typed::<Int64Type>().write_batch(&values, None, None)?;
            col.close()?;
        }
        group.close()?;
    }
    writer.into_inner()
}

/// Inputs to the datasheet beyond the dashboard.
pub struct DatasheetInput<'a> {
    /// The project.
    pub project: &'a Project,
    /// Dashboard computed from the same records.
    pub dashboard: &'a Dashboard,
    /// Instruction versions with label counts.
    pub versions: &'a [(i64, String, i64)],
    /// Pools.
    pub pools: &'a [Pool],
    /// k-anonymous demographics.
    pub demographics: &'a [QuestionGroups],
    /// Items with a content warning.
    pub warned_items: usize,
}

/// One datasheet answer: checklist number, question, answer.
pub type SheetItem = (u8, &'static str, String);
/// A datasheet section: title and answers.
pub type SheetSection = (&'static str, Vec<SheetItem>);

/// The CrowdWorkSheets datasheet, by section.
pub fn datasheet(input: &DatasheetInput) -> Vec<SheetSection> {
    let spec = &input.project.spec;
    let k = release::k_of(spec.k_min);
    let d = input.dashboard;
    let note = |n: u8| -> String {
        spec.datasheet_notes
            .get(&n.to_string())
            .cloned()
            .unwrap_or_else(|| "Not recorded by the project (add datasheet_notes).".into())
    };
    let fmt_alpha = |a: Option<f64>| a.map_or("undefined".to_string(), |v| format!("{v:.3}"));
    let pools_text = input
        .pools
        .iter()
        .map(|p| match (&p.rule_question, &p.rule_answer) {
            (Some(q), Some(a)) => format!(
                "{} (raters answering {q:?} with {a:?}, or invited to it)",
                p.name
            ),
            _ => format!("{} (by invitation)", p.name),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let demo = if input.demographics.is_empty() {
        "No identity questionnaire was asked.".to_string()
    } else {
        input
            .demographics
            .iter()
            .map(|q| {
                let mut parts: Vec<String> =
                    q.groups.iter().map(|(a, c)| format!("{a}: {c}")).collect();
                if let Some(m) = q.merged_small_groups {
                    parts.push(format!("merged smaller groups: {m}"));
                }
                if q.withheld {
                    parts.push(format!("fewer than k = {k} raters: withheld"));
                }
                format!("{}: {}", q.question, parts.join(", "))
            })
            .collect::<Vec<_>>()
            .join(". ")
    };
    let effective: Vec<f64> = d.ledger.iter().filter_map(|l| l.effective_hourly).collect();
    let median = median(&effective);
    let below = d
        .ledger
        .iter()
        .filter(|l| l.meets_standard == Some(false))
        .count();
    let gold_text = if d.gold.is_empty() {
        "No gold items answered yet.".to_string()
    } else {
        let flagged = d.gold.iter().filter(|g| g.below_threshold).count();
        format!(
            "Gold items with known answers are mixed into each pool's queue; raters see feedback after answering. {} raters answered gold items; {flagged} are below the accuracy threshold of {:.2}.",
            d.gold.len(),
            spec.gold_min_accuracy
        )
    };
    let pool_alphas = d
        .pools
        .iter()
        .map(|p| format!("{}: {}", p.name, fmt_alpha(p.alpha_within)))
        .collect::<Vec<_>>()
        .join(", ");
    let dividing = d
        .dividing_items
        .iter()
        .take(5)
        .map(|i| format!("{} ({:.2})", i.item, i.divergence))
        .collect::<Vec<_>>()
        .join(", ");
    let versions = input
        .versions
        .iter()
        .map(|(v, body, n)| format!("version {v} ({n} labels): \"{}\"", body.replace('\n', " ")))
        .collect::<Vec<_>>()
        .join("; ");
    vec![
        (
            "Task formulation",
            vec![
                (1, "Which aspects of the task are subjective?", note(1)),
                (2, "What was assumed about annotators?", note(2)),
                (
                    3,
                    "How were instructions worded and their clarity tested?",
                    format!("{} Instruction versions: {versions}.", note(3)),
                ),
                (
                    4,
                    "Risks to annotators; warning and consent before work.",
                    format!(
                        "Consent screen shown before any item: \"{}\". Project content warning: {}. {} items carry an item-level warning and are blurred until the rater clicks. Exposure caps: {} items per session with a {}-minute break, {} per day; skipping carries no penalty.",
                        spec.consent_text,
                        spec.content_warning.as_deref().unwrap_or("none"),
                        input.warned_items,
                        spec.session_cap,
                        spec.break_minutes,
                        spec.daily_cap
                    ),
                ),
                (
                    5,
                    "Exact instructions shown, versioned and linked to each label.",
                    format!(
                        "Every label records the instructions version it was made under; the current version is {}. {versions}.",
                        input.project.instructions_version
                    ),
                ),
            ],
        ),
        (
            "Selecting annotators",
            vec![
                (
                    6,
                    "Perspectives deliberately sought, and how.",
                    format!(
                        "Pools: {pools_text}. Overlap: {} raters per item from each pool. {}",
                        spec.overlap_per_pool,
                        note(6)
                    ),
                ),
                (7, "Perspectives screened out as harmful, and how.", note(7)),
                (
                    8,
                    "Whether and how demographics drove selection.",
                    format!(
                        "Pools defined by questionnaire answers: {}. The questionnaire is optional and every question allows \"prefer not to say\".",
                        if input.pools.iter().any(|p| p.rule_question.is_some()) {
                            "yes"
                        } else {
                            "no"
                        }
                    ),
                ),
                (
                    9,
                    "Aggregate pool demographics and their plausible effect on labels.",
                    format!(
                        "Self-described, groups of at least k = {k} only, from release {} of the counts. {demo}. Pool sizes: {}. {}",
                        d.release.0,
                        d.pools
                            .iter()
                            .map(|p| match p.raters {
                                Some(n) => format!("{} {n}", p.name),
                                None => format!("{} withheld", p.name),
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                        privacy_rule(k)
                    ),
                ),
                (
                    10,
                    "Whether affected communities are in the pool.",
                    note(10),
                ),
            ],
        ),
        (
            "Platform and infrastructure",
            vec![
                (
                    11,
                    "Platform used, why, and its gaps.",
                    format!(
                        "Arbiter annotation server (self-hosted, open source). {}",
                        note(11)
                    ),
                ),
                (
                    12,
                    "Channels to annotators and their effect on labels.",
                    format!("Invitation codes per pool. {}", note(12)),
                ),
                (
                    13,
                    "Pay and the standard used to set it.",
                    format!(
                        "{:.2} {} per completed item (skips included); standard {:.2} {}/hour ({}). Median effective hourly pay {}; {below} raters below the standard.",
                        spec.pay_per_item,
                        spec.currency,
                        spec.pay_standard_per_hour,
                        spec.currency,
                        if spec.pay_standard_source.is_empty() {
                            "source not stated"
                        } else {
                            &spec.pay_standard_source
                        },
                        median.map_or("not yet measurable".into(), |m| format!(
                            "{m:.2} {}",
                            spec.currency
                        ))
                    ),
                ),
            ],
        ),
        (
            "Dataset analysis and evaluation",
            vec![
                (
                    14,
                    "Definition and measurement of label quality.",
                    gold_text,
                ),
                (
                    15,
                    "Disagreement analysis: method, findings, sources.",
                    format!(
                        "Krippendorff's alpha ({} level): pooled {}, between pool majorities {}, within pools {pool_alphas}. Items dividing pools most (total-variation distance): {}.",
                        if matches!(spec.label_schema, LabelSchema::Ordinal { .. }) {
                            "ordinal"
                        } else {
                            "nominal"
                        },
                        fmt_alpha(d.alpha_pooled),
                        fmt_alpha(d.alpha_between_pools),
                        if dividing.is_empty() {
                            "none yet".into()
                        } else {
                            dividing
                        }
                    ),
                ),
                (
                    16,
                    "How individual answers become released labels.",
                    format!(
                        "Exports release every individual label with a pseudonymous rater id and pool, so each viewpoint can be modelled; no aggregate is imposed. {}",
                        note(16)
                    ),
                ),
            ],
        ),
        (
            "Dataset release and maintenance",
            vec![
                (17, "Whether labels may change; update plan.", note(17)),
                (
                    18,
                    "Definitions whose change would invalidate the data.",
                    format!(
                        "Label schema: {:?}. {}",
                        spec.label_schema.labels(),
                        note(18)
                    ),
                ),
                (19, "Tracking and usage limits.", note(19)),
                (
                    20,
                    "Telling annotators how data is released and of changes.",
                    format!("Stated in the consent text raters accept. {}", note(20)),
                ),
                (
                    21,
                    "A withdrawal path for annotators' data.",
                    format!(
                        "Each rater gets a withdrawal code at consent and can withdraw at any time with it, signed in or not; the project team can also erase a rater on request. Withdrawal erases every record of the rater (answers, labels, exposures, sessions and the rater record itself; on SQLite the freed space is overwritten and the write-ahead log truncated). Pay already earned stays owed, recorded without any link to the rater. {} raters have withdrawn.",
                        d.withdrawn
                    ),
                ),
            ],
        ),
    ]
}

/// The privacy rule in words, for the datasheet.
pub fn privacy_rule(k: usize) -> String {
    format!(
        "Privacy rule: no count of raters below k = {k} is published; smaller groups (answers, and pools chosen by answers) are merged until the merge reaches k, and published counts change only in steps of at least k raters, so comparing two releases isolates no smaller group. Exported labels carry a pseudonym and a pool class of at least k raters."
    )
}

/// Escapes text for Markdown so a project's own words cannot inject links, images, HTML,
/// emphasis or block structure into the datasheet: the answer becomes one paragraph of text.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    // A paragraph opening with a heading, list or rule marker would become one.
    let digits = out.chars().take_while(char::is_ascii_digit).count();
    let first = out.chars().next();
    if matches!(first, Some('#' | '-' | '+' | '=')) {
        out.insert(0, '\\');
    } else if digits > 0
        && matches!(out[digits..].chars().next(), Some('.' | ')'))
        && out[digits + 1..]
            .chars()
            .next()
            .is_none_or(char::is_whitespace)
    {
        out.insert(digits, '\\');
    }
    out
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    })
}

/// Markdown rendering of the datasheet.
pub fn datasheet_markdown(name: &str, sheet: &[SheetSection]) -> String {
    let mut out = format!(
        "# Datasheet (CrowdWorkSheets): {}\n\nGenerated by the Arbiter annotation server from the project's records.\n",
        escape_markdown(name)
    );
    for (section, items) in sheet {
        out.push_str(&format!("\n## {section}\n"));
        for (n, q, a) in items {
            out.push_str(&format!("\n**{n}. {q}**\n\n{}\n", escape_markdown(a)));
        }
    }
    out
}

/// HTML rendering of the datasheet.
pub fn datasheet_html(name: &str, sheet: &[SheetSection]) -> String {
    use crate::ui::esc;
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Datasheet: {0}</title></head><body><main><h1>Datasheet (CrowdWorkSheets): {0}</h1><p>Generated by the Arbiter annotation server from the project's records.</p>",
        esc(name)
    );
    for (section, items) in sheet {
        out.push_str(&format!("<section><h2>{}</h2><dl>", esc(section)));
        for (n, q, a) in items {
            out.push_str(&format!("<dt>{n}. {}</dt><dd>{}</dd>", esc(q), esc(a)));
        }
        out.push_str("</dl></section>");
    }
    out.push_str("</main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_spreadsheets_would_run_become_text() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "@SUM(A1)",
            "+1+cmd|' /C calc'!A0",
            "-2",
            "\tx",
            "\rx",
        ] {
            assert!(csv_cell(bad).starts_with('\''), "{bad}");
        }
        assert_eq!(csv_cell("plain"), "plain");
    }

    #[test]
    fn markdown_is_escaped() {
        let e = escape_markdown("[click](http://evil) <img src=x> # h\n**b**");
        assert!(e.starts_with("\\[click\\](") && !e.contains(" <img") && !e.contains('\n'));
        assert!(e.contains("\\<img") && e.contains("\\*\\*b"));
        assert_eq!(escape_markdown("# title"), "\\# title");
        assert_eq!(escape_markdown("12. item"), "12\\. item");
        assert_eq!(escape_markdown("0.25 USD"), "0.25 USD");
        assert!(e.contains("\\[click\\]"));
    }
}
