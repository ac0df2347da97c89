//! End-to-end tests of `arbiter agreement`, `aggregate` and `disagreement` (the Interface of
//! issue 4), running the real binary in temporary directories.

use std::process::{Command, Output};

use serde_json::Value;

use arbiter_testkit::TempDir as Dir;

fn arbiter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .output()
        .unwrap()
}

/// The Wikipedia reliability example as a long CSV with a pool column (raters A, B vs C).
fn wikipedia_csv() -> String {
    let lines = [
        ("A", "* * * * * 3 4 1 2 1 1 3 3 * 3"),
        ("B", "1 * 2 1 3 3 4 3 * * * * * * *"),
        ("C", "* * 2 1 3 4 4 * 2 1 1 3 3 * 4"),
    ];
    let mut csv = String::from("unit,coder,value,pool\n");
    for (rater, line) in lines {
        for (u, v) in line.split(' ').enumerate() {
            if v != "*" {
                let pool = if rater == "C" { "p2" } else { "p1" };
                csv.push_str(&format!("u{u},{rater},{v},{pool}\n"));
            }
        }
    }
    csv
}

#[test]
fn agreement_json_matches_the_interface_and_the_published_values() {
    let dir = Dir::new("agreement");
    let file = dir.write("w.csv", &wikipedia_csv()).display().to_string();
    for (level, want) in [
        ("nominal", 0.691358),
        ("ordinal", 0.806721),
        ("interval", 0.810845),
        ("ratio", 0.808944),
    ] {
        let out = arbiter(&[
            "agreement",
            "--level",
            level,
            "--format",
            "json",
            "--item",
            "unit",
            "--rater",
            "coder",
            "--label",
            "value",
            &file,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            (v["alpha"].as_f64().unwrap() - want).abs() < 5e-7,
            "{level}: {v}"
        );
        assert_eq!(v["level"], level);
        assert_eq!(v["n_items"], 13);
        assert_eq!(v["n_raters"], 3);
        assert_eq!(v["n_ratings"], 27);
    }
    let out = arbiter(&[
        "agreement",
        "--level",
        "nominal",
        "--format",
        "json",
        "--item",
        "unit",
        "--rater",
        "coder",
        "--label",
        "value",
        "--group",
        "pool",
        &file,
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["groups"]["p1"]["alpha"].is_f64(), "{v}");
    // Pool p2 is one rater: no unit has two values, so α is undefined and says why.
    assert!(v["groups"]["p2"]["alpha"].is_null(), "{v}");
    assert_eq!(v["groups"]["p2"]["undefined"], "no_pairable_units");
}

#[test]
fn aggregate_writes_item_label_and_posteriors() {
    let dir = Dir::new("aggregate");
    let file = dir
        .write(
            "r.csv",
            "item,rater,label\na,x,1\na,y,1\na,z,0\nb,x,0\nb,y,0\nb,z,1\n",
        )
        .display()
        .to_string();
    for method in ["mv", "wawa", "zbs", "ds", "onecoin-ds", "glad", "mace"] {
        let out_path = dir.path(&format!("{method}.csv")).display().to_string();
        let out = arbiter(&["aggregate", "--method", method, &file, "--out", &out_path]);
        assert!(
            out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&out_path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "item,label,p_0,p_1", "{method}");
        assert!(lines[1].starts_with("a,1,"), "{method}: {text}");
        assert!(lines[2].starts_with("b,0,"), "{method}: {text}");
    }
    let out = arbiter(&["aggregate", "--method", "nope", &file]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_rows_are_reported_with_file_and_line_and_strict_fails() {
    let dir = Dir::new("bad");
    let file = dir
        .write("r.csv", "item,rater,label\na,x,1\na,y,\nb,x,0\n")
        .display()
        .to_string();
    let out = arbiter(&["agreement", "--format", "json", &file]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("r.csv: line 3: label: empty value"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n_skipped_rows"], 1);
    let out = arbiter(&["agreement", "--strict", &file]);
    assert_eq!(out.status.code(), Some(2));
    let out = arbiter(&["agreement", "--item", "nope", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no column \"nope\""));
}

#[test]
fn disagreement_writes_markdown_html_and_json() {
    let dir = Dir::new("disagreement");
    let file = dir.write("w.csv", &wikipedia_csv()).display().to_string();
    let out_dir = dir.path("report").display().to_string();
    let out = arbiter(&[
        "disagreement",
        "--item",
        "unit",
        "--rater",
        "coder",
        "--label",
        "value",
        "--group",
        "pool",
        "--bootstrap",
        "50",
        "--out",
        &out_dir,
        &file,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(format!("{out_dir}/report.md")).unwrap();
    assert!(md.contains("| (pooled) | 0.6914 |"), "{md}");
    let html = std::fs::read_to_string(format!("{out_dir}/report.html")).unwrap();
    assert!(
        html.contains("<svg") && !html.contains("<script"),
        "self-contained HTML with inline SVG"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{out_dir}/report.json")).unwrap())
            .unwrap();
    assert!((json["alpha"]["pooled"].as_f64().unwrap() - 0.691358).abs() < 5e-7);
    assert_eq!(json["soft_labels"].as_array().unwrap().len(), 13);
    // Both pools have fewer than 5 raters: named, and left out of every per-group statistic.
    assert_eq!(
        json["groups_left_out"].as_array().unwrap().len(),
        2,
        "{json}"
    );
    assert!(json["alpha"]["within"].as_array().unwrap().is_empty());
    assert!(
        md.contains("Groups with fewer than 5 raters are left out"),
        "{md}"
    );
}

/// Every per-group statistic needs at least 5 raters in the group: a 1-rater group is left out
/// and named; a group whose ratings are all the positive label shows "separation", not an
/// interval; the logistic regression names its reference group; two --group flags are refused
/// instead of silently using the first.
#[test]
fn disagreement_keeps_small_groups_out_and_says_separation() {
    let dir = Dir::new("disagreement-groups");
    let mut csv = String::from("item,rater,label,pool,age\n");
    for item in 0..12 {
        for r in 0..6 {
            // Pool A: mixed labels.
            let label = (item + r) % 2;
            csv += &format!("i{item},a{r},{label},A,30\n");
        }
        for r in 0..5 {
            // Pool B: always 1 (separated).
            csv += &format!("i{item},b{r},1,B,40\n");
        }
        // Pool C: one rater.
        csv += &format!("i{item},c0,0,C,50\n");
    }
    let file = dir.write("g.csv", &csv).display().to_string();
    let out_dir = dir.path("report").display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "disagreement",
            "--group",
            "pool",
            "--bootstrap",
            "30",
            "--out",
            &out_dir,
        ];
        args.extend_from_slice(extra);
        args.push(&file);
        arbiter(&args)
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(format!("{out_dir}/report.md")).unwrap();
    assert!(
        md.contains("(pooled α keeps all raters): C (1 rater)"),
        "{md}"
    );
    assert!(!md.contains("| C |"), "{md}");
    assert!(md.contains("intercept (reference: A)"), "{md}");
    assert!(md.contains("| B | separation |"), "{md}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{out_dir}/report.json")).unwrap())
            .unwrap();
    assert_eq!(json["groups_left_out"][0]["group"], "C");
    let within = json["alpha"]["within"].as_array().unwrap();
    assert_eq!(within.len(), 2, "{json}");
    assert!(
        json["most_dividing_items"]
            .to_string()
            .find("\"C\"")
            .is_none()
    );
    // Two group columns: refused, naming both.
    let out = run(&["--group", "age"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--group pool --group age"), "{err}");
}
