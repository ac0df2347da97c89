//! `arbiter perspectives train|predict|eval` end to end on the real binary: a tiny generic CSV
//! with n-gram features (no model, no shared data) for the round trip and bad input; the
//! Interface of issue 23 on the shared LeWiDi and MultiPICo data when it is there (skipped with
//! a reason otherwise, required under ARBITER_REQUIRE_DATA / ARBITER_REQUIRE_MODEL).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbiter_testkit::TempDir as Dir;
use common::{arbiter_in, s, stderr, stdout};
use serde_json::Value;

/// 48 items, four raters in two pools. Pool `a` calls an item with "awful" in it `1`; pool
/// `b` calls an item with "storm" in it `1`. Texts vary so the n-grams have something to fit.
fn ratings_csv() -> String {
    let words = ["river", "garden", "window", "market", "letter", "bridge"];
    let mut csv = String::from("item,rater,label,pool,text\n");
    for i in 0..48 {
        let awful = i % 2 == 0;
        let storm = i % 3 == 0;
        let text = format!(
            "{} {} {} number {i}",
            if awful { "awful" } else { "lovely" },
            words[i % words.len()],
            if storm { "storm" } else { "sunshine" },
        );
        for (rater, pool) in [("r1", "a"), ("r2", "a"), ("r3", "b"), ("r4", "b")] {
            let label = if pool == "a" { awful } else { storm };
            // The text is given on the first rater's row only: the first non-empty value wins.
            let t = if rater == "r1" { text.as_str() } else { "" };
            csv.push_str(&format!("i{i},{rater},{},{pool},{t}\n", u8::from(label)));
        }
    }
    csv
}

