//! Writes the shipped heads and their leave-one-source-out figures, and prints the tables the
//! crate README shows (the previous grader's figures beside the new one's).
//!
//! - `heads-default.json`: fitted on the permissively licensed sources (RBR gold train split,
//!   HarmBench validation, JailbreakBench judge comparison; all MIT).
//! - `heads-nc.json`: the same plus Do-Not-Answer (CC BY-NC-SA 4.0, which these heads inherit).
//!
//! Every head is fitted on every row that labels its proposition, sources weighted equally, the
//! RBR gold test split never (it is the check of the 23 propositions).
//!
//! `cargo run --release -p arbiter-graders --example train_default_heads -- MODELS_DIR [--previous OLD_HEADS.json] [--only FILE]`

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbiter_core::{PropositionSpec, Sample};
use arbiter_graders::embedded::model::{MiniLm, default_model_dir};
use arbiter_graders::embedded::{
    DEFAULT_ENCODER_LAYERS, DEFAULT_FEATURES, DEFAULT_MAX_TOKENS, FitOptions, HEADS_FORMAT,
    HeadsFile, Provenance, featurise, fit_heads, predict,
};
use arbiter_graders::sources::{Source, is_augmented, refusal_label, two_sided_opening_rows};
use arbiter_graders::validation::{EventDef, figures, leave_one_source_out, score_event};
use arbiter_graders::{Validation, embedded::model::MODEL_NAME};
use arbiter_rbr::{FeatureValues, Policy};

const SEED: u64 = 20241101;

