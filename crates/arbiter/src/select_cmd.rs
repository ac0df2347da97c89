//! `arbiter rbr select`: best-of-N. Reads samples with several completions per prompt, scores
//! them with fitted weights over the chosen features (a grader's, usually), and reports how
//! often the highest-reward completion of a prompt is good under its human labels, against a
//! random pick and the grader's argmax class (`arbiter_rbr::select` holds the logic).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use arbiter_core::jsonl::write_line;
use arbiter_core::{FieldError, RecordError, Sample, SampleId};
use arbiter_rbr::select::{self, Candidate, Estimate, SelectReport};
use arbiter_rbr::{FeatureValues, Policy, classify, event_probability};
use clap::Args;
use serde_json::{Value, json};

use arbiter_columnar::rows::{SelectionRow, selections_to_batches};

use crate::input::{self, FeatureSource, RecordFormat};
use crate::rbr_cmd::{self, BootstrapArgs, DataArgs, Features, Format, SampleFile};

/// `arbiter rbr select` flags.
#[derive(Debug, Args)]
pub struct SelectArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Weights written by `arbiter rbr fit`.
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    boot: BootstrapArgs,
    /// What makes completions alternatives to each other: `prompt` (the same conversation),
    /// `category` (the same `category` field, e.g. a HarmBench behaviour under different
    /// attacks), or the name of a metadata field.
    #[arg(long, default_value = "prompt")]
    group_by: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also write each prompt's picks here (JSONL: group, ids, rewards, the reward pick and the
    /// grader-argmax pick; several ids on a tie). Parquet with the same columns when named
    /// `*.parquet`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Format of --out (default: Parquet for a name ending in `.parquet`, else JSONL); --format
    /// is the report's.
    #[arg(long, value_enum)]
    out_format: Option<RecordFormat>,
}

/// How samples are grouped into prompts.
enum GroupBy {
    Prompt,
    Category,
    Field(String),
}

impl GroupBy {
    fn parse(s: &str) -> Result<GroupBy> {
        Ok(match s {
            "prompt" => GroupBy::Prompt,
            "category" => GroupBy::Category,
            "" => anyhow::bail!("--group-by: expected `prompt`, `category` or a metadata field"),
            field => GroupBy::Field(field.to_string()),
        })
    }

    fn key(&self, sample: &Sample) -> Result<String, FieldError> {
        match self {
            GroupBy::Prompt => Ok(sample.prompt_key()),
            GroupBy::Category => sample.category.clone().ok_or_else(|| {
                FieldError::new("category", "is missing; --group-by category needs it")
            }),
            GroupBy::Field(name) => match sample.metadata.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
                _ => Err(FieldError::new(
                    name.clone(),
                    format!("is missing or not a string or number; --group-by {name} needs it"),
                )),
            },
        }
    }
}

/// The human outcomes of one sample: harmless (the policy's unsafe-content event is false) and
/// its class, each where the labels decide it.
fn human_outcomes(policy: &Policy, sample: &Sample) -> (Option<bool>, Option<usize>) {
    let Ok(labels) = FeatureValues::from_labels(policy, &sample.propositions) else {
        return (None, None);
    };
    let harmless = event_probability(
        policy,
        &policy.metrics().unsafe_content,
        &labels,
        "metrics.unsafe_content",
    )
    .ok()
    .map(|p| p < 0.5);
    let class = sample
        .response_type
        .filter(|_| !sample.propositions.is_empty())
        .and_then(|rt| classify(policy, rt, &labels).ok())
        .map(|c| c.class);
    (harmless, class)
}

