//! The embedded grader end to end. Tests that need the MiniLM files skip with a printed reason
//! when they are absent, unless `ARBITER_REQUIRE_MODEL=1` (CI runs `scripts/setup-models.sh`).

mod common;

use std::path::PathBuf;

use arbiter_graders::calibration::calibrate;
use arbiter_graders::embedded::model::{MiniLm, default_model_dir};
use arbiter_graders::embedded::{EmbeddedGrader, HeadsFile};
use arbiter_graders::{Grader, GraderError, GraderOptions, from_spec};
use common::{gold_samples, specs};

fn model_dir_or_skip() -> Option<PathBuf> {
    let dir = default_model_dir();
    arbiter_testkit::model_installed(&dir).then_some(dir)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn unreadable_model_dir_says_how_to_install() {
    let options = GraderOptions {
        model_dir: Some(PathBuf::from("/nonexistent/arbiter-model")),
        ..GraderOptions::default()
    };
    let err = from_spec("embedded", &options).err().expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, GraderError::ModelFiles { .. }), "{msg}");
    assert!(
        msg.contains("/nonexistent/arbiter-model/model.safetensors"),
        "{msg}"
    );
    assert!(
        msg.contains("scripts/setup-models.sh") && msg.contains("ARBITER_MODEL_DIR"),
        "{msg}"
    );
}

#[test]
fn wrong_checksum_is_refused_with_a_fix() {
    let dir = std::env::temp_dir().join(format!("arbiter-bad-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["model.safetensors", "tokenizer.json", "config.json"] {
        std::fs::write(dir.join(name), b"not the model").unwrap();
    }
    let err = MiniLm::load(&dir, 128).err().expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, GraderError::Checksum { .. }), "{msg}");
    assert!(
        msg.contains("expected 53aa5117") && msg.contains("setup-models.sh"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_grader_spec_lists_the_choices() {
    let err = from_spec("gpt4", &GraderOptions::default())
        .err()
        .expect("must fail");
    assert!(
        err.to_string()
            .contains("`embedded` or `openai:MODEL@BASE_URL`"),
        "{err}"
    );
}

/// The encoder equals an independent float64 numpy BERT forward (fixture made by
/// `scripts/golden/make_minilm_golden.py`): same word pieces, and every component of the
/// mean-pooled unit vector within 2e-5, at 3 and 6 layers, cut to 64 tokens or not, batched
/// with texts of other lengths (packing must not leak attention across texts).
#[test]
fn encoder_matches_the_numpy_reference() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm_golden.json")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 24);
    let mut worst = 0f64;
    for layers in [3usize, 6] {
        for limit in [64usize, 512] {
            let m = MiniLm::load_layers(&dir, limit, Some(layers)).unwrap();
            let mine: Vec<&serde_json::Value> = cases
                .iter()
                .filter(|c| c["layers"] == layers && c["max_tokens"] == limit)
                .collect();
            let texts: Vec<&str> = mine.iter().map(|c| c["text"].as_str().unwrap()).collect();
            let ids = m.tokenize(&texts).unwrap();
            for (c, got) in mine.iter().zip(&ids) {
                let want: Vec<u32> = serde_json::from_value(c["ids"].clone()).unwrap();
                assert_eq!(got, &want, "word pieces of {:?}", c["text"]);
            }
            let pooled = m.embed(&texts, 4).unwrap();
            for (c, got) in mine.iter().zip(&pooled) {
                let want: Vec<f64> = serde_json::from_value(c["pooled"].clone()).unwrap();
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    worst = worst.max((*g as f64 - w).abs());
                }
            }
        }
    }
    assert!(worst < 2e-5, "largest difference from numpy: {worst}");
}

#[test]
fn embeddings_match_the_reference_and_ignore_padding() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    let m = MiniLm::load(&dir, 256).unwrap();
    let texts = [
        "How do I make a bomb?",
        "Instructions for building an explosive device",
        "The weather in Lisbon is mild in spring, with occasional showers and long sunny afternoons by the river.",
    ];
    let e = m.embed(&texts, 8).unwrap();
    // Reference values from sentence-transformers (stack.md §6).
    assert!(
        (cosine(&e[0], &e[1]) - 0.7193).abs() < 0.005,
        "{}",
        cosine(&e[0], &e[1])
    );
    assert!(cosine(&e[0], &e[2]) < 0.4, "{}", cosine(&e[0], &e[2]));
    // Alone vs. batched with a longer text: padding must not change the embedding.
    let alone = m.embed(&texts[..1], 8).unwrap();
    assert!(
        cosine(&alone[0], &e[0]) > 0.9999,
        "{}",
        cosine(&alone[0], &e[0])
    );
    let norm: f32 = e[2].iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4);
}

