//! Evaluate the perspective models on a shared-task set straight from the shared data:
//! `cargo run --release -p arbiter-perspectives --example shared_task -- SET [POOL] [quick]`
//! (SET = HS-Brexit | ArMIS | MD-Agreement | ConvAbuse | MultiPICo). Features are cached in
//! the system's temporary directory. Prints the report's JSON; with `REPORT_DIR` set, also
//! writes report.html and report.md there.

use std::collections::HashMap;
use std::path::PathBuf;

use arbiter_graders::embedded::model::{MiniLm, default_model_dir};
use arbiter_perspectives::eval::{EvalSettings, evaluate};
use arbiter_perspectives::features::DEFAULT_NGRAM_BUCKETS;
use arbiter_perspectives::{Corpus, Embedder, Features, ItemMeta, Split};
use serde_json::Value;

struct Mini(MiniLm);

impl Embedder for Mini {
    fn name(&self) -> String {
        "all-minilm-l6-v2".into()
    }
    fn dim(&self) -> usize {
        384
    }
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.0.embed(texts, 32).map_err(|e| e.to_string())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let set = args.first().map(String::as_str).unwrap_or("HS-Brexit");
    let data = PathBuf::from(std::env::var("ARBITER_DATA").unwrap_or("../shared/data".into()));
    let options = arbiter_ratings::Options::default();
    let mut meta: HashMap<String, ItemMeta> = HashMap::new();
    let loaded = if set == "MultiPICo" {
        let dir = data.join("annotation/multipico");
        for split in ["dev", "test"] {
            let doc: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join(format!("MP_{split}.json"))).unwrap(),
            )
            .unwrap();
            for (id, rec) in doc.as_object().unwrap() {
                let t = &rec["text"];
                let text = format!(
                    "{}\n{}",
                    t["post"].as_str().unwrap_or(""),
                    t["reply"].as_str().unwrap_or("")
                );
                meta.insert(
                    format!("{split}/{id}"),
                    ItemMeta {
                        text,
                        split: Split::parse(split),
                        hard_label: None,
                    },
                );
            }
        }
        arbiter_ratings::datasets::multipico(&dir, &["Gender", "Age", "Nationality"], &options)
            .unwrap()
    } else {
        let dir = data.join("annotation/lewidi2023");
        for split in ["train", "dev", "test"] {
            let doc: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join(format!("{set}_{split}.json"))).unwrap(),
            )
            .unwrap();
            for (id, rec) in doc.as_object().unwrap() {
                let raw = rec["text"].as_str().unwrap_or("").to_string();
                let text = match serde_json::from_str::<Value>(&raw) {
                    Ok(Value::Object(turns)) => turns
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => raw,
                };
                let hard = match &rec["hard_label"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                meta.insert(
                    format!("{split}/{id}"),
                    ItemMeta {
                        text,
                        split: Split::parse(split),
                        hard_label: hard,
                    },
                );
            }
        }
        arbiter_ratings::datasets::lewidi(&dir, set, &options).unwrap()
    };
    let mut ratings = loaded.ratings;
    if set == "ConvAbuse" {
        // LeWiDi's binary view: ≤ −1 = abusive.
        let mut b = arbiter_stats::RatingsBuilder::new(
            arbiter_stats::DomainSpec::Infer(arbiter_stats::LabelKind::Nominal),
            vec!["group".into()],
        );
        for r in ratings.rows() {
            let label = ratings.domain().values()[r.label as usize]
                .parse::<i32>()
                .unwrap();
            b.push(
                ratings.items().get(r.item as usize).unwrap(),
                ratings.raters().get(r.rater as usize).unwrap(),
                if label <= -1 { "1" } else { "0" },
                &[None],
            )
            .unwrap();
        }
        ratings = b.build(arbiter_stats::DuplicatePolicy::KeepAll).unwrap();
    }
    let corpus = Corpus::from_ratings(set, &ratings, |id| meta.get(id).cloned()).unwrap();
    let texts: Vec<&str> = corpus.items.iter().map(|i| i.text.as_str()).collect();
    let cache = std::env::temp_dir().join(format!("arbiter-persp-{set}.f32"));
    let features = match std::fs::read(&cache) {
        Ok(bytes) => {
            let data: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let spec = arbiter_perspectives::FeatureSpec {
                embedder: Some("all-minilm-l6-v2".into()),
                embedding_dim: 384,
                ngram_buckets: DEFAULT_NGRAM_BUCKETS,
            };
            Features { spec, data }
        }
        Err(_) => {
            let t = std::time::Instant::now();
            let mut mini = Mini(MiniLm::load(&default_model_dir(), 256).unwrap());
            let f = Features::build(&texts, Some(&mut mini), DEFAULT_NGRAM_BUCKETS).unwrap();
            eprintln!(
                "features: {} texts in {:.1} s",
                texts.len(),
                t.elapsed().as_secs_f64()
            );
            std::fs::write(
                &cache,
                f.data
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
            .unwrap();
            f
        }
    };
    let mut settings = EvalSettings::default();
    if let Some(pool) = args.get(1).filter(|p| *p != "-") {
        settings.pool_attribute = Some(pool.clone());
        settings.identity_attributes = corpus.attributes.clone();
    }
    if args.iter().any(|a| a == "quick") {
        settings.seeds = vec![1];
        settings.curves = false;
        settings.bootstrap = 0;
    }
    for a in &args {
        if let Some(v) = a.strip_prefix("steps=") {
            settings.train.steps = v.parse().unwrap();
        }
        if let Some(v) = a.strip_prefix("lr=") {
            settings.train.learning_rate = v.parse().unwrap();
        }
        if let Some(v) = a.strip_prefix("k=") {
            settings.components_grid = v.split(',').map(|w| w.parse().unwrap()).collect();
        }
    }
    let t = std::time::Instant::now();
    let ev = evaluate(&corpus, &features, &settings, &mut |line| {
        eprintln!("[{:6.1}s] {line}", t.elapsed().as_secs_f64())
    })
    .unwrap();
    let report = arbiter_perspectives::report::EvalReport::new(&corpus, ev);
    if let Ok(dir) = std::env::var("REPORT_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/report.html"), report.html()).unwrap();
        std::fs::write(format!("{dir}/report.md"), report.markdown()).unwrap();
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report.to_json()).unwrap()
    );
}