/// Run `arbiter rbr select`.
pub fn run(args: SelectArgs) -> Result<ExitCode> {
    let SelectArgs {
        data,
        weights,
        boot,
        group_by,
        format,
        out,
        out_format,
    } = args;
    let parquet_out = match &out {
        Some(o) => input::choose_parquet(
            "--out-format",
            out_format.map(|f| f == RecordFormat::Parquet),
            "jsonl",
            Some(o),
        )?,
        None if out_format.is_some() => anyhow::bail!("--out-format needs --out"),
        None => false,
    };
    let group_by = GroupBy::parse(&group_by)?;
    let mut inputs = vec![("input", data.file.as_path()), ("--weights", &weights)];
    if let Some(FeatureSource::Grades(g)) = &data.features {
        inputs.push(("--features", g.as_path()));
    }
    if let Some(o) = &out {
        input::check_distinct(&inputs, &[("--out", o)])?;
    }
    let policy = input::load_policy(data.policy.as_deref())?;
    let model = rbr_cmd::read_weights(&weights, &policy)?;
    let features = Features::new(&data, FeatureSource::Human, &policy)?;
    let mut problems = rbr_cmd::problems(&data);
    let file = SampleFile::read(&data.file, &mut problems)?;
    let prepared = rbr_cmd::prepare_file(&policy, &features, &file, None, &mut problems, None)?;
    let rows = &prepared.rows;
    let rewards = arbiter_rbr::pipeline::scores(&policy, &model, rows)?;

    // Group in order of first appearance, so the bootstrap's prompt order is the file's.
    let by_id: HashMap<&SampleId, usize> = file
        .samples
        .iter()
        .enumerate()
        .map(|(k, s)| (&s.id, k))
        .collect();
    let source = data.file.display().to_string();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut keys: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<(Candidate, &SampleId)>> = Vec::new();
    for (row, reward) in rows.iter().zip(&rewards) {
        let k = by_id[&row.id];
        let (sample, line) = (&file.samples[k], file.lines[k]);
        let key = match group_by.key(sample) {
            Ok(k) => k,
            Err(e) => {
                problems.report(RecordError::new(&source, line, e))?;
                continue;
            }
        };
        let (harmless, human_class) = human_outcomes(&policy, sample);
        let candidate = Candidate {
            reward: *reward,
            grader_class: row.classification.class,
            harmless,
            human_class,
        };
        let g = *index.entry(key.clone()).or_insert_with(|| {
            keys.push(key);
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push((candidate, &row.id));
    }
    let candidates: Vec<Vec<Candidate>> = groups
        .iter()
        .map(|g| g.iter().map(|(c, _)| c.clone()).collect())
        .collect();
    let report = select::evaluate(&candidates, boot.bootstrap, boot.bootstrap_seed);
    let unscored = prepared.unscored;

    if let Some(path) = &out {
        let picks: Vec<SelectionRow> = keys
            .iter()
            .zip(&groups)
            .zip(&candidates)
            .filter(|((_, g), _)| g.len() >= 2)
            .map(|((key, g), c)| {
                let all: Vec<usize> = (0..g.len()).collect();
                let ids = |picked: Vec<usize>| -> Vec<SampleId> {
                    picked.into_iter().map(|i| g[i].1.clone()).collect()
                };
                SelectionRow {
                    group: key.clone(),
                    ids: ids(all.clone()),
                    rewards: c.iter().map(|x| x.reward).collect(),
                    reward_pick: ids(select::reward_pick(c, &all)),
                    argmax_pick: ids(select::argmax_pick(c, &all)),
                }
            })
            .collect();
        if parquet_out {
            input::write_parquet(path, selections_to_batches(&picks, path)?)?;
        } else {
            let mut w = input::create(Some(path))?;
            for p in &picks {
                write_line(
                    &mut w,
                    &json!({
                        "group": p.group,
                        "ids": p.ids,
                        "rewards": p.rewards,
                        "reward_pick": p.reward_pick,
                        "argmax_pick": p.argmax_pick,
                    }),
                )?;
            }
            w.finish()?;
        }
    }

    let mut w = input::create(None)?;
    match format {
        Format::Json => {
            let mut value = serde_json::to_value(&report)?;
            if let Value::Object(map) = &mut value {
                map.insert("input".into(), json!(source));
                map.insert("weights".into(), json!(weights.display().to_string()));
                map.insert("features".into(), json!(features.describe()));
                map.insert("grader_unscored_samples".into(), json!(unscored));
            }
            serde_json::to_writer_pretty(&mut w, &value)?;
            writeln!(w)?;
        }
        Format::Text => {
            writeln!(
                w,
                "{source}: {} completions scored by {} with {}",
                report.n_samples,
                weights.display(),
                features.describe()
            )?;
            if unscored > 0 {
                writeln!(
                    w,
                    "{unscored} completion(s) left out: the grader gave no probability for them"
                )?;
            }
            print_report(&report, &mut w)?;
        }
    }
    w.finish()?;
    problems.summarise();
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &SelectReport, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "{} prompts with 2+ completions; {} with one completion skipped. Rates in %, differences in points, {:.0}% percentile bootstrap intervals over prompts ({} replicates, seed {}).",
        report.n_groups,
        report.single_completion_prompts,
        100.0 * report.confidence,
        report.bootstrap,
        report.seed
    )?;
    let cell = |e: &Estimate, signed: bool| match (e.value, e.ci) {
        (Some(v), Some([lo, hi])) if signed => format!("{v:+7.2} [{lo:+7.2}, {hi:+7.2}]"),
        (Some(v), Some([lo, hi])) => format!("{v:7.2} [{lo:7.2}, {hi:7.2}]"),
        (Some(v), None) if signed => format!("{v:+7.2}"),
        (Some(v), None) => format!("{v:7.2}"),
        _ => "–".to_string(),
    };
    for o in &report.outcomes {
        writeln!(
            out,
            "\n{}: {} prompts whose completions differ ({} without a difference, {} with fewer than 2 labelled; {} completions without a label for it)",
            o.outcome.name(),
            o.n_prompts,
            o.groups_without_difference,
            o.groups_too_few_labelled,
            o.unlabelled_samples
        )?;
        if o.n_prompts == 0 {
            continue;
        }
        for (name, e, signed) in [
            ("reward", &o.reward, false),
            ("random", &o.random, false),
            ("argmax", &o.argmax, false),
            ("reward - random", &o.reward_minus_random, true),
            ("reward - argmax", &o.reward_minus_argmax, true),
        ] {
            writeln!(out, "  {name:<16} {}", cell(e, signed))?;
        }
    }
    Ok(())
}