fn ok(o: &std::process::Output) {
    assert!(
        o.status.success(),
        "exit {:?}\n{}",
        o.status.code(),
        stderr(o)
    );
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

fn distribution(v: &Value) -> BTreeMap<String, f64> {
    let map: BTreeMap<String, f64> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .iter()
        .map(|(k, p)| (k.clone(), p.as_f64().unwrap()))
        .collect();
    assert_eq!(map.keys().collect::<Vec<_>>(), ["0", "1"], "{v}");
    assert!(map.values().all(|p| (0.0..=1.0).contains(p)), "{v}");
    let sum: f64 = map.values().sum();
    assert!((sum - 1.0).abs() < 1e-9, "sums to {sum}: {v}");
    map
}

/// The Interface's fields, each a number in its range.
fn check_contract(report: &Value) {
    assert!(report["dataset"].is_string(), "{report}");
    for field in ["n_items", "n_annotators"] {
        assert!(
            report[field].as_u64().is_some_and(|n| n > 0),
            "{field}: {report}"
        );
    }
    let ce = report["soft_ce"].as_f64().expect("soft_ce");
    assert!(ce.is_finite() && ce >= 0.0, "{ce}");
    let f1 = report["micro_f1"].as_f64().expect("micro_f1");
    assert!((0.0..=1.0).contains(&f1));
    for part in ["mean", "worst"] {
        let v = report["per_annotator_macro_f1"][part]
            .as_f64()
            .unwrap_or_else(|| panic!("per_annotator_macro_f1.{part}: {report}"));
        assert!((0.0..=1.0).contains(&v));
    }
    assert!(
        report["per_annotator_macro_f1"]["worst"].as_f64()
            <= report["per_annotator_macro_f1"]["mean"].as_f64()
    );
    assert!(
        report["baselines"]["prior_ce"].as_f64().is_some(),
        "{report}"
    );
    assert!(
        report["baselines"]["majority_f1"].as_f64().is_some(),
        "{report}"
    );
}

#[test]
fn train_predict_eval_round_trip_on_a_generic_csv() {
    let dir = Dir::new("persp-round-trip");
    let ratings = dir.write("ratings.csv", &ratings_csv());
    let model = dir.path("model.json");
    let common = [
        s(&ratings),
        "--text",
        "text",
        "--group",
        "pool",
        "--features",
        "ngrams",
        "--ngram-buckets",
        "512",
    ];

    let mut train = vec!["perspectives", "train"];
    train.extend(common);
    train.extend([
        "--pool",
        "pool",
        "--seed",
        "3",
        "--components",
        "2,4",
        "--out",
        s(&model),
    ]);
    let o = arbiter_in(&dir, &train);
    ok(&o);
    assert!(
        stdout(&o).is_empty(),
        "progress goes to stderr: {}",
        stdout(&o)
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(file["classes"], serde_json::json!(["0", "1"]));
    assert_eq!(file["annotators"].as_array().unwrap().len(), 4);
    assert_eq!(file["features"]["embedder"], Value::Null);
    assert_eq!(file["features"]["ngram_buckets"], 512);
    // Both widths scored; the file keeps the chosen width's components and its models read it.
    let widths: Vec<u64> = file["components_scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["components"].as_u64().unwrap())
        .collect();
    assert_eq!(widths, vec![2, 4]);
    let k = file["pca"]["variances"].as_array().unwrap().len() as u64;
    assert!(widths.contains(&k), "{k}");
    assert!(
        file["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["model"]["k"].as_u64() == Some(k)),
        "every model reads {k} components"
    );

    for (per, key) in [
        ("item", None),
        ("annotator", Some("per_annotator")),
        ("pool", Some("per_pool")),
    ] {
        let out = dir.path(&format!("pred-{per}.jsonl"));
        let o = arbiter_in(
            &dir,
            &[
                "perspectives",
                "predict",
                s(&ratings),
                "--text",
                "text",
                "--group",
                "pool",
                "--model",
                s(&model),
                "--per",
                per,
                "--out",
                s(&out),
            ],
        );
        ok(&o);
        let lines: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 48);
        let mut p_awful = (0.0, 0.0);
        for line in &lines {
            let soft = distribution(&line["soft_label"]);
            let id: usize = line["item"].as_str().unwrap()[1..].parse().unwrap();
            if id.is_multiple_of(2) {
                p_awful.0 += soft["1"] / 24.0;
            } else {
                p_awful.1 += soft["1"] / 24.0;
            }
            if let Some(key) = key {
                let each = line[key]
                    .as_object()
                    .unwrap_or_else(|| panic!("{key}: {line}"));
                let want = if per == "pool" { 2 } else { 4 };
                assert_eq!(each.len(), want, "{line}");
                for v in each.values() {
                    distribution(v);
                }
                if per == "pool" {
                    // Pool a learned "awful"; pool b did not (it follows "storm").
                    let a = distribution(&line[key]["a"])["1"];
                    if id.is_multiple_of(2) && !id.is_multiple_of(3) {
                        assert!(a > 0.5, "pool a on an awful item: {line}");
                    }
                }
            }
        }
        // Half of all labels are pool a's "awful": items with the word get more `1`.
        assert!(p_awful.0 > p_awful.1 + 0.1, "{p_awful:?}");
    }

    // New items with no ratings: only their texts. A pool's model follows its own rule.
    let new_items = dir.write(
        "new.csv",
        "item,text\nn1,an awful day by the sea\nn2,a calm morning in the park\n",
    );
    let out = dir.path("pred-new.jsonl");
    let o = arbiter_in(
        &dir,
        &[
            "perspectives",
            "predict",
            "--texts",
            s(&new_items),
            "--model",
            s(&model),
            "--per",
            "pool",
            "--out",
            s(&out),
        ],
    );
    ok(&o);
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["item"], "n1");
    let pool_a = |line: &Value| distribution(&line["per_pool"]["a"])["1"];
    assert!(pool_a(&lines[0]) > pool_a(&lines[1]) + 0.2, "{lines:?}");
    let o = arbiter_in(
        &dir,
        &[
            "perspectives",
            "predict",
            "--model",
            s(&model),
            "--out",
            s(&out),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--texts"), "{}", stderr(&o));

    let out_dir = dir.path("report");
    let mut eval = vec!["perspectives", "eval"];
    eval.extend(common);
    eval.extend([
        "--pool",
        "pool",
        "--seeds",
        "2",
        "--bootstrap",
        "20",
        "--quick",
        "--format",
        "json",
        "--out",
        s(&out_dir),
    ]);
    let o = arbiter_in(&dir, &eval);
    ok(&o);
    let report: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&o)));
    check_contract(&report);
    assert_eq!(report["dataset"], "ratings");
    assert_eq!(report["n_annotators"], 4);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(written, report);
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(!md.trim().is_empty());
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        html.contains("<html") || html.contains("<!DOCTYPE"),
        "{html:.200}"
    );

    // The same seed gives the same report.
    let again = arbiter_in(&dir, &eval);
    ok(&again);
    assert_eq!(stdout(&again), stdout(&o));

    // A dev split this small gives way to folds over train + dev, unless asked not to; the
    // paired difference from the soft-label model comes with every other model.
    assert_eq!(
        report["selection"]["method"], "cross-validation",
        "{report}"
    );
    assert_eq!(report["selection"]["folds"], 5);
    for m in report["models"].as_array().unwrap() {
        let paired = &m["soft_ce_vs_soft_label"];
        if m["model"] == "soft-label" {
            assert!(paired.is_null());
        } else {
            let value = paired["value"].as_f64().unwrap();
            let [lo, hi] = [0, 1].map(|i| paired["ci"][i].as_f64().unwrap());
            assert!(lo <= value && value <= hi, "{paired}");
        }
    }
    let mut dev_only = eval.clone();
    dev_only.retain(|a| *a != "--out" && *a != s(&out_dir));
    dev_only.extend(["--cv-folds", "0"]);
    let o = arbiter_in(&dir, &dev_only);
    ok(&o);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["selection"]["method"], "dev-split", "{report}");
}

