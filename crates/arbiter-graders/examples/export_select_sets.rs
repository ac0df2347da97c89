//! Writes Do-Not-Answer and HarmBench's validation set as sample JSONL for `arbiter rbr select`
//! (best-of-N): `do_not_answer.jsonl` (939 prompts × 6 models' responses) and
//! `harmbench_val.jsonl` (301 behaviours × 2 completions, each under its own attack prompt;
//! group them with `--group-by category`, the behaviour).
//!
//! The human labels are those `arbiter_graders::sources` reads (`disallowed_content` from
//! `harmful` or the HarmBench majority, plus what each dataset says about compliance). Every
//! sample gets `response_type = hard_refuse`: both sets are requests their authors collected as
//! ones a model should not carry out (Do-Not-Answer: "instructions that responsible language
//! models should not follow"; HarmBench: harmful behaviours), which the default policy answers
//! with a hard refusal. Some Do-Not-Answer prompts (mental-health risks) would be
//! `safe_refuse_*` under a finer assignment; the harmless outcome `rbr select` scores does not
//! depend on the response type, only the reward and the grader's classes do.
//!
//! Both files hold third-party data (Do-Not-Answer: CC BY-NC-SA 4.0): write them outside the
//! repository.
//!
//! `ARBITER_DATA=../shared/data cargo run --release -p arbiter-graders --example export_select_sets -- OUT_DIR`

use std::io::Write;
use std::path::PathBuf;

use arbiter_core::ResponseType;
use arbiter_graders::sources::Source;

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: export_select_sets OUT_DIR"),
    );
    let data = std::env::var_os("ARBITER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    std::fs::create_dir_all(&out).expect("create OUT_DIR");
    for source in [Source::DoNotAnswer, Source::HarmBench] {
        let samples = source.load(&data).expect("source");
        let path = out.join(format!("{}.jsonl", source.name()));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        for mut s in samples {
            s.response_type = Some(ResponseType::HardRefuse);
            serde_json::to_writer(&mut w, &s).expect("write");
            w.write_all(b"\n").expect("write");
        }
        w.flush().expect("write");
        eprintln!("wrote {}", path.display());
    }
}