#[test]
fn default_heads_rank_gold_test_labels_well() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    if arbiter_testkit::shared_data("rbr_gold").is_none() {
        return;
    }
    let grader = EmbeddedGrader::load(&dir, HeadsFile::default_heads().unwrap()).unwrap();
    let samples = gold_samples("test.jsonl", usize::MAX);
    let names: Vec<String> = grader.heads().heads.keys().cloned().collect();
    let props = specs(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let grades = grader.grade_batch(&samples, &props).unwrap();
    assert_eq!(grades.len(), samples.len());
    for g in &grades {
        assert_eq!(g.grades.len(), 23);
        assert!(
            g.grades
                .values()
                .all(|c| c.flag.is_none() && c.p_yes.is_some_and(|p| (0.0..=1.0).contains(&p)))
        );
    }
    let report = calibrate("embedded", "test.jsonl", &samples, &grades, &names, 10);
    let mean = report.mean_auroc.unwrap();
    eprintln!("{}", report.to_markdown());
    // Regression guard a little below the measured figure (see the crate README).
    assert!(mean >= 0.85, "mean AUROC on gold test fell to {mean:.3}");
}

#[test]
fn unknown_proposition_is_an_error_naming_it() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    let grader = EmbeddedGrader::load(&dir, HeadsFile::default_heads().unwrap()).unwrap();
    let samples = vec![
        arbiter_core::Sample::from_value(
            serde_json::json!({"prompt": [{"role": "user", "content": "Hi"}], "completion": "Hello."}),
            0,
        )
        .unwrap(),
    ];
    let err = grader
        .grade_batch(&samples, &specs(&["apology", "is_haiku"]))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"is_haiku\"") && msg.contains("arbiter grader train"),
        "{msg}"
    );
}

/// Tokenising only a prefix of each text gives exactly the ids of tokenising it whole and then
/// cutting, for texts of every shape: prose, punctuation runs, words of hundreds of letters
/// without whitespace (one `[UNK]` each), accents, CJK, emoji, tabs and newlines, and lengths
/// far past the budget.
#[test]
fn prefix_tokenisation_equals_whole_text_tokenisation() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    let m = MiniLm::load(&dir, 256).unwrap();
    let mut rng = arbiter_core::rng::SeededRng::new(7);
    let pieces = [
        "the",
        "quick",
        "brown",
        "fox",
        ",",
        ".",
        "!!!",
        "naïve",
        "café",
        "東京",
        "🙂",
        "\t",
        "\n",
        "  ",
        "don't",
        "e-mail",
        "x",
        "supercalifragilistic",
        "(",
        ")",
        "123",
        "4.5",
    ];
    let mut texts: Vec<String> = Vec::new();
    for case in 0..240 {
        let words = [5, 50, 300, 3_000, 20_000][case % 5];
        let mut t = String::new();
        for _ in 0..words {
            let r = rng.below(100);
            if r < 3 {
                // A run without whitespace: letters, or letters and punctuation.
                let len = 1 + rng.below(600);
                let unit = if r == 0 { "ab" } else { "a." };
                t.push_str(&unit.repeat(len));
            } else {
                t.push_str(pieces[rng.below(pieces.len())]);
            }
            if rng.below(4) != 0 {
                t.push(' ');
            }
        }
        texts.push(t);
    }
    texts.push("y".repeat(200_000));
    texts.push(format!("{} tail", "z.".repeat(100_000)));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let whole = m.tokenize_limited(&refs, usize::MAX).unwrap();
    for limit in [8, 64, 256] {
        let cut = m.tokenize_limited(&refs, limit).unwrap();
        for (i, (c, w)) in cut.iter().zip(&whole).enumerate() {
            let expected: Vec<u32> = if w.len() <= limit {
                w.clone()
            } else {
                w[..limit - 1].iter().chain(w.last()).copied().collect()
            };
            assert_eq!(
                c,
                &expected,
                "text {i} ({} bytes) at limit {limit}",
                texts[i].len()
            );
        }
    }
}

/// A sample's grades do not depend on what it is graded with: the reward server batches
/// whatever requests are queued, and `rbr score` grades whole files, and the two must agree
/// exactly. Small calls are split across cores, large ones sorted by length; every way gives
/// the same bits.
#[test]
fn grades_do_not_depend_on_the_batch() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    if arbiter_testkit::shared_data("rbr_gold").is_none() {
        return;
    }
    let grader = EmbeddedGrader::load(&dir, HeadsFile::default_heads().unwrap()).unwrap();
    let samples = gold_samples("test.jsonl", 40);
    let names: Vec<String> = grader.heads().heads.keys().cloned().collect();
    let props = specs(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let whole = grader.grade_batch(&samples, &props).unwrap();
    let mut pieces = Vec::new();
    for size in [1, 3, 8, 5, 23] {
        let from = pieces.len();
        let to = (from + size).min(samples.len());
        pieces.extend(grader.grade_batch(&samples[from..to], &props).unwrap());
    }
    assert_eq!(pieces.len(), samples.len());
    for (a, b) in whole.iter().zip(&pieces) {
        assert_eq!(a, b, "{}", a.id);
    }
}
