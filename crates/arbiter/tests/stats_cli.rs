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

/// 20 raters in four pools of five, first seen in the order p10, p9, p100, p2, with ages that
/// fall in four bins (<18, 18–24, 25–34, 35+) and ordinal labels 1–3 that rise with the pool;
/// each item has a long text with Markdown and HTML specials.
fn demographics_csv(odd_age: Option<&str>) -> String {
    let ages = [
        16, 17, 15, 16, 17, 18, 20, 22, 24, 19, 25, 30, 34, 28, 26, 40, 61, 35, 50, 70,
    ];
    let pools = ["p10", "p9", "p100", "p2"];
    let mut csv = String::from("item,rater,label,age,pool,text\n");
    for item in 0..10 {
        for (r, age) in ages.iter().enumerate() {
            let g = r / 5;
            let label = 1 + g / 2 + (item + r) % 2;
            let age = match odd_age {
                Some(word) if r == 7 => word.to_string(),
                _ => age.to_string(),
            };
            let text = format!("Item {item} | <b>bold</b> {}", "long words ".repeat(10));
            csv += &format!("i{item},r{r},{label},{age},{},{text}\n", pools[g]);
        }
    }
    csv
}

fn run_report(dir: &Dir, csv: &str, extra: &[&str]) -> (Output, String, String, Value) {
    let file = dir.write("d.csv", csv).display().to_string();
    let out_dir = dir.path("report").display().to_string();
    let mut args = vec!["disagreement", "--bootstrap", "20", "--out", &out_dir];
    args.extend_from_slice(extra);
    args.push(&file);
    let out = arbiter(&args);
    let read =
        |name: &str| std::fs::read_to_string(format!("{out_dir}/{name}")).unwrap_or_default();
    let json = serde_json::from_str(&read("report.json")).unwrap_or(Value::Null);
    (out, read("report.md"), read("report.html"), json)
}

/// The row of `group` in the first table of the report (α within groups).
fn position(md: &str, group: &str) -> usize {
    md.find(&format!("\n| {group} |"))
        .unwrap_or_else(|| panic!("no row {group}: {md}"))
}

