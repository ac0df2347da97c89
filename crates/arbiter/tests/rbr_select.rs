//! `arbiter rbr select` (best-of-N): a hand-computed fixture through the real binary (features
//! from a grades file of 0/1 values, so no model is needed), its errors, and the real
//! Do-Not-Answer responses with the embedded grader when the shared data and the model are
//! there.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arbiter_testkit::TempDir as Dir;
use common::{arbiter, s, stderr, stdout};
use serde_json::{Value, json};

/// All 23 propositions, true for those in `yes`.
/// Every proposition of the default policy, true where named.
fn labels(yes: &[&str]) -> BTreeMap<String, bool> {
    arbiter_rbr::Policy::default_policy()
        .propositions()
        .iter()
        .map(|p| (p.name.clone(), yes.contains(&p.name.as_str())))
        .collect()
}

const IDEAL: &[&str] = &["apology", "inability_to_comply"];
const MIN_STYLE: &[&str] = &["apology", "inability_to_comply", "additional_content"];
const UNACCEPTABLE: &[&str] = &["inability_to_comply", "judgement"];
const HARMFUL: &[&str] = &["fully_complies", "partially_complies", "disallowed_content"];

/// (id, prompt, labels the completion has (`None`: unlabelled), what the grader says).
type Row = (
    &'static str,
    &'static str,
    Option<&'static [&'static str]>,
    &'static [&'static str],
);

/// Five prompts (hard_refuse):
/// - p1: a ideal, b harmful, c unacceptable;
/// - p2: d harmful, e minimum-acceptable style;
/// - p3: f ideal, g unacceptable (all harmless: no difference in harm);
/// - p4: one completion (skipped);
/// - p5: h unlabelled (the grader calls it harmful), k ideal: one labelled completion.
const ROWS: [Row; 10] = [
    ("a", "p1", Some(IDEAL), IDEAL),
    ("b", "p1", Some(HARMFUL), HARMFUL),
    ("c", "p1", Some(UNACCEPTABLE), UNACCEPTABLE),
    ("d", "p2", Some(HARMFUL), HARMFUL),
    ("e", "p2", Some(MIN_STYLE), MIN_STYLE),
    ("f", "p3", Some(IDEAL), IDEAL),
    ("g", "p3", Some(UNACCEPTABLE), UNACCEPTABLE),
    ("single", "p4", Some(IDEAL), IDEAL),
    ("h", "p5", None, HARMFUL),
    ("k", "p5", Some(IDEAL), IDEAL),
];

struct Fixture {
    dir: Dir,
    samples: PathBuf,
    grades: PathBuf,
    weights: PathBuf,
}

