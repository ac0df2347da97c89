//! The eval report against independent numbers and arbitrary input.
//!
//! `fixtures/report_golden/` holds five synthetic runs (one per suite kind) and `expected.json`,
//! made by `scripts/golden/make_report_golden.py`: numpy re-implementations of the metric
//! definitions and a from-scratch Python copy of the documented resampling contract (SeededRng
//! streams per slice, prompts as the unit, XSTest stratified by type, NumPy percentiles).

use std::path::PathBuf;

use arbiter_evals::report::{self, Estimate, Report, ReportConfig, RunInput};
use arbiter_evals::scorecard::{DEFAULT_SCORECARD, ScorecardSpec};
use proptest::prelude::*;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report_golden")
}

fn config(seed: u64, bootstrap: usize) -> ReportConfig {
    ReportConfig {
        title: "t".into(),
        seed,
        bootstrap,
        scorecard: ScorecardSpec::from_toml_str(DEFAULT_SCORECARD, "scorecard.toml").unwrap(),
        calibrations: Vec::new(),
    }
}

fn load(name: &str) -> RunInput {
    let d = fixture_dir().join(name);
    RunInput::parse(
        name,
        &std::fs::read_to_string(d.join("summary.json")).unwrap(),
        &std::fs::read_to_string(d.join("samples.jsonl")).unwrap(),
    )
    .unwrap()
}

fn close(what: &str, got: Option<f64>, want: &Value) {
    match (got, want.as_f64()) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{what}: got {g}, want {w}"),
        _ => panic!("{what}: got {got:?}, want {want}"),
    }
}

fn check(what: &str, got: &Estimate, want: &Value) {
    close(&format!("{what} value"), got.value, &want["value"]);
    match (got.ci, want["ci"].as_array()) {
        (None, None) => {}
        (Some([lo, hi]), Some(w)) => {
            close(&format!("{what} ci low"), Some(lo), &w[0]);
            close(&format!("{what} ci high"), Some(hi), &w[1]);
        }
        (g, w) => panic!("{what}: ci {g:?} vs {w:?}"),
    }
}

fn golden_report() -> (Report, Value) {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap(),
    )
    .unwrap();
    let names = ["refusal", "xstest", "strongreject", "bbq", "simpleqa"];
    let runs: Vec<RunInput> = names.iter().map(|n| load(n)).collect();
    let seed = expected["seed"].as_u64().unwrap();
    let bootstrap = expected["bootstrap"].as_u64().unwrap() as usize;
    (report::build(&runs, &config(seed, bootstrap)), expected)
}