#[test]
fn disagreement_sorts_group_values_naturally() {
    let dir = Dir::new("natural");
    let (out, md, _, json) = run_report(&dir, &demographics_csv(None), &["--group", "pool"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(position(&md, "p2") < position(&md, "p9"), "{md}");
    assert!(position(&md, "p9") < position(&md, "p10"), "{md}");
    assert!(position(&md, "p10") < position(&md, "p100"), "{md}");
    let within: Vec<&str> = json["alpha"]["within"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(within, ["p2", "p9", "p10", "p100"]);
    // The logistic regression's reference is the first group in that order.
    assert!(md.contains("intercept (reference: p2)"), "{md}");
}

#[test]
fn disagreement_bins_a_numeric_column_into_half_open_intervals() {
    let dir = Dir::new("bins");
    let csv = demographics_csv(None);
    let (out, md, html, json) =
        run_report(&dir, &csv, &["--group", "age", "--bins", "age=18,25,35"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json["groups"],
        serde_json::json!(["<18", "18–24", "25–34", "35+"])
    );
    assert_eq!(json["bins"]["edges"], serde_json::json!([18.0, 25.0, 35.0]));
    assert!(position(&md, "\\<18") < position(&md, "18–24"), "{md}");
    assert!(position(&md, "18–24") < position(&md, "25–34"), "{md}");
    assert!(position(&md, "25–34") < position(&md, "35+"), "{md}");
    assert!(
        md.contains("`age` is binned at edges 18, 25, 35, as half-open intervals"),
        "{md}"
    );
    assert!(md.contains("18–24 = [18, 25)"), "{md}");
    assert!(html.contains("18–24 = [18, 25)"));
    // Quartiles over the 20 raters: five raters per bin, edges shown.
    let (out, md, _, json) = run_report(&dir, &csv, &["--group", "age", "--bins", "age=q4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json["bins"]["quantiles"], 4);
    assert_eq!(json["bins"]["edges"], serde_json::json!([18.0, 25.0, 35.0]));
    assert!(
        md.contains(
            "binned into 4 quantile bins over raters (each rater's first value) at edges 18, 25, 35"
        ),
        "{md}"
    );
    assert!(
        json["groups_left_out"].as_array().unwrap().is_empty(),
        "{json}"
    );
    // A word among the ages: an error naming the value, the column and the file.
    let (out, ..) = run_report(
        &dir,
        &demographics_csv(Some("unknown")),
        &["--group", "age", "--bins", "age=q4"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("d.csv") && err.contains("\"age\"") && err.contains("\"unknown\""),
        "{err}"
    );
    // Bins for another column than the group column are refused.
    let (out, ..) = run_report(&dir, &csv, &["--group", "pool", "--bins", "age=q4"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn disagreement_shows_mean_labels_for_ordered_levels() {
    let dir = Dir::new("means");
    let csv = demographics_csv(None);
    let (out, md, html, json) = run_report(&dir, &csv, &["--group", "pool", "--level", "ordinal"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(md.contains("## Mean label per group"), "{md}");
    assert!(html.contains("Mean label per group"));
    let means = json["label_means"]["groups"].as_array().unwrap();
    assert_eq!(means.len(), 4);
    // p2 and p100 rate 2–3 (mean 2.5), p9 and p10 rate 1–2 (mean 1.5).
    assert_eq!(means[0]["group"], "p2");
    assert!(
        (means[0]["mean"].as_f64().unwrap() - 2.5).abs() < 1e-9,
        "{json}"
    );
    assert!(
        (means[1]["mean"].as_f64().unwrap() - 1.5).abs() < 1e-9,
        "{json}"
    );
    assert_eq!(means[0]["n_raters"], 5);
    assert!(means[0]["interval"].is_object(), "{json}");
    assert_eq!(json["label_means"]["scale"], "label value");
    // Nominal: no means.
    let (_, md, _, json) = run_report(&dir, &csv, &["--group", "pool"]);
    assert!(!md.contains("Mean label"), "{md}");
    assert!(json.get("label_means").is_none());
}

#[test]
fn disagreement_shows_item_text_in_the_most_dividing_items() {
    let dir = Dir::new("text");
    let csv = demographics_csv(None);
    let (out, md, html, json) =
        run_report(&dir, &csv, &["--group", "pool", "--text-column", "text"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(md.contains("| item | text | TV distance |"), "{md}");
    assert!(md.contains("Item 0 \\| \\<b>bold\\</b> long words"), "{md}");
    assert!(md.contains(" lon… | 0.600 |"), "{md}");
    assert!(!md.contains(&"long words ".repeat(10)), "{md}");
    assert!(html.contains("Item 0 | &lt;b&gt;bold&lt;/b&gt;"), "{html}");
    let first = &json["most_dividing_items"][0];
    assert!(
        first["text"].as_str().unwrap().ends_with("long words"),
        "{json}"
    );
    // The text column is no group: the report compares pools only.
    assert_eq!(
        json["groups"],
        serde_json::json!(["p2", "p9", "p10", "p100"])
    );
    // Without a text column, items are shown by id only.
    let (_, md, _, json) = run_report(&dir, &csv, &["--group", "pool"]);
    assert!(md.contains("| item | TV distance |"), "{md}");
    assert!(json["most_dividing_items"][0].get("text").is_none());
}

/// Raters who agree perfectly but write `0` / `0.0` and `1` / `1.0` agree: numeric spellings of
/// one number are one label (with a warning naming them), and `aggregate` writes one column per
/// number.
#[test]
fn numeric_label_spellings_are_one_label() {
    let dir = Dir::new("spellings");
    let mut csv = String::from("item,rater,label\n");
    for item in 0..6 {
        let (a, b) = if item % 2 == 0 {
            ("0", "0.0")
        } else {
            ("1", "1.0")
        };
        csv += &format!("i{item},r1,{a}\ni{item},r2,{b}\ni{item},r3,{a}\n");
    }
    let file = dir.write("s.csv", &csv).display().to_string();
    let out = arbiter(&["agreement", "--format", "json", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["alpha"].as_f64(), Some(1.0), "{v}");
    assert_eq!(v["percent_agreement"].as_f64(), Some(1.0), "{v}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("one label: 0.0 → 0, 1.0 → 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = arbiter(&["aggregate", "--method", "mv", &file]);
    assert!(out.status.success());
    let header = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(header, "item,label,p_0,p_1");
}

/// An error says its cause once (the message held the cause and the chain printed it again).
#[test]
fn a_missing_file_is_named_once() {
    let out = arbiter(&["agreement", "/nonexistent/ratings.csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/ratings.csv"), "{err}");
}