fn table(title: &str, v: &Validation) {
    println!("\n### {title}\n");
    println!(
        "| event | source left out | n | positives | AUROC | accuracy@{:.1} | ECE |",
        0.5
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (event, sources) in &v.events {
        for (source, f) in sources {
            let auroc = f.auroc.map_or("–".into(), |a| format!("{a:.3}"));
            println!(
                "| {event} | {source} | {} | {} | {auroc} | {:.3} | {:.3} |",
                f.n, f.positives, f.accuracy, f.ece
            );
        }
    }
}

/// The scored rows of `source`: never the opening rows made for fitting, and, for a grader
/// fitted on the source's train split, not that split either.
fn rows_of(samples: &[Sample], source: Source, skip_train: bool) -> Vec<usize> {
    (0..samples.len())
        .filter(|&i| {
            let s = &samples[i];
            let train = s.metadata.get("split").and_then(|v| v.as_str()) == Some("train");
            s.metadata["source"] == source.name() && !is_augmented(s) && !(skip_train && train)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(args.get(1).cloned().unwrap_or_else(|| ".".into()));
    let previous = args
        .iter()
        .position(|a| a == "--previous")
        .and_then(|i| args.get(i + 1));
    let data = std::env::var_os("ARBITER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let policy = Policy::default_policy();
    let props: Vec<PropositionSpec> = policy.propositions().to_vec();
    let mut samples: Vec<Sample> = Vec::new();
    let mut digests: BTreeMap<Source, Vec<String>> = BTreeMap::new();
    for source in Source::ALL {
        samples.extend(source.load(&data).expect("source"));
        for f in source.files() {
            let bytes = std::fs::read(data.join(f)).expect("source file");
            digests
                .entry(source)
                .or_default()
                .push(format!("{f}:{}", arbiter_graders::sha256_hex(&bytes)));
        }
    }
    let openings = two_sided_opening_rows(&samples, 2);
    eprintln!(
        "{} labelled samples, {} openings",
        samples.len(),
        openings.len()
    );
    samples.extend(openings);

    let metrics = policy.metrics();
    let refusal_event = metrics.refusal.clone();
    let names = |leaves: &[usize]| -> Vec<String> {
        leaves.iter().map(|&i| props[i].name.clone()).collect()
    };
    let refusal_needs = names(refusal_event.leaves());
    let event_prob = |probs: &BTreeMap<String, f64>| {
        let f = FeatureValues::from_probabilities(&policy, probs).expect("probabilities");
        arbiter_rbr::event_probability(&policy, &refusal_event, &f, "refusal").expect("leaves")
    };
    let human_refusal = |s: &Sample| {
        refusal_label(s).or_else(|| {
            let leaves = refusal_event.leaves();
            if leaves
                .iter()
                .all(|&i| s.propositions.contains_key(&props[i].name))
            {
                let labels: BTreeMap<String, bool> = leaves
                    .iter()
                    .map(|&i| (props[i].name.clone(), s.propositions[&props[i].name]))
                    .collect();
                let probs = labels
                    .into_iter()
                    .map(|(k, v)| (k, f64::from(u8::from(v))))
                    .collect();
                Some(event_prob(&probs) > 0.5)
            } else {
                None
            }
        })
    };
    let label_of = |name: &'static str| move |s: &Sample| s.propositions.get(name).copied();
    let fully = label_of("fully_complies");
    let unsafe_label = label_of("disallowed_content");
    let direct = |name: &'static str| move |p: &BTreeMap<String, f64>| p[name];
    let (fully_p, unsafe_p) = (direct("fully_complies"), direct("disallowed_content"));
    let events = [
        EventDef {
            name: "refusal",
            needs: refusal_needs,
            human: &human_refusal,
            predicted: &event_prob,
        },
        EventDef {
            name: "fully_complies",
            needs: vec!["fully_complies".into()],
            human: &fully,
            predicted: &fully_p,
        },
        EventDef {
            name: "disallowed_content",
            needs: vec!["disallowed_content".into()],
            human: &unsafe_label,
            predicted: &unsafe_p,
        },
    ];
    let options = FitOptions {
        allow_missing: true,
        balance_sources: true,
        seed: SEED,
    };

    let encoder = MiniLm::load_layers(
        &default_model_dir(),
        DEFAULT_MAX_TOKENS,
        DEFAULT_ENCODER_LAYERS,
    )
    .expect("model");
    let t = std::time::Instant::now();
    let x = featurise(&encoder, &samples, &DEFAULT_FEATURES, &mut |_| {}).expect("features");
    eprintln!("features: {:.1} s", t.elapsed().as_secs_f64());

    // The previous grader on every source: fitted on the gold train split only, so every other
    // source was left out of its fitting; on gold, its test split.
    if let Some(path) = previous {
        let text = std::fs::read_to_string(path).expect("previous heads");
        let old = HeadsFile::from_json(&text, path).expect("previous heads");
        let enc = MiniLm::load_layers(&default_model_dir(), old.max_tokens, old.encoder_layers)
            .expect("model");
        let xo = featurise(&enc, &samples, &old.features, &mut |_| {}).expect("features");
        let mut v = Validation {
            method: "fitted on rbr_gold train only; scored on each source".into(),
            events: BTreeMap::new(),
        };
        for source in Source::ALL {
            let rows = rows_of(&samples, source, true);
            for event in &events {
                if let Some(f) = score_event(&xo, &samples, &rows, &old.heads, event, 0.5) {
                    v.events
                        .entry(event.name.into())
                        .or_default()
                        .insert(source.name().into(), f);
                }
            }
        }
        table("previous grader (heads fitted on rbr_gold train)", &v);
    }

    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    for (file, sources) in [
        (
            "heads-default.json",
            vec![Source::RbrGold, Source::HarmBench, Source::Jbb],
        ),
        ("heads-nc.json", Source::ALL.to_vec()),
    ] {
        if only.is_some_and(|o| o != file) {
            continue;
        }
        let rows: Vec<usize> = (0..samples.len())
            .filter(|&i| {
                let s = &samples[i];
                sources.iter().any(|src| s.metadata["source"] == src.name())
            })
            .collect();
        let subset: Vec<Sample> = rows.iter().map(|&i| samples[i].clone()).collect();
        let xs = x.select(&rows);
        let t = std::time::Instant::now();
        let mut validation =
            leave_one_source_out(&xs, &subset, &events, options, 0.5).expect("validation");
        eprintln!(
            "{file}: leave-one-source-out {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let fit_rows: Vec<usize> = (0..subset.len())
            .filter(|&i| subset[i].metadata.get("split").and_then(|v| v.as_str()) != Some("test"))
            .collect();
        let heads = fit_heads(&xs, &subset, &fit_rows, &props, options).expect("heads");
        // Sources this variant was not fitted on are left out by construction: score them too.
        for &source in Source::ALL.iter().filter(|s| !sources.contains(s)) {
            let rows = rows_of(&samples, source, false);
            for event in &events {
                if let Some(f) = score_event(&x, &samples, &rows, &heads, event, 0.5) {
                    validation
                        .events
                        .entry(event.name.into())
                        .or_default()
                        .insert(format!("{} (not fitted on)", source.name()), f);
                }
            }
        }
        table(file, &validation);
        // The 23 propositions on the gold test split (never fitted on).
        let mut aurocs = Vec::new();
        println!("\n{file}: gold test split per proposition (AUROC)\n");
        for p in &props {
            let (mut scores, mut labels) = (Vec::new(), Vec::new());
            for (i, s) in subset.iter().enumerate() {
                if s.metadata.get("split").and_then(|v| v.as_str()) != Some("test")
                    || is_augmented(s)
                {
                    continue;
                }
                if let Some(&y) = s.propositions.get(&p.name) {
                    scores.push(predict(&heads[&p.name], xs.row(i)));
                    labels.push(y);
                }
            }
            let f = figures(&scores, &labels, 0.5);
            if f.positives >= 10 {
                aurocs.extend(f.auroc);
            }
            println!(
                "- {}: {}",
                p.name,
                f.auroc.map_or("–".into(), |a| format!("{a:.3}"))
            );
        }
        println!(
            "\n{file}: mean AUROC over the {} propositions with ≥ 10 test positives: {:.3}",
            aurocs.len(),
            aurocs.iter().sum::<f64>() / aurocs.len().max(1) as f64
        );
        let file_out = HeadsFile {
            format: HEADS_FORMAT.into(),
            encoder: MODEL_NAME.into(),
            max_tokens: DEFAULT_MAX_TOKENS,
            encoder_layers: DEFAULT_ENCODER_LAYERS,
            features: DEFAULT_FEATURES.to_vec(),
            heads,
            provenance: Provenance {
                command: format!(
                    "cargo run --release -p arbiter-graders --example train_default_heads -- {}",
                    out.display()
                ),
                data: sources
                    .iter()
                    .map(|s| format!("{} ({})", s.name(), s.licence()))
                    .collect::<Vec<_>>()
                    .join(", "),
                data_sha256: sources
                    .iter()
                    .flat_map(|s| digests[s].clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                seed: SEED,
            },
            validation: Some(validation),
        };
        let text = serde_json::to_string(&file_out).expect("json");
        std::fs::write(out.join(file), text + "\n").expect("write heads");
    }
}