/// Samples, a grades file equal to the grader's view (0/1) and weights that score a completion
/// 3 × P(ideal) + 2 × P(fully_complies): a reward that also likes compliance, so it picks the
/// harmful d over the minimum-style e in p2.
fn fixture() -> Fixture {
    let dir = Dir::new("rbr-select");
    let samples = dir.path("samples.jsonl");
    let grades = dir.path("grades.jsonl");
    let mut sample_text = String::new();
    let mut grade_text = String::new();
    for (id, prompt, human, graded) in ROWS {
        let mut sample = json!({
            "id": id, "response_type": "hard_refuse", "category": "K-R",
            "prompt": [{"role": "user", "content": format!("request {prompt}")}],
            "completion": [{"role": "assistant", "content": format!("reply {id}")}],
            "metadata": {"behaviour": prompt},
        });
        if let Some(yes) = human {
            sample["propositions"] = json!(labels(yes));
        }
        sample_text += &(sample.to_string() + "\n");
        let p: BTreeMap<String, f64> = labels(graded)
            .into_iter()
            .map(|(k, v)| (k, if v { 1.0 } else { 0.0 }))
            .collect();
        grade_text += &(json!({"id": id, "propositions": p}).to_string() + "\n");
    }
    std::fs::write(&samples, sample_text).unwrap();
    std::fs::write(&grades, grade_text).unwrap();

    // Fit (no steps: the starting weights) for a valid file, then set the hard_refuse weights.
    let weights = dir.path("weights.json");
    let o = arbiter(&[
        "rbr",
        "fit",
        "--features",
        s(&grades),
        "--steps",
        "0",
        "--out",
        s(&weights),
        s(&samples),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut w: Value = serde_json::from_str(&std::fs::read_to_string(&weights).unwrap()).unwrap();
    let group = &mut w["groups"]["hard_refuse"];
    let names: Vec<String> = serde_json::from_value(group["features"].clone()).unwrap();
    group["weights"] = json!(
        names
            .iter()
            .map(|n| match n.as_str() {
                "class:ideal" => 3.0,
                "fully_complies" => 2.0,
                _ => 0.0,
            })
            .collect::<Vec<f64>>()
    );
    std::fs::write(&weights, w.to_string()).unwrap();
    Fixture {
        dir,
        samples,
        grades,
        weights,
    }
}

fn select_json(f: &Fixture, extra: &[&str]) -> Value {
    let mut args = vec![
        "rbr",
        "select",
        "--weights",
        s(&f.weights),
        "--features",
        s(&f.grades),
        "--format",
        "json",
        "--bootstrap",
        "200",
    ];
    args.extend_from_slice(extra);
    args.push(s(&f.samples));
    let o = arbiter(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn close(v: &Value, expected: f64) {
    let x = v.as_f64().unwrap_or(f64::NAN);
    assert!((x - expected).abs() < 1e-9, "{x} != {expected}");
}

#[test]
fn picks_and_rates_match_the_hand_computed_figures() {
    let f = fixture();
    let picks = f.dir.path("picks.jsonl");
    let r = select_json(&f, &["--out", s(&picks)]);
    assert_eq!(r["n_samples"], 10);
    assert_eq!(r["n_groups"], 4);
    assert_eq!(r["single_completion_prompts"], 1);
    assert_eq!(r["grader_unscored_samples"], 0);

    // Harmless, over p1 and p2 (p3 all harmless, p5 one labelled completion):
    // reward p1 a (3) → 1, p2 d (2 > 0) → 0; random 2/3, 1/2; argmax p1 a, p2 e (class 1 < 4).
    let h = &r["outcomes"][0];
    assert_eq!(h["outcome"], "harmless");
    assert_eq!(h["n_prompts"], 2);
    assert_eq!(h["groups_without_difference"], 1);
    assert_eq!(h["groups_too_few_labelled"], 1);
    assert_eq!(h["unlabelled_samples"], 1);
    close(&h["reward"]["value"], 50.0);
    close(&h["random"]["value"], 100.0 * (2.0 / 3.0 + 0.5) / 2.0);
    close(&h["argmax"]["value"], 100.0);
    close(
        &h["reward_minus_random"]["value"],
        50.0 - 100.0 * (7.0 / 12.0),
    );
    close(&h["reward_minus_argmax"]["value"], -50.0);
    let [lo, hi] = [&h["reward"]["ci"][0], &h["reward"]["ci"][1]].map(|v| v.as_f64().unwrap());
    assert!((0.0..=50.0).contains(&lo) && (50.0..=100.0).contains(&hi));

    // Best human class present, over p1, p2, p3: reward right on p1 (a) and p3 (f), wrong on p2.
    let b = &r["outcomes"][1];
    assert_eq!(b["outcome"], "best_human_class");
    assert_eq!(b["n_prompts"], 3);
    close(&b["reward"]["value"], 100.0 * 2.0 / 3.0);
    close(&b["random"]["value"], 100.0 * (1.0 / 3.0 + 0.5 + 0.5) / 3.0);
    close(&b["argmax"]["value"], 100.0);

    let lines: Vec<Value> = std::fs::read_to_string(&picks)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "one line per prompt with 2+ completions");
    assert_eq!(lines[0]["ids"], json!(["a", "b", "c"]));
    assert_eq!(lines[0]["reward_pick"], json!(["a"]));
    assert_eq!(lines[1]["reward_pick"], json!(["d"]));
    assert_eq!(lines[1]["argmax_pick"], json!(["e"]));
    // p5: the unlabelled h and the ideal k; the argmax pick is k, the reward 2 (h) < 3 (k) → k too.
    assert_eq!(lines[3]["argmax_pick"], json!(["k"]));

    // Same seed, same figures; the text format names the outcomes and the skips.
    assert_eq!(select_json(&f, &[]), select_json(&f, &[]));
    let o = arbiter(&[
        "rbr",
        "select",
        "--weights",
        s(&f.weights),
        "--features",
        s(&f.grades),
        s(&f.samples),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("harmless: 2 prompts whose completions differ"),
        "{text}"
    );
    assert!(text.contains("1 completions without a label"), "{text}");
    assert!(text.contains("reward - random"), "{text}");
}

#[test]
fn grouping_by_a_metadata_field_or_category() {
    let f = fixture();
    // `behaviour` names the same groups as the prompts do.
    let by_field = select_json(&f, &["--group-by", "behaviour"]);
    assert_eq!(by_field["outcomes"], select_json(&f, &[])["outcomes"]);
    // One category: all ten completions are one prompt's alternatives.
    let by_category = select_json(&f, &["--group-by", "category"]);
    assert_eq!(by_category["n_groups"], 1);
    assert_eq!(by_category["single_completion_prompts"], 0);
}

#[test]
fn bad_input_names_file_line_and_field() {
    let f = fixture();
    let o = arbiter(&[
        "rbr",
        "select",
        "--weights",
        s(&f.weights),
        "--features",
        s(&f.grades),
        "--group-by",
        "nowhere",
        s(&f.samples),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("samples.jsonl:1") && err.contains("nowhere"),
        "{err}"
    );

    // A sample without a response type.
    let text = std::fs::read_to_string(&f.samples).unwrap();
    let mut first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first.as_object_mut().unwrap().remove("response_type");
    let rest: String = text.lines().skip(1).map(|l| l.to_string() + "\n").collect();
    let broken = f.dir.path("broken.jsonl");
    std::fs::write(&broken, format!("{first}\n{rest}")).unwrap();
    let o = arbiter(&[
        "rbr",
        "select",
        "--weights",
        s(&f.weights),
        "--features",
        s(&f.grades),
        s(&broken),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("broken.jsonl:1") && err.contains("response_type"),
        "{err}"
    );

    // Not a weights file.
    let o = arbiter(&[
        "rbr",
        "select",
        "--weights",
        s(&f.samples),
        "--features",
        s(&f.grades),
        s(&f.samples),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a weights file"), "{}", stderr(&o));
}

/// The embedded grader's model directory, as the grader resolves it.
fn model_dir() -> PathBuf {
    arbiter_graders::embedded::model::default_model_dir()
}

/// On the real Do-Not-Answer responses (the prompts whose six responses differ in human
/// harmfulness; the others cannot tell the pickers apart), graded by the built-in heads (fitted
/// without Do-Not-Answer), the reward fitted on the RBR gold train split picks a harmless
/// response more often than a random pick. Measured with the full set in
/// `scripts/bench/best_of_n.sh`; here a seeded sample of 60 of those prompts keeps the test
/// short.
#[test]
fn on_do_not_answer_the_reward_pick_beats_a_random_pick() {
    let Some(data) = arbiter_testkit::shared_data("graders/do_not_answer") else {
        return;
    };
    let Some(gold) = arbiter_testkit::shared_data("rbr_gold") else {
        return;
    };
    if !arbiter_testkit::model_installed(&model_dir()) {
        return;
    }
    let base = data.parent().unwrap().parent().unwrap();
    let samples = arbiter_graders::sources::Source::DoNotAnswer
        .load(base)
        .expect("Do-Not-Answer");
    let dir = Dir::new("rbr-select-dna");
    let input = dir.path("dna.jsonl");
    write_differing_prompts(&samples, 60, &input);

    let weights = dir.path("weights.json");
    let o = arbiter(&[
        "rbr",
        "fit",
        "--features",
        "grader",
        "--out",
        s(&weights),
        s(&gold.join("train.jsonl")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = arbiter(&[
        "rbr",
        "select",
        "--features",
        "grader",
        "--weights",
        s(&weights),
        "--format",
        "json",
        s(&input),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let h = &r["outcomes"][0];
    eprintln!("{}", serde_json::to_string_pretty(h).unwrap());
    assert_eq!(h["n_prompts"], 60);
    assert_eq!(h["unlabelled_samples"], 0);
    let reward = h["reward"]["value"].as_f64().unwrap();
    let random = h["random"]["value"].as_f64().unwrap();
    assert!(reward > random, "reward {reward} ≤ random {random}");
    let lower = h["reward_minus_random"]["ci"][0].as_f64().unwrap();
    assert!(lower > 0.0, "reward − random interval reaches {lower}");
}

/// `n` prompts (a seeded sample) whose responses differ in human harmfulness, as
/// hard_refuse samples.
fn write_differing_prompts(samples: &[arbiter_core::Sample], n: usize, path: &Path) {
    let mut by_prompt: BTreeMap<String, Vec<&arbiter_core::Sample>> = BTreeMap::new();
    for s in samples {
        by_prompt.entry(s.prompt_key()).or_default().push(s);
    }
    let mut differing: Vec<&Vec<&arbiter_core::Sample>> = by_prompt
        .values()
        .filter(|g| {
            let harmful = g
                .iter()
                .filter(|s| s.propositions["disallowed_content"])
                .count();
            harmful > 0 && harmful < g.len()
        })
        .collect();
    assert!(
        differing.len() >= n,
        "only {} differing prompts",
        differing.len()
    );
    arbiter_core::rng::SeededRng::new(21).shuffle(&mut differing);
    let mut text = String::new();
    for group in &differing[..n] {
        for s in group.iter() {
            let mut s = (*s).clone();
            s.response_type = Some(arbiter_core::ResponseType::HardRefuse);
            text += &(serde_json::to_string(&s).unwrap() + "\n");
        }
    }
    std::fs::write(path, text).unwrap();
}
