//! scratch: raw encoder speed through the library path (parallel workers)
use arbiter_graders::embedded::model::{MiniLm, default_model_dir, mean_pool, normalised};
use std::time::Instant;

fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let max_tokens: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let layers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(6);
    let m = MiniLm::load_layers(&default_model_dir(), max_tokens, Some(layers)).unwrap();
    let mut texts = Vec::new();
    for split in ["train.jsonl", "test.jsonl"] {
        for line in std::fs::read_to_string(format!("/work/shared/data/rbr_gold/{split}"))
            .unwrap()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let c = match &v["completion"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a[0]["content"].as_str().unwrap().to_string(),
                o => o["content"].as_str().unwrap_or("").to_string(),
            };
            texts.push(c);
        }
    }
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let ids = m.tokenize(&refs).unwrap();
    let total: usize = ids.iter().map(|i| i.len()).sum();
    for _ in 0..2 {
        let (t, c) = (Instant::now(), cpu());
        let _ = m
            .embed_ids(&ids, 32, &mut |_| {}, &|s| normalised(&mean_pool(s)))
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        let c = cpu() - c;
        let load = std::fs::read_to_string("/proc/loadavg").unwrap();
        println!(
            "tokens {max_tokens} layers {layers}: {} texts {total} tok: wall {secs:.2}s = {:.1}/s; cpu {c:.2}s = {:.1} texts/cpu-s; load {}",
            texts.len(),
            texts.len() as f64 / secs,
            texts.len() as f64 / c,
            load.trim()
        );
    }
}