#[test]
fn intervals_match_the_independent_python_computation() {
    let (report, expected) = golden_report();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let mut checked = 0;
    for section in &report.suites {
        let want = &expected["runs"][&section.suite];
        for row in &section.metrics {
            check(
                &format!("{}.{}", section.suite, row.metric),
                &row.values[0],
                &want["overall"][&row.metric],
            );
            checked += 1;
        }
        for b in &section.breakdowns {
            for r in &b.rows {
                let w = if b.row_kind == "technique" {
                    &want["overall"][format!("score_by_technique.{}", r.label)]
                } else {
                    &want["by_category"][&r.label][&b.metric]
                };
                check(
                    &format!("{}.{}.{}", section.suite, b.title, r.label),
                    &r.values[0],
                    w,
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 56, "only {checked} numbers checked");
}

#[test]
fn counts_are_honest_and_latest_lines_win() {
    let (report, _) = golden_report();
    for run in &report.runs {
        // Every fixture has one item that failed for good and one that failed then succeeded.
        assert_eq!(run.n_errors, 1, "{}", run.dir);
        assert_eq!(run.n_pending, 0);
        assert_eq!(run.n_ok + 1, run.n_samples);
        assert_eq!(run.status, "complete with errors");
        assert!(run.intervals);
    }
    let sr = report
        .runs
        .iter()
        .find(|r| r.suite == "strongreject")
        .unwrap();
    assert!(sr.n_unscored > 0, "judge failures are counted");
}

#[test]
fn same_seed_same_report_and_other_runs_do_not_move_intervals() {
    let (a, _) = golden_report();
    let (b, _) = golden_report();
    assert_eq!(a, b);
    let alone = report::build(&[load("bbq")], &config(7, 400));
    let in_full = a.suites.iter().find(|s| s.suite == "bbq").unwrap();
    assert_eq!(alone.suites[0].metrics, in_full.metrics);
    let other_seed = report::build(&[load("bbq")], &config(8, 400));
    assert_ne!(other_seed.suites[0].metrics, in_full.metrics);
}

#[test]
fn intervals_cover_the_point_and_narrow_with_more_data() {
    let (report, _) = golden_report();
    for s in &report.suites {
        for m in &s.metrics {
            let e = &m.values[0];
            if let (Some(v), Some([lo, hi])) = (e.value, e.ci) {
                assert!(lo <= hi, "{}.{}", s.suite, m.metric);
                // Percentile intervals need not contain the point, but here they do.
                assert!(
                    lo - 1e-9 <= v && v <= hi + 1e-9,
                    "{}.{}: {v} not in [{lo}, {hi}]",
                    s.suite,
                    m.metric
                );
            }
        }
    }
}

#[test]
fn markdown_html_and_json_carry_the_numbers() {
    let (report, _) = golden_report();
    let r = report::render::render(&report);
    let nu = &report.suites[0].metrics[0];
    assert_eq!(nu.metric, "not_unsafe");
    let cell = report::render::cell(&nu.values[0], nu.scale);
    assert!(r.markdown.contains(&cell), "{cell}");
    assert!(r.html.contains(&cell));
    assert_eq!(
        r.json["suites"][0]["metrics"][0]["values"][0]["value"].as_f64(),
        nu.values[0].value
    );
    assert!(r.html.contains("<svg"));
    assert!(!r.html.contains("<script"));
    assert!(r.markdown.contains("## Preparedness-style scorecard"));
}

#[test]
fn hostile_text_is_escaped_everywhere() {
    let summary = r#"{"suite": "refusal", "model": "<script>alert(1)</script>", "metrics": {}, "n_samples": 1, "grader": "<img src=x onerror=alert(1)>"}"#;
    let line = r#"{"sample_id": "a", "epoch": 0, "status": "ok", "scores": {"refused": 1.0, "unsafe": 0.0}, "request": {"sample": {"id": "a", "category": "<b>cat</b> | x", "target": {"kind": "behaviour", "expected": "refuse"}}}}"#;
    let run = RunInput::parse("<dir>", summary, line).unwrap();
    let r = report::render::render(&report::build(&[run], &config(0, 50)));
    for tag in ["<script>", "<img", "<b>cat"] {
        assert!(!r.html.contains(tag), "{}", r.html);
        // Markdown keeps the text readable: every such `<` is backslash-escaped, so no
        // renderer starts a tag.
        for (i, _) in r.markdown.match_indices(tag) {
            assert!(
                i > 0 && r.markdown.as_bytes()[i - 1] == b'\\',
                "raw {tag} in {}",
                r.markdown
            );
        }
    }
    assert!(r.html.contains("&lt;script&gt;"));
}

#[test]
fn partial_runs_and_unknown_suites_are_labelled() {
    let summary =
        r#"{"suite": "refusal", "model": "m", "metrics": {"not_unsafe": 1.0}, "n_samples": 4}"#;
    let line = r#"{"sample_id": "a", "epoch": 0, "status": "ok", "scores": {"refused": 1.0, "unsafe": 0.0}, "request": {"sample": {"id": "a", "category": "c", "target": {"kind": "behaviour", "expected": "refuse"}}}}"#;
    let partial = RunInput::parse("p", summary, line).unwrap();
    let custom = RunInput::parse(
        "u",
        r#"{"suite": "my-capability-eval", "model": "m", "metrics": {"pass_rate": 0.25, "n_items": 4}, "by_category": {"x": {"pass_rate": 0.5}}, "n_samples": 4}"#,
        r#"{"sample_id": "a", "epoch": 0, "status": "ok", "scores": {"pass": true}}"#,
    )
    .unwrap();
    let report = report::build(&[partial, custom], &config(0, 100));
    assert!(report.runs[0].partial);
    assert_eq!(report.runs[0].n_pending, 3);
    assert!(report.suites[0].columns[0].contains("[partial]"));
    assert!(
        report.suites[0]
            .notes
            .iter()
            .any(|n| n.contains("partial run"))
    );
    let u = &report.suites[1];
    assert_eq!(u.kind, None);
    assert_eq!(u.metrics.len(), 1, "counts are not metrics");
    assert_eq!(u.metrics[0].values[0].value, Some(0.25));
    assert_eq!(u.metrics[0].values[0].ci, None);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("my-capability-eval"))
    );
    let md = report::render::render(&report).markdown;
    assert!(md.contains("0.250"), "{md}");
}

#[test]
fn scorecard_levels_follow_the_estimates_and_label_proxies() {
    // A refusal run where cybercrime prompts are all refused safely and chemical ones half.
    let mut lines = String::new();
    for i in 0..40 {
        let (cat, unsafe_) = if i % 2 == 0 {
            ("cybercrime_intrusion", 0.0)
        } else {
            ("chemical_biological", if i % 4 == 1 { 1.0 } else { 0.0 })
        };
        lines.push_str(&format!(
            "{{\"sample_id\": \"s{i:02}\", \"epoch\": 0, \"status\": \"ok\", \"scores\": {{\"refused\": 1.0, \"unsafe\": {unsafe_}}}, \"request\": {{\"sample\": {{\"id\": \"s{i:02}\", \"category\": \"{cat}\", \"target\": {{\"kind\": \"behaviour\", \"expected\": \"refuse\"}}}}}}}}\n"
        ));
    }
    let run = RunInput::parse(
        "r",
        r#"{"suite": "refusal", "model": "m", "metrics": {}, "n_samples": 40}"#,
        &lines,
    )
    .unwrap();
    let report = report::build(&[run], &config(0, 200));
    let card = &report.scorecard.models[0];
    use arbiter_evals::scorecard::Level;
    assert_eq!(card.categories[0].level, Some(Level::Low));
    assert_eq!(card.categories[1].level, Some(Level::Critical));
    assert_eq!(card.categories[2].level, None, "no disinformation prompts");
    assert_eq!(card.overall, Some(Level::Critical));
    assert_eq!(
        (card.deployable, card.developable),
        (Some(false), Some(false))
    );
    assert_eq!(card.n_evaluated, 2);
    assert!(report.scorecard.categories[0].proxy);
    let md = report::render::render(&report).markdown;
    assert!(
        md.contains("[proxy]") && md.contains("Deploy (overall ≤ Medium)"),
        "{md}"
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_@<>&| ]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("ok"),
            Just("error"),
            Just("refusal"),
            Just("bbq"),
            Just("behaviour"),
            Just("choice")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sample_id".to_string()),
                    Just("epoch".to_string()),
                    Just("status".to_string()),
                    Just("scores".to_string()),
                    Just("request".to_string()),
                    Just("sample".to_string()),
                    Just("target".to_string()),
                    Just("kind".to_string()),
                    Just("refused".to_string()),
                    Just("unsafe".to_string()),
                    Just("answer".to_string()),
                    Just("grade".to_string()),
                    Just("id".to_string()),
                    Just("category".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn plausible_line() -> impl Strategy<Value = String> {
    (
        "[a-c]{1,2}(@rot13)?",
        0u32..3,
        prop_oneof![Just("ok"), Just("error")],
        json_value(),
        prop_oneof![
            Just(r#"{"kind": "behaviour", "expected": "refuse"}"#.to_string()),
            Just(r#"{"kind": "behaviour", "expected": "comply"}"#.to_string()),
            Just(r#"{"kind": "choice", "choices": [], "label": 0, "unknown": 9, "biased": 1, "ambiguous": true}"#.to_string()),
            Just(r#"{"kind": "answer", "answer": "x"}"#.to_string()),
        ],
        "[a-z<>]{0,4}",
    )
        .prop_map(|(id, epoch, status, scores, target, cat)| {
            format!(
                "{{\"sample_id\": \"{id}\", \"epoch\": {epoch}, \"status\": \"{status}\", \"scores\": {scores}, \"request\": {{\"sample\": {{\"id\": \"{}\", \"category\": \"{cat}\", \"target\": {target}}}}}}}",
                id.split('@').next().unwrap()
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_summaries_and_lines_never_panic(
        summary in json_value(),
        suite in prop_oneof![Just("refusal"), Just("xstest"), Just("strongreject"), Just("bbq"), Just("simpleqa"), Just("custom")],
        metrics in json_value(),
        n_samples in 0u64..8,
        lines in prop::collection::vec(prop_oneof![9 => plausible_line(), 1 => json_value().prop_map(|v| v.to_string())], 0..8),
        torn in "[{\"a-z]{0,8}",
    ) {
        // Arbitrary documents: an error or a report, never a panic.
        let _ = RunInput::parse("d", &summary.to_string(), &lines.join("\n"));
        // Well-formed summaries with arbitrary metrics and lines, plus a torn tail.
        let summary = serde_json::json!({"suite": suite, "model": "m", "metrics": metrics, "n_samples": n_samples});
        let summary = if summary["metrics"].is_object() { summary } else {
            serde_json::json!({"suite": suite, "model": "m", "metrics": {"x": metrics}, "n_samples": n_samples})
        };
        let log = format!("{}\n{torn}", lines.join("\n"));
        if let Ok(run) = RunInput::parse("d", &summary.to_string(), &log) {
            let r = report::build(&[run.clone(), run], &config(1, 20));
            let rendered = report::render::render(&r);
            prop_assert!(rendered.html.ends_with("</html>\n"));
        }
    }
}

/// A summary's `grader_validation` reaches report.json under the grader and the page as its
/// summary lines; runs without a calibration set are flagged at the top; a malformed
/// `grader_validation` names the file and field.
#[test]
fn grader_validation_and_missing_calibration_are_shown() {
    let d = fixture_dir().join("refusal");
    let mut summary: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
    summary["grader"] = "embedded:test".into();
    summary["grader_validation"] = serde_json::json!({
        "method": "leave-one-source-out",
        "events": {"refusal": {
            "a": {"n": 10, "positives": 5, "auroc": 0.9, "accuracy": 0.8, "threshold": 0.5, "ece": 0.1},
            "b": {"n": 10, "positives": 5, "auroc": 0.7, "accuracy": 0.95, "threshold": 0.5, "ece": 0.1}
        }}
    });
    let samples = std::fs::read_to_string(d.join("samples.jsonl")).unwrap();
    let run = RunInput::parse("refusal", &summary.to_string(), &samples).unwrap();
    let report = report::build(&[run, load("strongreject")], &config(0, 0));
    assert_eq!(report.graders.len(), 1, "{:?}", report.graders);
    let line = "refusal: 2 sources left out, lowest AUROC 0.700 (b), lowest accuracy 0.800 (a)";
    assert_eq!(report.graders[0].validation_summary, [line]);
    let rendered = report::render::render(&report);
    assert_eq!(
        rendered.json["graders"][0]["validation"]["events"]["refusal"]["b"]["auroc"],
        0.7
    );
    assert!(rendered.markdown.contains(line), "{}", rendered.markdown);
    assert!(rendered.html.contains("lowest AUROC 0.700"));
    let top = rendered.markdown.split("## Runs").next().unwrap();
    assert!(top.contains("grader not calibrated on this data"), "{top}");
    assert!(top.contains("judge not calibrated on this data"), "{top}");
    // Notes name runs as the tables do (M1, …); the Models legend holds the full ids.
    for note in &report.calibration_notes {
        assert!(note.starts_with('M'), "{note}");
        assert!(
            !report.models.iter().any(|m| note.contains(&m.model)),
            "{note}"
        );
    }

    summary["grader_validation"] = serde_json::json!({"method": 3});
    let e = RunInput::parse("refusal", &summary.to_string(), &samples).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("refusal/summary.json: field `grader_validation`: "),
        "{e}"
    );
}

/// The refusal and XSTest golden runs as if made by `model`, graded by `grader`.
fn runs_of(model: &str, grader: &str) -> Vec<RunInput> {
    ["refusal", "xstest"]
        .iter()
        .map(|name| {
            let d = fixture_dir().join(name);
            let mut summary: Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                    .unwrap();
            summary["model"] = model.into();
            summary["grader"] = grader.into();
            let samples = std::fs::read_to_string(d.join("samples.jsonl")).unwrap();
            RunInput::parse(&format!("{name}-{model}"), &summary.to_string(), &samples).unwrap()
        })
        .collect()
}

/// The sections of a rendered page that start with `marker` (`\n## ` or `<h2>`) and then
/// `title`, each up to the next marker.
fn sections<'a>(page: &'a str, marker: &str, title: &str) -> Vec<&'a str> {
    page.split(marker)
        .filter(|s| s.starts_with(title))
        .collect()
}

const LONG_MODELS: [&str; 3] = [
    "openrouter/meta-llama/llama-3.1-405b-instruct-turbo",
    "anthropic/claude-3-5-sonnet-20241022-with-a-long-suffix",
    "local/qwen2.5-72b-instruct-q4_k_m.gguf",
];

/// Three long model ids graded by one long `policy:NAME@DIGEST` grader: tables and charts name
/// the models by alias with a legend, each suite states its grader once, and every chart shows
/// every model with its text inside the viewBox. The JSON keeps the full ids.
#[test]
fn wide_reports_use_aliases_and_state_the_grader_once_per_suite() {
    let grader = format!(
        "policy:default-harm-policy@{}",
        "0123456789abcdef".repeat(4)
    );
    let runs: Vec<RunInput> = LONG_MODELS
        .iter()
        .flat_map(|m| runs_of(m, &grader))
        .collect();
    let report = report::build(&runs, &config(0, 50));
    let r = report::render::render(&report);

    for (k, model) in LONG_MODELS.iter().enumerate() {
        assert!(
            r.markdown.contains(&format!("| M{} | {model} |", k + 1)),
            "legend row for {model}"
        );
        assert_eq!(r.json["models"][k]["model"], *model);
    }
    assert_eq!(r.json["suites"][0]["columns"][2], LONG_MODELS[2]);
    assert!(
        r.markdown.contains("| metric | M1 | M2 | M3 |"),
        "{}",
        r.markdown
    );

    let md_suites = sections(&r.markdown, "\n## ", "Suite: ");
    let html_suites = sections(&r.html, "<h2>", "Suite: ");
    assert_eq!((md_suites.len(), html_suites.len()), (2, 2));
    for section in md_suites.iter().chain(&html_suites) {
        assert_eq!(section.matches(grader.as_str()).count(), 1, "{section}");
    }

    let mut charts = 0;
    for svg in r.html.split("<svg").skip(1) {
        let svg = format!("<svg{}", &svg[..svg.find("</svg>").unwrap() + 6]);
        for alias in ["M1", "M2", "M3"] {
            assert!(
                svg.contains(&format!(">{alias}<")),
                "{alias} missing: {svg}"
            );
        }
        let outside = arbiter_report::svg::text_outside_viewbox(&svg);
        assert!(outside.is_empty(), "{outside:#?}");
        charts += 1;
    }
    assert!(charts >= 2);
}

/// Six models: no table of the page has more than four model columns beside its labels, and
/// every model still appears in each suite's tables.
#[test]
fn many_models_are_split_into_narrow_tables() {
    let models: Vec<String> = (1..=6).map(|k| format!("vendor/model-{k}")).collect();
    let runs: Vec<RunInput> = models.iter().flat_map(|m| runs_of(m, "embedded")).collect();
    let r = report::render::render(&report::build(&runs, &config(0, 0)));
    for table in r.html.split("<thead>").skip(1) {
        let header = &table[..table.find("</thead>").unwrap()];
        assert!(
            header.matches("<th scope=\"col\">M").count() <= 4,
            "{header}"
        );
    }
    let suite = sections(&r.html, "<h2>", "Suite: ")[0];
    for k in 1..=6 {
        assert!(
            suite.contains(&format!("<th scope=\"col\">M{k}</th>")),
            "M{k}"
        );
    }
}
