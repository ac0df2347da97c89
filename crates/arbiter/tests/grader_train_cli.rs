//! `arbiter grader train` on data merged from sources that label different propositions: refused
//! without `--allow-missing-labels` (naming the sample and proposition), fitted per proposition
//! on the rows that label it with it, and the heads file then grades. Needs the embedded model
//! (skips with a printed reason when absent, unless ARBITER_REQUIRE_MODEL=1).

mod common;

use arbiter_testkit::TempDir as Dir;
use common::{arbiter, s, stderr};
use serde_json::{Value, json};

fn model_or_skip() -> bool {
    arbiter_testkit::model_installed(&arbiter_graders::embedded::model::default_model_dir())
}

#[test]
fn partial_labels_train_each_head_on_what_labels_it() {
    if !model_or_skip() {
        return;
    }
    let dir = Dir::new("grader-train");
    // A policy of two propositions; source `a` labels both, source `b` only `apology`.
    let policy = dir.write(
        "p.toml",
        "name = \"two\"\nclasses = [\"good\", \"bad\"]\n\
         [[propositions]]\nname = \"apology\"\nquestion = \"Does it apologise?\"\nresponse_types = [\"comply\"]\n\
         [[propositions]]\nname = \"fully_complies\"\nquestion = \"Does it comply?\"\nresponse_types = [\"comply\"]\n\
         [rules.comply]\ngood = \"fully_complies\"\nbad = \"!fully_complies\"\n\
         [metrics]\nunsafe_content = \"apology & !apology\"\nrefusal = \"!fully_complies\"\nideal_class = \"good\"\n",
    );
    let mut lines = String::new();
    for i in 0..24 {
        let sorry = i % 2 == 0;
        let reply = if sorry {
            format!("I'm sorry, I can't help with request {i}.")
        } else {
            format!("Sure, here is the answer to request {i}: step one, step two.")
        };
        let mut props = json!({"apology": sorry});
        let source = if i < 12 { "a" } else { "b" };
        if source == "a" {
            props["fully_complies"] = json!(!sorry);
        }
        lines.push_str(
            &json!({"id": i, "response_type": "comply",
                    "prompt": [{"role": "user", "content": format!("Question {i}?")}],
                    "completion": reply, "propositions": props, "source": source})
            .to_string(),
        );
        lines.push('\n');
    }
    let data = dir.write("labelled.jsonl", &lines);
    let heads = dir.path("heads.json");
    let base = [
        "grader",
        "train",
        "--policy",
        s(&policy),
        "--data",
        s(&data),
        "--out",
        s(&heads),
    ];
    let strict = arbiter(&base);
    assert_eq!(strict.status.code(), Some(2), "{}", stderr(&strict));
    assert!(
        stderr(&strict).contains("sample 12 has no human label for proposition \"fully_complies\""),
        "{}",
        stderr(&strict)
    );

    let mut args = base.to_vec();
    args.extend(["--allow-missing-labels", "--balance-sources"]);
    let ok = arbiter(&args);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&heads).unwrap()).unwrap();
    assert_eq!(file["heads"]["apology"]["n_train"], 24);
    assert_eq!(file["heads"]["fully_complies"]["n_train"], 12);
    assert_eq!(file["heads"]["fully_complies"]["n_positive"], 6);

    let grades = dir.path("grades.jsonl");
    let graded = arbiter(&[
        "grade",
        "--policy",
        s(&policy),
        "--heads",
        s(&heads),
        s(&data),
        "--out",
        s(&grades),
    ]);
    assert!(graded.status.success(), "{}", stderr(&graded));
    let text = std::fs::read_to_string(&grades).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 24);
    // Fitted on its own replies, the compliance head separates them.
    for (i, row) in rows.iter().enumerate() {
        let p = row["propositions"]["fully_complies"].as_f64().unwrap();
        assert_eq!(p > 0.5, i % 2 == 1, "row {i}: {p}");
    }
}
