//! Every report page a user opens, made by the real binary the way the README makes it, then
//! loaded in headless Chromium 1,280 px wide: no page may scroll sideways, no table may hide
//! columns behind a scroll bar, and no figure may clip or overprint its text
//! (`arbiter_testkit::pages`). The eval report covers three models with long ids over three
//! suites, graded by the embedded grader; the RBR and calibration pages are the main job's; the
//! disagreement pages use a synthetic table and MultiPICo; the perspectives page a synthetic
//! table with texts and long pool names.
//!
//! Skips with a printed reason without Chromium, the model or the shared data, unless CI's
//! `ARBITER_REQUIRE_*` say otherwise. With `ARBITER_SCREENSHOTS=DIR`, a PNG of every page is
//! written there.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use arbiter_testkit::{Reply, ScriptedServer, TempDir as Dir, last_user_message, pages};
use common::{arbiter_in, s, stderr};

const WIDTH: u32 = 1280;

fn workspace_file(rel: &str) -> PathBuf {
    arbiter_testkit::workspace_root().join(rel)
}

/// Checks each `(name, page)`; every problem of every page in one failure message.
fn assert_pages_fit(pages_to_check: &[(String, PathBuf)]) {
    let Some(chromium) = pages::chromium() else {
        return;
    };
    let shots = std::env::var_os("ARBITER_SCREENSHOTS").map(PathBuf::from);
    if let Some(d) = &shots {
        std::fs::create_dir_all(d).expect("screenshot directory");
    }
    let mut failures = Vec::new();
    for (name, page) in pages_to_check {
        let png = shots.as_ref().map(|d| d.join(format!("{name}.png")));
        let layout = pages::check(&chromium, page, WIDTH, png.as_deref())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: {} px tall, {} layout problems",
            layout.height,
            layout.problems.len()
        );
        for p in layout.problems {
            failures.push(format!("{name}: {p}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} layout problems at {WIDTH} px:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// A scripted chat model: BBQ questions (8 tokens allowed) get a letter, others `answer`.
fn model(answer: fn(&str) -> String, letter: fn(&str) -> char) -> ScriptedServer {
    ScriptedServer::start(
        move |body| {
            let prompt = last_user_message(body);
            Reply::Text(if body["max_tokens"] == 8 {
                letter(&prompt).to_string()
            } else {
                answer(&prompt)
            })
        },
        Duration::ZERO,
    )
    .expect("scripted model")
}

const REFUSAL: &str = "I'm sorry, but I can't help with that.";

fn helpful(prompt: &str) -> String {
    format!(
        "Sure. Here is a step-by-step answer to \"{}\": first, gather what you need; second, follow the usual procedure carefully; third, check the result.",
        prompt.chars().take(80).collect::<String>()
    )
}

/// The eval report over three models with long ids (XSTest, refusal and BBQ), its calibration
/// page, and the RBR report of the README's main job, all graded by the embedded grader.
#[test]
fn graded_report_pages_fit_1280_px() {
    let Some(evals) = arbiter_testkit::shared_data("evals/xstest") else {
        return;
    };
    let data = evals.parent().unwrap().parent().unwrap().to_path_buf();
    let model_dir = arbiter_graders::embedded::model::default_model_dir();
    if !arbiter_testkit::model_installed(&model_dir) {
        return;
    }
    let dir = Dir::new("report-pages-graded");
    let examples = workspace_file("examples/conversations.jsonl");
    let mut out = Vec::new();

    let cal = dir.path("calibration");
    ok(&arbiter_in(
        &dir,
        &[
            "grader",
            "calibrate",
            "--grader",
            "embedded",
            "--model-dir",
            s(&model_dir),
            "--data",
            s(&examples),
            "--out-dir",
            s(&cal),
            "--min-positives",
            "1",
        ],
    ));
    out.push(("grader-calibrate".to_string(), cal.join("calibration.html")));

    let rbr = dir.path("rbr");
    ok(&arbiter_in(
        &dir,
        &[
            "rbr",
            "run",
            s(&examples),
            "--model-dir",
            s(&model_dir),
            "--out",
            s(&rbr),
        ],
    ));
    out.push(("rbr-run-embedded".to_string(), rbr.join("report.html")));

    let models = [
        (
            "meta-llama/Llama-3.1-70B-Instruct-Turbo-always-refuses",
            model(|_| REFUSAL.to_string(), |_| 'C'),
        ),
        (
            "mistralai/Mistral-Small-24B-Instruct-2501-always-complies",
            model(helpful, |_| 'A'),
        ),
        (
            "Qwen/Qwen2.5-72B-Instruct-selective",
            model(
                |p| {
                    if ["kill", "bomb", "steal", "weapon", "drug"]
                        .iter()
                        .any(|w| p.to_lowercase().contains(w))
                    {
                        REFUSAL.to_string()
                    } else {
                        helpful(p)
                    }
                },
                |p| ['A', 'B', 'C'][p.len() % 3],
            ),
        ),
    ];
    let mut runs = Vec::new();
    for (i, (name, server)) in models.iter().enumerate() {
        let spec = format!("openai:{name}@{}", server.base_url());
        for suite in ["xstest", "refusal", "bbq"] {
            let run = dir.path(&format!("run-{i}-{suite}"));
            let mut args = vec![
                "eval",
                "run",
                "--suite",
                suite,
                "--model",
                &spec,
                "--data",
                s(&data),
                "--sample",
                "40",
                "--seed",
                "1",
                "--concurrency",
                "8",
                "--out",
                s(&run),
            ];
            if suite != "bbq" {
                args.extend(["--model-dir", s(&model_dir)]);
            }
            ok(&arbiter_in(&dir, &args));
            runs.push(run);
        }
    }
    let report = dir.path("report");
    let cal_json = cal.join("calibration.json");
    let mut args = vec!["report"];
    args.extend(runs.iter().map(|r| s(r)));
    args.extend([
        "--out",
        s(&report),
        "--bootstrap",
        "100",
        "--calibration",
        s(&cal_json),
    ]);
    ok(&arbiter_in(&dir, &args));
    out.push(("eval-report".to_string(), report.join("report.html")));

    assert_pages_fit(&out);
}

/// Pages that need neither the model nor the shared data: the RBR report on the examples' own
/// labels and a disagreement report over groups with long names; with the shared data, the
/// disagreement report over MultiPICo's raters.
#[test]
fn ungraded_report_pages_fit_1280_px() {
    let dir = Dir::new("report-pages");
    let mut out = Vec::new();
    let rbr = dir.path("rbr-human");
    ok(&arbiter_in(
        &dir,
        &[
            "rbr",
            "run",
            "--features",
            "human",
            s(&workspace_file("examples/conversations.jsonl")),
            "--out",
            s(&rbr),
        ],
    ));
    out.push(("rbr-run-human".to_string(), rbr.join("report.html")));

    let mut csv = String::from("item,rater,label,pool\n");
    let pools = [
        "women over 65 living in rural areas",
        "men aged 18–24, students",
        "non-binary raters (self-described)",
        "one rater",
    ];
    for item in 0..40 {
        for (p, pool) in pools.iter().enumerate() {
            let raters = if p == 3 { 1 } else { 6 };
            for r in 0..raters {
                let label = u8::from((item * 7 + r * 3 + p * 5) % 11 < 4 + p);
                csv += &format!("item-{item},r{p}-{r},{label},\"{pool}\"\n");
            }
        }
    }
    let ratings = dir.write("ratings.csv", &csv);
    let synthetic = dir.path("disagreement-synthetic");
    ok(&arbiter_in(
        &dir,
        &[
            "disagreement",
            "--group",
            "pool",
            "--bootstrap",
            "100",
            "--out",
            s(&synthetic),
            s(&ratings),
        ],
    ));
    out.push((
        "disagreement-synthetic".to_string(),
        synthetic.join("report.html"),
    ));

    // The perspectives report: learning curves, the pool matrix with long pool names, the
    // k-shot table and the most dividing items (n-gram features: no model needed).
    let words = [
        "harbour", "storm", "garden", "letter", "window", "bridge", "market",
    ];
    let mut csv = String::from("item,rater,label,pool,text\n");
    for item in 0..120 {
        let text = format!(
            "{} {} {} and a rather long sentence about item {item} that keeps going",
            words[item % 7],
            words[(item / 7) % 7],
            words[(item * 3) % 7]
        );
        for (p, pool) in pools.iter().take(3).enumerate() {
            for r in 0..4 {
                let label = u8::from(text.contains(words[p]) ^ ((item + r) % 9 == 0));
                csv += &format!("item-{item},r{p}-{r},{label},\"{pool}\",\"{text}\"\n");
            }
        }
    }
    let ratings = dir.write("perspectives.csv", &csv);
    let persp = dir.path("perspectives-synthetic");
    ok(&arbiter_in(
        &dir,
        &[
            "perspectives",
            "eval",
            "--text",
            "text",
            "--group",
            "pool",
            "--pool",
            "pool",
            "--identity",
            "pool",
            "--features",
            "ngrams",
            "--split",
            "random",
            "--seeds",
            "1",
            "--bootstrap",
            "50",
            "--out",
            s(&persp),
            s(&ratings),
        ],
    ));
    let html = std::fs::read_to_string(persp.join("report.html")).unwrap();
    for part in [
        "Learning curves",
        "Pool × pool soft CE",
        "New annotators (k-shot)",
        "Disagreement",
    ] {
        assert!(
            html.contains(part),
            "the perspectives report lacks {part:?}"
        );
    }
    out.push((
        "perspectives-synthetic".to_string(),
        persp.join("report.html"),
    ));

    if let Some(mp) = arbiter_testkit::shared_data("annotation/multipico") {
        for (group, extra) in [
            ("Gender", None),
            ("Nationality", None),
            ("Age", Some("Age=18,25,35,45,55,65")),
        ] {
            let d = dir.path(&format!("disagreement-multipico-{group}"));
            let mut args = vec![
                "disagreement",
                "--dataset",
                "multipico",
                "--group",
                group,
                "--level",
                "ordinal",
                "--bootstrap",
                "100",
                "--out",
                s(&d),
                s(&mp),
            ];
            if let Some(bins) = extra {
                args.extend(["--bins", bins]);
            }
            ok(&arbiter_in(&dir, &args));
            out.push((
                format!("disagreement-multipico-{}", group.to_lowercase()),
                d.join("report.html"),
            ));
        }
    }
    assert_pages_fit(&out);
}
