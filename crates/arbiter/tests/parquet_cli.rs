//! Parquet in and out of the real binary: every command given the same data as JSONL/CSV and
//! as Parquet (written by pyarrow: `fixtures/parquet/make_fixtures.py`) prints the same bytes,
//! and outputs written as Parquet hold the JSONL output's rows (read back by pyarrow, an
//! independent reader, when the package's venv is there, and by `arbiter-columnar`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use arbiter_testkit::TempDir as Dir;
use arbiter_testkit::{ScriptedServer, last_user_message};
use common::{logprob_reply, s, stderr, stdout};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parquet")
        .join(name)
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/conversations.jsonl")
}

fn run(dir: &Dir, args: &[&str]) -> Output {
    let o = common::arbiter_in(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: exit {:?}: {}",
        o.status.code(),
        stderr(&o)
    );
    o
}

/// pyarrow from the package's test venv where `scripts/test-python.sh` makes it
/// (`$ARBITER_PY_VENV`, else `${ARBITER_CACHE:-~/.cache/arbiter}/py-venv`), if it is there.
fn pyarrow_python() -> Option<PathBuf> {
    let cache = std::env::var_os("ARBITER_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/arbiter")));
    let venv = std::env::var_os("ARBITER_PY_VENV")
        .map(PathBuf::from)
        .or_else(|| cache.map(|c| c.join("py-venv")))?;
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// The Parquet file holds the JSONL file's rows: checked by pyarrow when available, and always
/// by `arbiter-columnar`'s reader.
fn same_rows(jsonl: &Path, parquet: &Path) {
    match pyarrow_python() {
        Some(python) => {
            let o = Command::new(python)
                .arg(fixture("same_rows.py"))
                .args([jsonl, parquet])
                .output()
                .unwrap();
            assert!(o.status.success(), "pyarrow: {}{}", stdout(&o), stderr(&o));
        }
        None => {
            assert!(
                std::env::var("ARBITER_REQUIRE_PYARROW").as_deref() != Ok("1"),
                "ARBITER_REQUIRE_PYARROW=1 but no venv with pyarrow (scripts/test-python.sh makes it)"
            );
            eprintln!("pyarrow not found (no test venv): checking with arbiter-columnar only");
        }
    }
    let want: Vec<Value> = std::fs::read_to_string(jsonl)
        .unwrap()
        .lines()
        .map(|l| drop_nulls(serde_json::from_str(l).unwrap()))
        .collect();
    let batches = arbiter_columnar::file::read(parquet, None).unwrap();
    let mut got = Vec::new();
    for b in &batches.batches {
        for i in 0..b.num_rows() {
            let row: serde_json::Map<String, Value> = b
                .schema()
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| {
                    (
                        f.name().clone(),
                        arbiter_columnar::value::cell(c.as_ref(), i).unwrap(),
                    )
                })
                .collect();
            got.push(drop_nulls(Value::Object(row)));
        }
    }
    assert_eq!(got, want, "{} vs {}", parquet.display(), jsonl.display());
}

fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .filter(|(_, v)| v.as_object().is_none_or(|o| !o.is_empty()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(drop_nulls).collect()),
        v => v,
    }
}

/// `agreement`, `aggregate` and `disagreement` on the CSV and on pyarrow's Parquet of the same
/// ratings (int64 items, dictionary raters, a nullable pool) give the same bytes.
#[test]
fn ratings_commands_agree_on_csv_and_parquet() {
    let dir = Dir::new("pq-ratings");
    let csv = fixture("ratings.csv");
    let pq = fixture("ratings.parquet");
    let agreement = |f: &Path| {
        stdout(&run(
            &dir,
            &[
                "agreement",
                "--format",
                "json",
                "--group",
                "pool",
                "--bootstrap",
                "50",
                s(f),
            ],
        ))
    };
    let a = agreement(&csv);
    assert!(a.contains("alpha"), "{a}");
    assert_eq!(a, agreement(&pq));
    let aggregate = |f: &Path| stdout(&run(&dir, &["aggregate", "--method", "ds", s(f)]));
    assert_eq!(aggregate(&csv), aggregate(&pq));
    let report = |f: &Path, out: &str| {
        run(
            &dir,
            &[
                "disagreement",
                "--group",
                "pool",
                "--bootstrap",
                "30",
                "--out",
                s(&dir.path(out)),
                s(f),
            ],
        );
        std::fs::read_to_string(dir.path(out).join("report.json")).unwrap()
    };
    let csv_report = report(&csv, "r-csv");
    let pq_report = report(&pq, "r-pq");
    assert_eq!(
        csv_report.replace("ratings.csv", "ratings.X"),
        pq_report.replace("ratings.parquet", "ratings.X")
    );
}

