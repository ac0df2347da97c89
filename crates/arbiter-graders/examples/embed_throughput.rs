//! Texts per second of the cached text embedder, cache off: one text per line of a file.
//! `cargo run --release -p arbiter-graders --example embed_throughput -- texts.txt [max_tokens]`

use std::time::Instant;

use arbiter_graders::embedded::model::default_model_dir;
use arbiter_graders::embedded::text_embeddings::{DEFAULT_MAX_TOKENS, TextEmbedder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: embed_throughput FILE [MAX_TOKENS]")?;
    let max_tokens = match args.next() {
        Some(n) => n.parse()?,
        None => DEFAULT_MAX_TOKENS,
    };
    let text = std::fs::read_to_string(&path)?;
    let texts: Vec<&str> = text.lines().collect();
    let mut embedder = TextEmbedder::load(&default_model_dir(), max_tokens)?.with_cache_dir(None);
    let start = Instant::now();
    let (rows, _) = embedder.embed(&texts, &mut |_| {})?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} texts, max {max_tokens} tokens: {secs:.1} s, {:.1} texts/s ({} threads)",
        rows.len(),
        rows.len() as f64 / secs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}
