//! Fits embedded-grader heads the way `train_default_heads` fits `heads-default.json` (same
//! features, options, seed and opening rows; the RBR gold test split never), on the permissively
//! licensed sources (RBR gold train, HarmBench validation, JailbreakBench judge comparison) less
//! the ones named by `--exclude`, and writes them to `--out`. Without `--exclude` the heads
//! are those `train_default_heads` fits now: equal to the shipped `heads-default.json` for 22
//! propositions; its `partially_complies` head predates the rule that takes reply openings only
//! from sources labelling both sides (it also has HarmBench's and JailbreakBench's openings).
//!
//! For leave-one-source-out scoring: heads that never saw a source can grade it without its own
//! labels leaking in (e.g. `arbiter rbr select` on HarmBench with heads fitted without it;
//! `scripts/bench/best_of_n.sh`). Write them outside the repository: they are a measuring
//! instrument for one benchmark, not shipped heads.
//!
//! `ARBITER_DATA=../shared/data cargo run --release -p arbiter-graders --example fit_heads_excluding -- --exclude harmbench_val --out /tmp/heads.json`

use std::path::PathBuf;

use arbiter_core::{PropositionSpec, Sample};
use arbiter_graders::embedded::model::{MODEL_NAME, MiniLm, default_model_dir};
use arbiter_graders::embedded::{
    DEFAULT_ENCODER_LAYERS, DEFAULT_FEATURES, DEFAULT_MAX_TOKENS, FitOptions, HEADS_FORMAT,
    HeadsFile, Provenance, featurise, fit_heads,
};
use arbiter_graders::sources::{Source, two_sided_opening_rows};
use arbiter_rbr::Policy;

/// `train_default_heads`' seed.
const SEED: u64 = 20241101;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| -> Vec<&String> {
        args.windows(2)
            .filter(|w| w[0] == name)
            .map(|w| &w[1])
            .collect()
    };
    let out = PathBuf::from(
        flag("--out")
            .first()
            .expect("usage: fit_heads_excluding [--exclude SOURCE]… --out FILE"),
    );
    let mut excluded = Vec::new();
    for name in flag("--exclude") {
        excluded.push(Source::parse(name).unwrap_or_else(|| {
            panic!(
                "--exclude {name}: not a source ({:?})",
                Source::ALL.map(Source::name)
            )
        }));
    }
    let sources: Vec<Source> = [Source::RbrGold, Source::HarmBench, Source::Jbb]
        .into_iter()
        .filter(|s| !excluded.contains(s))
        .collect();
    assert!(!sources.is_empty(), "every source excluded");
    let data = std::env::var_os("ARBITER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let policy = Policy::default_policy();
    let props: Vec<PropositionSpec> = policy.propositions().to_vec();
    let mut samples: Vec<Sample> = Vec::new();
    let mut digests = Vec::new();
    for &source in &sources {
        samples.extend(source.load(&data).expect("source"));
        for f in source.files() {
            let bytes = std::fs::read(data.join(f)).expect("source file");
            digests.push(format!("{f}:{}", arbiter_graders::sha256_hex(&bytes)));
        }
    }
    // As in train_default_heads.
    let openings = two_sided_opening_rows(&samples, 2);
    samples.extend(openings);
    let encoder = MiniLm::load_layers(
        &default_model_dir(),
        DEFAULT_MAX_TOKENS,
        DEFAULT_ENCODER_LAYERS,
    )
    .expect("model");
    let t = std::time::Instant::now();
    let x = featurise(&encoder, &samples, &DEFAULT_FEATURES, &mut |_| {}).expect("features");
    eprintln!(
        "{} rows featurised in {:.1} s",
        samples.len(),
        t.elapsed().as_secs_f64()
    );
    let fit_rows: Vec<usize> = (0..samples.len())
        .filter(|&i| samples[i].metadata.get("split").and_then(|v| v.as_str()) != Some("test"))
        .collect();
    let options = FitOptions {
        allow_missing: true,
        balance_sources: true,
        seed: SEED,
    };
    let heads = fit_heads(&x, &samples, &fit_rows, &props, options).expect("heads");
    let file = HeadsFile {
        format: HEADS_FORMAT.into(),
        encoder: MODEL_NAME.into(),
        max_tokens: DEFAULT_MAX_TOKENS,
        encoder_layers: DEFAULT_ENCODER_LAYERS,
        features: DEFAULT_FEATURES.to_vec(),
        heads,
        provenance: Provenance {
            command: format!(
                "cargo run --release -p arbiter-graders --example fit_heads_excluding --{} --out {}",
                excluded
                    .iter()
                    .map(|s| format!(" --exclude {}", s.name()))
                    .collect::<String>(),
                out.display()
            ),
            data: sources
                .iter()
                .map(|s| format!("{} ({})", s.name(), s.licence()))
                .collect::<Vec<_>>()
                .join(", "),
            data_sha256: digests.join(" "),
            seed: SEED,
        },
        validation: None,
    };
    std::fs::write(&out, serde_json::to_string(&file).expect("json") + "\n").expect("write heads");
    eprintln!(
        "wrote {} (fitted on {})",
        out.display(),
        file.provenance.data
    );
}
