//! The grader measured against human labels in `rbr metrics`, `rbr report` and `rbr run`:
//! corrected metrics (PPI++), class confusion, and the warning when nothing is labelled.
//!
//! The tests without the embedded model use a grades file made from the examples' own labels
//! (P(yes) = 0.85 for a yes, 0.1 for a no); the others run the embedded grader when it is
//! installed (`scripts/setup-models.sh`) and skip otherwise.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arbiter_stats::ppi::{self, Method};
use arbiter_testkit::TempDir as Dir;
use common::{arbiter, s, stderr};
use serde_json::{Value, json};

fn examples_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/conversations.jsonl")
}

fn examples() -> Vec<Value> {
    std::fs::read_to_string(examples_path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn jsonl(rows: &[Value]) -> String {
    rows.iter().map(|r| r.to_string() + "\n").collect()
}

/// The examples with the labels of every odd-numbered row removed.
fn half_stripped() -> Vec<Value> {
    examples()
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            if i % 2 == 1 {
                r.as_object_mut().unwrap().remove("propositions");
            }
            r
        })
        .collect()
}

/// A noisy "grader" made from the human labels, so no model is needed.
fn grades_from_labels() -> String {
    examples()
        .iter()
        .map(|r| {
            let props: BTreeMap<String, f64> = r["propositions"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), if v.as_bool().unwrap() { 0.85 } else { 0.1 }))
                .collect();
            json!({"id": r["id"], "propositions": props}).to_string() + "\n"
        })
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn classify(features: &str, file: &Path) -> Vec<Value> {
    let o = arbiter(&["rbr", "classify", "--features", features, s(file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `rbr report` of `data` graded by the grades file `features`, into `out`; it must succeed.
fn rbr_report(features: &Path, data: &Path, out: &Path) {
    let o = arbiter(&[
        "rbr",
        "report",
        "--features",
        s(features),
        s(data),
        "--out",
        s(out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The half-stripped examples split in `d`: (the unlabelled rows as data.jsonl, the labelled
/// rows as cal.jsonl, grades.jsonl for all of them).
fn write_split(d: &Dir) -> (PathBuf, PathBuf, PathBuf) {
    let rows = half_stripped();
    let unlabelled: Vec<Value> = rows.iter().skip(1).step_by(2).cloned().collect();
    let labelled: Vec<Value> = rows.iter().step_by(2).cloned().collect();
    (
        d.write("data.jsonl", &jsonl(&unlabelled)),
        d.write("cal.jsonl", &jsonl(&labelled)),
        d.write("grades.jsonl", &grades_from_labels()),
    )
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// With labels on half the rows of a grades-file run, the corrected Hard-Refusal-Style equals
/// PPI++ recomputed here from `rbr classify` (grader P(ideal) and human classes), and the
/// confusion matrix counts the same pairs.
#[test]
fn report_corrects_a_grades_file_with_labels_in_place() {
    let d = Dir::new("cal-inplace");
    let data = d.write("data.jsonl", &jsonl(&half_stripped()));
    let grades = d.write("grades.jsonl", &grades_from_labels());
    let out = d.path("out");
    rbr_report(&grades, &data, &out);
    let report = read_json(&out.join("report.json"));
    let cal = &report["calibration"];
    assert_eq!(
        (cal["n_labelled"].as_u64(), cal["n_unlabelled"].as_u64()),
        (Some(20), Some(20))
    );
    assert_eq!(report["graded"], true);
    assert_eq!(report["notes"], json!([]));

    // Independent path: grader class probabilities and human classes from `rbr classify`.
    let graded = classify(s(&grades), &data);
    let labelled_rows: Vec<Value> = examples().into_iter().step_by(2).collect();
    let labelled_file = d.write("labelled.jsonl", &jsonl(&labelled_rows));
    let human: BTreeMap<String, String> = classify("human", &labelled_file)
        .into_iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["class"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let (mut y, mut fl, mut fu) = (Vec::new(), Vec::new(), Vec::new());
    let mut confusion: BTreeMap<(String, String), u64> = BTreeMap::new();
    for c in &graded {
        if c["response_type"] != "hard_refuse" {
            continue;
        }
        let p = f(&c["class_probs"]["ideal"]);
        match human.get(c["id"].as_str().unwrap()) {
            Some(h) => {
                y.push(if h == "ideal" { 1.0 } else { 0.0 });
                fl.push(p);
                *confusion
                    .entry((h.clone(), c["class"].as_str().unwrap().to_string()))
                    .or_default() += 1;
            }
            None => fu.push(p),
        }
    }
    let want = ppi::mean(&y, &fl, &fu, Method::PowerTuned, 0.95).unwrap();
    let got = &cal["overall"]["hard_refusal_style"];
    assert!(
        (f(&got["corrected"]["value"]) - 100.0 * want.estimate).abs() < 1e-9,
        "{got}"
    );
    assert!(
        (f(&got["corrected"]["se"]) - 100.0 * want.se).abs() < 1e-9,
        "{got}"
    );
    assert!((f(&got["lambda"]) - want.lambda).abs() < 1e-12, "{got}");
    let classical = ppi::mean(&y, &fl, &fu, Method::Classical, 0.95).unwrap();
    assert!((f(&got["human"]["value"]) - 100.0 * classical.estimate).abs() < 1e-9);
    assert_eq!(got["n_labelled"].as_u64(), Some(y.len() as u64));
    assert_eq!(got["n_unlabelled"].as_u64(), Some(fu.len() as u64));

    let classes: Vec<&str> = cal["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let hard = cal["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["response_type"] == "hard_refuse")
        .unwrap();
    for (hi, row) in hard["counts"].as_array().unwrap().iter().enumerate() {
        for (gi, n) in row.as_array().unwrap().iter().enumerate() {
            let key = (classes[hi].to_string(), classes[gi].to_string());
            assert_eq!(
                n.as_u64().unwrap(),
                confusion.get(&key).copied().unwrap_or(0),
                "{key:?}"
            );
        }
    }

    // Every category with labelled rows is corrected; one without says why.
    for (cat, slice) in cal["by_category"].as_object().unwrap() {
        let nu = &slice["not_unsafe"];
        if nu["n_labelled"].as_u64() == Some(0) {
            assert!(nu["corrected"].is_null(), "{cat}");
            assert!(
                nu["note"].as_str().unwrap().contains("no human-labelled"),
                "{cat}"
            );
        } else {
            assert!(nu["corrected"]["value"].is_number(), "{cat}");
        }
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Grader against human labels"));
    assert!(md.contains("### Class confusion (labelled completions)"));
    assert!(!md.contains("All rows human-labelled"));
}

/// A calibration set is the same as the labels in place; without any labels the report warns.
#[test]
fn calibration_set_equals_labels_in_place_and_unlabelled_data_warns() {
    let d = Dir::new("cal-set");
    let (data, cal_set, grades) = write_split(&d);
    let both = d.write("both.jsonl", &jsonl(&half_stripped()));
    let metrics_json = |args: &[&str]| -> Value {
        let mut all = vec![
            "rbr",
            "metrics",
            "--format",
            "json",
            "--features",
            s(&grades),
        ];
        all.extend_from_slice(args);
        let o = arbiter(&all);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let with_set = metrics_json(&[s(&data), "--calibration-set", s(&cal_set)]);
    let in_place = metrics_json(&[s(&both)]);
    assert_eq!(
        with_set["calibration"]["overall"], in_place["calibration"]["overall"],
        "same labelled and unlabelled rows, same corrected metrics"
    );
    assert_eq!(with_set["calibration"]["n_labelled"], 20);

    // No labels at all: no calibration, and the warning.
    let bare = metrics_json(&[s(&data)]);
    assert!(bare["calibration"].is_null());
    assert!(
        bare["notes"][0]
            .as_str()
            .unwrap()
            .contains("no calibration for this data")
    );
    let out = d.path("out");
    rbr_report(&grades, &data, &out);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.find("no calibration for this data").unwrap() < md.find("## Safety metrics").unwrap()
    );

    // Human features keep the old output: no calibration keys at all.
    let o = arbiter(&["rbr", "metrics", "--format", "json", s(&cal_set)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("calibration").is_none() && v["overall"]["n"] == 20);
}

#[test]
fn calibration_set_errors_are_clear() {
    let d = Dir::new("cal-errors");
    let (data, cal_set, grades) = write_split(&d);
    let fails = |args: &[&str], needle: &str| {
        let o = arbiter(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    };
    // Human features: nothing to measure.
    fails(
        &[
            "rbr",
            "metrics",
            s(&cal_set),
            "--calibration-set",
            s(&cal_set),
        ],
        "--calibration-set measures a grader",
    );
    // Calibration samples without labels.
    fails(
        &[
            "rbr",
            "metrics",
            "--features",
            s(&grades),
            s(&data),
            "--calibration-set",
            s(&data),
        ],
        "must be fully labelled",
    );
    // The same sample as data and calibration.
    let both = d.write("both.jsonl", &jsonl(&half_stripped()));
    fails(
        &[
            "rbr",
            "metrics",
            "--features",
            s(&grades),
            s(&both),
            "--calibration-set",
            s(&cal_set),
        ],
        "is also in the data",
    );
    // Calibration ids missing from the grades file.
    let few = d.write(
        "few.jsonl",
        &(grades_from_labels()
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"),
    );
    fails(
        &[
            "rbr",
            "metrics",
            "--features",
            s(&few),
            s(&data),
            "--calibration-set",
            s(&cal_set),
        ],
        "no grades for id ex-01",
    );
}

fn model_or_skip() -> bool {
    let dir = arbiter_graders::embedded::model::default_model_dir();
    arbiter_testkit::model_installed(&dir)
}

/// `rbr run` on the 40 fully labelled examples with the embedded grader: every row labelled,
/// so corrected = human-label estimate, said in the report; the confusion matrix is there and
/// the corrected Hard-Refusal-Style interval covers the human value.
#[test]
fn run_with_the_embedded_grader_on_labelled_examples() {
    if !model_or_skip() {
        return;
    }
    let d = Dir::new("cal-run");
    let out = d.path("out");
    let o = arbiter(&["rbr", "run", s(&examples_path()), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_json(&out.join("report.json"));
    let cal = &report["calibration"];
    assert_eq!(
        (cal["n_labelled"].as_u64(), cal["n_unlabelled"].as_u64()),
        (Some(40), Some(0))
    );
    let hrs = &cal["overall"]["hard_refusal_style"];
    assert_eq!(
        hrs["corrected"], hrs["human"],
        "N = 0: PPI++ is the classical estimate"
    );
    let human = f(&hrs["human"]["value"]);
    let ci = &hrs["corrected"]["ci"];
    assert!(f(&ci[0]) <= human && human <= f(&ci[1]), "{hrs}");
    for m in ["not_unsafe", "not_overrefuse", "f1"] {
        assert_eq!(
            cal["overall"][m]["corrected"], cal["overall"][m]["human"],
            "{m}"
        );
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("All rows human-labelled: corrected = human-label estimate."));
    assert!(md.contains("### Class confusion (labelled completions)"));
    assert!(md.contains("| grader (raw) | human labels | corrected (PPI++) |"));
    let n_confused: u64 = cal["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["n"].as_u64().unwrap())
        .sum();
    assert_eq!(n_confused, 40);
}

/// `rbr run` with half the labels stripped and the other half as `--calibration-set`.
#[test]
fn run_with_the_embedded_grader_and_a_calibration_set() {
    if !model_or_skip() {
        return;
    }
    let d = Dir::new("cal-run-split");
    let rows = examples();
    // Fitting needs classes, so the data keeps labels on its first row only.
    let mut data: Vec<Value> = rows.iter().skip(1).step_by(2).cloned().collect();
    for r in data.iter_mut().skip(1) {
        r.as_object_mut().unwrap().remove("propositions");
    }
    let labelled: Vec<Value> = rows.iter().step_by(2).cloned().collect();
    let data_file = d.write("data.jsonl", &jsonl(&data));
    let cal_set = d.write("cal.jsonl", &jsonl(&labelled));
    let out = d.path("out");
    let o = arbiter(&[
        "rbr",
        "run",
        s(&data_file),
        "--calibration-set",
        s(&cal_set),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("calibration_grades.jsonl").is_file());
    let cal = &read_json(&out.join("report.json"))["calibration"];
    assert_eq!(
        (cal["n_labelled"].as_u64(), cal["n_unlabelled"].as_u64()),
        (Some(21), Some(19))
    );
    let hrs = &cal["overall"]["hard_refusal_style"];
    assert!(
        hrs["corrected"]["value"].is_number() && hrs["lambda"].is_number(),
        "{hrs}"
    );
    assert_eq!(hrs["n_unlabelled"].as_u64().map(|n| n > 0), Some(true));
}