/// A bad Parquet input is an error naming the file, not a crash.
#[test]
fn a_damaged_parquet_file_is_an_error_naming_it() {
    let dir = Dir::new("pq-damaged");
    let bytes = std::fs::read(fixture("ratings.parquet")).unwrap();
    let cut = dir.path("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for args in [
        vec!["agreement", s(&cut)],
        vec!["rbr", "classify", s(&cut)],
        vec!["grade", "--grader", "openai:m@http://127.0.0.1:9", s(&cut)],
    ] {
        let o = common::arbiter_in(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("cut.parquet"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let o = common::arbiter_in(
        &dir,
        &[
            "agreement",
            "--label",
            "nope",
            s(&fixture("ratings.parquet")),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no column \"nope\""), "{}", stderr(&o));
}

/// `rbr fit`, `classify`, `score`, `metrics`, `eval` on the JSONL samples and pyarrow's Parquet of them print
/// the same bytes; classes and scores written as Parquet hold the JSONL rows.
#[test]
fn rbr_commands_agree_on_jsonl_and_parquet_samples() {
    let dir = Dir::new("pq-rbr");
    let jsonl = examples();
    let pq = fixture("conversations.parquet");
    let weights = dir.path("w.json");
    run(
        &dir,
        &[
            "rbr",
            "fit",
            "--steps",
            "50",
            "--out",
            s(&weights),
            s(&jsonl),
        ],
    );
    let weights_pq = dir.path("w-pq.json");
    run(
        &dir,
        &[
            "rbr",
            "fit",
            "--steps",
            "50",
            "--out",
            s(&weights_pq),
            s(&pq),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&weights).unwrap(),
        std::fs::read_to_string(&weights_pq).unwrap()
    );
    for cmd in [
        vec!["rbr", "classify"],
        vec!["rbr", "score", "--weights", s(&weights)],
        vec!["rbr", "metrics", "--format", "json", "--bootstrap", "50"],
        vec!["rbr", "eval", "--format", "json", "--weights", s(&weights)],
    ] {
        let out = |f: &Path| {
            let mut args = cmd.clone();
            args.push(s(f));
            stdout(&run(&dir, &args))
        };
        let a = out(&jsonl);
        assert!(!a.is_empty());
        assert_eq!(a, out(&pq), "{cmd:?}");
    }
    for (cmd, name) in [
        (vec!["rbr", "classify"], "classes"),
        (vec!["rbr", "score", "--weights", s(&weights)], "scores"),
    ] {
        let jsonl_out = dir.path(&format!("{name}.jsonl"));
        let pq_out = dir.path(&format!("{name}.parquet"));
        let pq_flag = dir.path(&format!("{name}-flag.out"));
        let mut a = cmd.clone();
        a.extend([s(&jsonl), "--out", s(&jsonl_out)]);
        run(&dir, &a);
        let mut b = cmd.clone();
        b.extend([s(&pq), "--out", s(&pq_out)]);
        run(&dir, &b);
        same_rows(&jsonl_out, &pq_out);
        let mut c = cmd.clone();
        c.extend([s(&jsonl), "--out", s(&pq_flag), "--format", "parquet"]);
        run(&dir, &c);
        assert_eq!(
            std::fs::read(&pq_flag).unwrap(),
            std::fs::read(&pq_out).unwrap()
        );
    }
    let o = common::arbiter_in(&dir, &["rbr", "classify", "--format", "parquet", s(&jsonl)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--out"), "{}", stderr(&o));
}

/// A grader whose P(yes) depends on the completion.
fn content_grader() -> ScriptedServer {
    ScriptedServer::start(
        |body| {
            let user = last_user_message(body);
            logprob_reply(0.05 + 0.9 * (user.len() % 7) as f64 / 7.0)
        },
        Duration::ZERO,
    )
    .unwrap()
}

/// `grade` on Parquet samples writes the grades of the JSONL samples; grades written as Parquet
/// hold the JSONL rows, feed `rbr classify --features` to the same classes, and Parquet shards
/// merge back to the unsharded JSONL byte for byte.
#[test]
fn grades_in_parquet_match_jsonl() {
    let dir = Dir::new("pq-grade");
    let server = content_grader();
    let spec = format!("openai:m@{}", server.base_url());
    let grade = |input: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "grade",
            "--grader",
            &spec,
            "--no-cache",
            s(input),
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        run(&dir, &args);
    };
    let jsonl = examples();
    let pq = fixture("conversations.parquet");
    let whole = dir.path("g.jsonl");
    grade(&jsonl, &whole, &[]);
    let from_pq = dir.path("g-from-pq.jsonl");
    grade(&pq, &from_pq, &[]);
    let whole_text = std::fs::read_to_string(&whole).unwrap();
    assert_eq!(whole_text, std::fs::read_to_string(&from_pq).unwrap());
    let whole_pq = dir.path("g.parquet");
    grade(&jsonl, &whole_pq, &["--batch-size", "7"]);
    same_rows(&whole, &whole_pq);

    let classify = |grades: &Path| {
        stdout(&run(
            &dir,
            &["rbr", "classify", "--features", s(grades), s(&jsonl)],
        ))
    };
    assert_eq!(classify(&whole), classify(&whole_pq));

    let mut shards = Vec::new();
    for i in 1..=3 {
        let p = dir.path(&format!("shard-{i}.parquet"));
        grade(&jsonl, &p, &["--shard", &format!("{i}/3")]);
        shards.push(p);
    }
    let merged = dir.path("merged.jsonl");
    let mut args = vec!["grade", "--out", s(&merged)];
    for p in &shards {
        args.extend(["--merge", s(p)]);
    }
    args.push(s(&jsonl));
    run(&dir, &args);
    assert_eq!(std::fs::read_to_string(&merged).unwrap(), whole_text);
    let merged_pq = dir.path("merged.parquet");
    args[2] = s(&merged_pq);
    run(&dir, &args);
    same_rows(&whole, &merged_pq);
}

/// `rbr run --format parquet` writes grades, classes and scores as Parquet with the rows of a
/// JSONL run.
#[test]
fn rbr_run_writes_parquet_outputs() {
    let dir = Dir::new("pq-run");
    let server = content_grader();
    let spec = format!("openai:m@{}", server.base_url());
    let jsonl = examples();
    let base = [
        "rbr",
        "run",
        "--grader",
        &spec,
        "--no-cache",
        "--steps",
        "30",
        "--bootstrap",
        "20",
    ];
    let a = dir.path("run-jsonl");
    let b = dir.path("run-pq");
    let mut args = base.to_vec();
    args.extend(["--out", s(&a), s(&jsonl)]);
    run(&dir, &args);
    let mut args = base.to_vec();
    args.extend(["--out", s(&b), "--format", "parquet", s(&jsonl)]);
    run(&dir, &args);
    for name in ["grades", "classes", "scores"] {
        same_rows(
            &a.join(format!("{name}.jsonl")),
            &b.join(format!("{name}.parquet")),
        );
    }
    assert_eq!(
        std::fs::read_to_string(a.join("weights.json")).unwrap(),
        std::fs::read_to_string(b.join("weights.json")).unwrap()
    );
}

/// A bad row fails the command naming file, row and field; `--skip-invalid` skips it.
#[test]
fn a_bad_row_is_named_by_file_row_and_field() {
    let dir = Dir::new("pq-bad-row");
    let text = std::fs::read_to_string(examples()).unwrap();
    let mut samples: Vec<arbiter_core::Sample> = text
        .lines()
        .take(3)
        .enumerate()
        .map(|(i, l)| {
            arbiter_core::Sample::from_value(serde_json::from_str(l).unwrap(), i).unwrap()
        })
        .collect();
    samples[2].id = samples[0].id.clone();
    let path = dir.path("dup.parquet");
    let table = arbiter_columnar::samples::to_batches(&samples, &path).unwrap();
    std::fs::write(
        &path,
        arbiter_columnar::file::write_table(Vec::new(), &path, table).unwrap(),
    )
    .unwrap();
    let o = common::arbiter_in(&dir, &["rbr", "classify", s(&path)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("dup.parquet: row 2: field `id`: duplicate id `ex-01` (first on row 0)"),
        "{}",
        stderr(&o)
    );
    let o = run(&dir, &["rbr", "classify", "--skip-invalid", s(&path)]);
    assert_eq!(stdout(&o).lines().count(), 2);
}