#[test]
fn bad_input_is_named_and_exits_2() {
    let dir = Dir::new("persp-bad");
    let ratings = dir.write("ratings.csv", &ratings_csv());
    let model = dir.path("model.json");
    let run = |args: &[&str]| {
        let o = arbiter_in(&dir, args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        stderr(&o)
    };

    let err = run(&[
        "perspectives",
        "train",
        s(&ratings),
        "--text",
        "body",
        "--features",
        "ngrams",
        "--out",
        s(&model),
    ]);
    assert!(
        err.contains("ratings.csv") && err.contains("\"body\""),
        "{err}"
    );

    let err = run(&[
        "perspectives",
        "train",
        s(&ratings),
        "--features",
        "ngrams",
        "--out",
        s(&model),
    ]);
    assert!(err.contains("--text") && err.contains("--texts"), "{err}");

    // An item whose text is missing everywhere is named.
    let texts = dir.write("texts.csv", "item,text\ni0,hello\n");
    let err = run(&[
        "perspectives",
        "train",
        s(&ratings),
        "--texts",
        s(&texts),
        "--features",
        "ngrams",
        "--out",
        s(&model),
    ]);
    assert!(err.contains("no text") && err.contains("i1"), "{err}");

    let err = run(&[
        "perspectives",
        "train",
        s(&ratings),
        "--text",
        "text",
        "--model-dir",
        "/nonexistent/arbiter-model",
        "--out",
        s(&model),
    ]);
    assert!(err.contains("scripts/setup-models.sh"), "{err}");
    assert!(!model.exists(), "no model file after a failure");

    let broken = dir.write("broken.json", "{\"spec\": 1}");
    let err = run(&[
        "perspectives",
        "predict",
        s(&ratings),
        "--text",
        "text",
        "--model",
        s(&broken),
        "--out",
        s(&dir.path("p.jsonl")),
    ]);
    assert!(err.contains("broken.json"), "{err}");
    assert!(!dir.path("p.jsonl").exists());

    let err = run(&[
        "perspectives",
        "train",
        s(&ratings),
        "--text",
        "text",
        "--features",
        "ngrams",
        "--components",
        "8,0",
        "--out",
        s(&model),
    ]);
    assert!(err.contains("principal component"), "{err}");
    assert!(!model.exists(), "no model file after a failure");

    let err = run(&[
        "perspectives",
        "train",
        s(&ratings),
        "--text",
        "text",
        "--features",
        "ngrams",
        "--selection-unseen-share",
        "1.5",
        "--out",
        s(&model),
    ]);
    assert!(err.contains("new annotators (1.5)"), "{err}");
    assert!(!model.exists(), "no model file after a failure");

    let err = run(&[
        "perspectives",
        "eval",
        "--dataset",
        "lewidi:Nope",
        "--format",
        "json",
    ]);
    assert!(err.contains("HS-Brexit"), "{err}");
}

fn model_dir_or_skip() -> Option<PathBuf> {
    let dir = arbiter_graders::embedded::model::default_model_dir();
    arbiter_testkit::model_installed(&dir).then_some(dir)
}

#[test]
fn lewidi_hs_brexit_interface_with_minilm() {
    // The set's own directory decides: an empty ARBITER_DATA (a fresh clone) must skip.
    let Some(lewidi) = arbiter_testkit::shared_data("annotation/lewidi2023") else {
        return;
    };
    let data = lewidi
        .parent()
        .and_then(|p| p.parent())
        .expect("annotation/lewidi2023 sits two levels under the data root")
        .to_path_buf();
    let Some(model_dir) = model_dir_or_skip() else {
        return;
    };
    let dir = Dir::new("persp-hs-brexit");
    let o = arbiter_in(
        &dir,
        &[
            "perspectives",
            "eval",
            "--dataset",
            "lewidi:HS-Brexit",
            "--split",
            "official",
            "--data-dir",
            s(&data),
            "--model-dir",
            s(&model_dir),
            "--seeds",
            "1",
            "--bootstrap",
            "50",
            "--quick",
            "--format",
            "json",
        ],
    );
    ok(&o);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    check_contract(&report);
    assert_eq!(report["n_annotators"], 6);
    // annotation.md §10: floors computed from the shared test file.
    let prior = report["baselines"]["prior_ce"].as_f64().unwrap();
    assert!((prior - 0.388).abs() < 0.001, "prior CE {prior}");
    let majority = report["baselines"]["majority_f1"].as_f64().unwrap();
    assert!((majority - 0.893).abs() < 0.001, "majority F1 {majority}");
    assert!(
        report["soft_ce"].as_f64().unwrap() < std::f64::consts::LN_2,
        "{report}"
    );
}

#[test]
fn multipico_interface_with_ngrams() {
    let Some(data) = arbiter_testkit::shared_data("annotation/multipico") else {
        return;
    };
    let dir = Dir::new("persp-multipico");
    let o = arbiter_in(
        &dir,
        &[
            "perspectives",
            "eval",
            "--dataset",
            "multipico",
            s(&data),
            "--features",
            "ngrams",
            "--seeds",
            "1",
            "--bootstrap",
            "20",
            "--quick",
            "--format",
            "json",
        ],
    );
    ok(&o);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    check_contract(&report);
    let manhattan = report["manhattan"].as_f64().expect("manhattan");
    assert!((0.0..=2.0).contains(&manhattan));
    let err = report["per_annotator_error_rate"]
        .as_f64()
        .expect("per_annotator_error_rate");
    assert!((0.0..=1.0).contains(&err));
}

#[test]
fn texts_file_with_official_splits() {
    let dir = Dir::new("persp-texts-file");
    let ratings = dir.write("ratings.csv", &ratings_csv());
    let mut texts = String::new();
    for i in 0..48 {
        let split = match i % 6 {
            0 => "test",
            1 => "dev",
            _ => "train",
        };
        let body = format!(
            "{} {} item {i}",
            if i % 2 == 0 { "awful" } else { "lovely" },
            if i % 3 == 0 { "storm" } else { "sunshine" }
        );
        texts.push_str(
            &serde_json::json!({"id": format!("i{i}"), "doc": {"body": body}, "split": split})
                .to_string(),
        );
        texts.push('\n');
    }
    let texts = dir.write("texts.jsonl", &texts);
    let o = arbiter_in(
        &dir,
        &[
            "perspectives",
            "eval",
            s(&ratings),
            "--texts",
            s(&texts),
            "--texts-item",
            "id",
            "--texts-text",
            "doc.body",
            "--split-column",
            "split",
            "--features",
            "ngrams",
            "--ngram-buckets",
            "256",
            "--seeds",
            "1",
            "--bootstrap",
            "0",
            "--quick",
            "--format",
            "json",
        ],
    );
    ok(&o);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    check_contract(&report);
    assert_eq!(report["split"]["mode"], "official", "{}", report["split"]);
    assert_eq!(
        report["split_sizes"],
        serde_json::json!({"train": 32, "dev": 8, "test": 8})
    );

    // A split that is not train, dev or test is named.
    let bad = dir.write(
        "bad.jsonl",
        &std::fs::read_to_string(&texts).unwrap().replacen(
            "\"split\":\"dev\"",
            "\"split\":\"holdout\"",
            1,
        ),
    );
    let o = arbiter_in(
        &dir,
        &[
            "perspectives",
            "eval",
            s(&ratings),
            "--texts",
            s(&bad),
            "--texts-item",
            "id",
            "--texts-text",
            "doc.body",
            "--split-column",
            "split",
            "--features",
            "ngrams",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"holdout\""), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}
