//! Exploration aid: write every labelled source's samples and candidate feature blocks to a
//! directory (raw little-endian f32 matrices plus a JSON index), so layouts can be compared
//! quickly outside Rust before one is built into the grader.
//!
//! `cargo run --release -p arbiter-graders --example export_features -- OUT_DIR`

use std::io::Write;
use std::path::PathBuf;

use arbiter_graders::embedded::features::{last_user_turn, lexical_features};
use arbiter_graders::embedded::model::{MiniLm, default_model_dir, mean_pool, normalised};
use arbiter_graders::sources::Source;

fn write_matrix(path: &PathBuf, rows: &[Vec<f32>]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for r in rows {
        for v in r {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
    }
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("OUT_DIR"));
    std::fs::create_dir_all(&out).unwrap();
    let data = PathBuf::from(std::env::var("ARBITER_DATA").unwrap_or("../shared/data".into()));
    let mut samples = Vec::new();
    for s in Source::ALL {
        let rows = s.load(&data).unwrap();
        eprintln!("{}: {} rows", s.name(), rows.len());
        samples.extend(rows);
    }
    let index: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            serde_json::json!({"id": s.id.to_string(), "source": s.metadata["source"],
                "split": s.metadata.get("split"), "response_type": s.response_type.map(|r| r.as_str()),
                "propositions": s.propositions, "events": s.metadata.get("events"),
                "user": last_user_turn(s), "reply": s.completion_text()})
        })
        .collect();
    std::fs::write(
        out.join("index.json"),
        serde_json::to_string(&index).unwrap(),
    )
    .unwrap();
    let users: Vec<String> = samples.iter().map(last_user_turn).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let replies: Vec<&str> = samples.iter().map(|s| s.completion_text()).collect();
    let lexical: Vec<Vec<f32>> = replies
        .iter()
        .map(|r| lexical_features(r).into_iter().map(|v| v as f32).collect())
        .collect();
    write_matrix(&out.join("lexical.f32"), &lexical);
    for layers in [3usize, 6] {
        let t = std::time::Instant::now();
        let enc = MiniLm::load_layers(&default_model_dir(), 512, Some(layers)).unwrap();
        let r_ids = enc.tokenize_limited(&replies, 128).unwrap();
        let u_ids = enc.tokenize_limited(&users, 64).unwrap();
        let pool = |_: usize, st: &[f32]| normalised(&mean_pool(st));
        let r = enc.embed_ids_indexed(&r_ids, 32, &mut |_| {}, &pool);
        write_matrix(&out.join(format!("reply{layers}.f32")), &r);
        let u = enc.embed_ids_indexed(&u_ids, 32, &mut |_| {}, &pool);
        write_matrix(&out.join(format!("user{layers}.f32")), &u);
        // Request and reply read together: [CLS] user [SEP] reply [SEP]; pooled over the
        // reply's tokens (and its closing [SEP]) only, and the [CLS] state.
        let pairs: Vec<Vec<u32>> = u_ids
            .iter()
            .zip(&r_ids)
            .map(|(u, r)| u.iter().chain(&r[1..]).copied().collect())
            .collect();
        let user_len: Vec<usize> = u_ids.iter().map(Vec::len).collect();
        let pair_pool = |i: usize, st: &[f32]| {
            let reply = &st[user_len[i] * 384..];
            let mut v = normalised(&mean_pool(reply));
            v.extend(normalised(&st[..384]));
            v
        };
        let p = enc.embed_ids_indexed(&pairs, 32, &mut |_| {}, &pair_pool);
        let (pm, pc): (Vec<Vec<f32>>, Vec<Vec<f32>>) = p
            .into_iter()
            .map(|v| (v[..384].to_vec(), v[384..].to_vec()))
            .unzip();
        write_matrix(&out.join(format!("pair{layers}.f32")), &pm);
        write_matrix(&out.join(format!("paircls{layers}.f32")), &pc);
        eprintln!("layers {layers}: {:.1} s", t.elapsed().as_secs_f64());
    }
    let enc = MiniLm::load_layers(&default_model_dir(), 512, Some(1)).unwrap();
    let st: Vec<Vec<f32>> = enc
        .tokenize_limited(&replies, 512)
        .unwrap()
        .iter()
        .map(|ids| normalised(&mean_pool(&enc.static_embeddings(ids))))
        .collect();
    write_matrix(&out.join("static.f32"), &st);
    eprintln!("{} samples", samples.len());
}
