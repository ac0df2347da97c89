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

/// [`pyarrow_python`], or `None` after saying what is skipped (`why`): an error instead under
/// `ARBITER_REQUIRE_PYARROW=1`, as CI runs these tests.
fn pyarrow_or_skip(why: &str) -> Option<PathBuf> {
    let python = pyarrow_python();
    if python.is_none() {
        assert!(
            std::env::var("ARBITER_REQUIRE_PYARROW").as_deref() != Ok("1"),
            "ARBITER_REQUIRE_PYARROW=1 but no venv with pyarrow"
        );
        eprintln!("pyarrow not found: {why}");
    }
    python
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

/// `aggregate --skills X.parquet` holds the `rater,skill` CSV's rows: the rater as text and the
/// skill as float64, row for row.
#[test]
fn aggregate_skills_as_parquet_equal_the_csv() {
    let dir = Dir::new("pq-skills");
    let ratings = fixture("ratings.csv");
    let (csv, pq) = (dir.path("skills.csv"), dir.path("skills.parquet"));
    for out in [&csv, &pq] {
        run(
            &dir,
            &[
                "aggregate",
                "--method",
                "ds",
                s(&ratings),
                "--skills",
                s(out),
            ],
        );
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("rater,skill"));
    let batches = arbiter_columnar::file::read(&pq, None).unwrap();
    let types: Vec<(String, String)> = batches
        .schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    assert_eq!(
        types,
        [
            ("rater".into(), "Utf8".into()),
            ("skill".into(), "Float64".into())
        ]
    );
    let mut n = 0;
    for b in &batches.batches {
        for i in 0..b.num_rows() {
            let (rater, skill) = lines
                .next()
                .expect("as many CSV rows")
                .split_once(',')
                .unwrap();
            let cell = |k: usize| arbiter_columnar::value::cell(b.column(k).as_ref(), i).unwrap();
            assert_eq!(cell(0), Value::String(rater.into()), "row {n}");
            assert_eq!(
                cell(1).as_f64().unwrap(),
                skill.parse::<f64>().unwrap(),
                "row {n}"
            );
            n += 1;
        }
    }
    assert!(lines.next().is_none(), "the CSV has more rows");
    assert!(n >= 3, "{n} raters");
}

/// `aggregate --out X.parquet` (and `--format parquet`) holds the CSV's rows: the item as text,
/// the label, and `p_LABEL` float64 columns equal to the CSV's numbers; the CSV itself is what
/// standard output prints.
#[test]
fn aggregate_writes_the_csv_rows_as_parquet() {
    let dir = Dir::new("pq-aggregate");
    let ratings = fixture("ratings.csv");
    let csv = dir.path("labels.csv");
    let pq = dir.path("labels.parquet");
    let flag = dir.path("labels.out");
    let base = ["aggregate", "--method", "ds", s(&ratings)];
    let printed = stdout(&run(&dir, &base));
    run(&dir, &[&base[..], &["--out", s(&csv)]].concat());
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), printed);
    run(&dir, &[&base[..], &["--out", s(&pq)]].concat());
    run(
        &dir,
        &[&base[..], &["--out", s(&flag), "--format", "parquet"]].concat(),
    );
    assert_eq!(std::fs::read(&flag).unwrap(), std::fs::read(&pq).unwrap());

    let mut lines = printed.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..2], ["item", "label"]);
    let batches = arbiter_columnar::file::read(&pq, None).unwrap();
    let names: Vec<&str> = batches
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, header);
    let types: Vec<String> = batches
        .schema
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    assert_eq!(types[..2], ["Utf8", "Utf8"]);
    assert!(types[2..].iter().all(|t| t == "Float64"), "{types:?}");
    let mut n = 0;
    for b in &batches.batches {
        for i in 0..b.num_rows() {
            let csv_row: Vec<&str> = lines.next().expect("as many CSV rows").split(',').collect();
            let cell = |k: usize| arbiter_columnar::value::cell(b.column(k).as_ref(), i).unwrap();
            assert_eq!(cell(0), Value::String(csv_row[0].into()), "row {n}");
            assert_eq!(cell(1), Value::String(csv_row[1].into()), "row {n}");
            for (k, text) in csv_row.iter().enumerate().skip(2) {
                assert_eq!(
                    cell(k).as_f64().unwrap(),
                    text.parse::<f64>().unwrap(),
                    "row {n}, {}",
                    header[k]
                );
            }
            n += 1;
        }
    }
    assert!(
        lines.next().is_none(),
        "the CSV has more rows than the Parquet file"
    );
    assert!(n > 50, "{n} rows");
    // The same rows through pyarrow (and serde_json): the CSV as JSONL objects.
    let as_jsonl = dir.path("labels.jsonl");
    let objects: String = printed
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let mut row = serde_json::Map::new();
            row.insert("item".into(), cells[0].into());
            row.insert("label".into(), cells[1].into());
            for (k, text) in cells.iter().enumerate().skip(2) {
                row.insert(header[k].into(), text.parse::<f64>().unwrap().into());
            }
            format!("{}\n", Value::Object(row))
        })
        .collect();
    std::fs::write(&as_jsonl, objects).unwrap();
    same_rows(&as_jsonl, &pq);

    let o = common::arbiter_in(&dir, &[&base[..], &["--format", "parquet"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--out"), "{}", stderr(&o));
    let o = common::arbiter_in(
        &dir,
        &[&base[..], &["--format", "csv", "--out", s(&pq)]].concat(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ends in .parquet"), "{}", stderr(&o));
}

/// `rbr select --out X.parquet` (and `--out-format parquet`) holds the JSONL picks row for row.
#[test]
fn select_writes_the_jsonl_picks_as_parquet() {
    let dir = Dir::new("pq-select");
    let samples = examples();
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
            s(&samples),
        ],
    );
    let base = [
        "rbr",
        "select",
        "--weights",
        s(&weights),
        "--group-by",
        "category",
        "--bootstrap",
        "20",
        s(&samples),
    ];
    let jsonl = dir.path("picks.jsonl");
    let pq = dir.path("picks.parquet");
    let flag = dir.path("picks.out");
    let report = stdout(&run(&dir, &[&base[..], &["--out", s(&jsonl)]].concat()));
    assert!(
        std::fs::read_to_string(&jsonl).unwrap().lines().count() >= 2,
        "too few groups to compare"
    );
    assert_eq!(
        stdout(&run(&dir, &[&base[..], &["--out", s(&pq)]].concat())),
        report
    );
    same_rows(&jsonl, &pq);
    run(
        &dir,
        &[&base[..], &["--out", s(&flag), "--out-format", "parquet"]].concat(),
    );
    assert_eq!(std::fs::read(&flag).unwrap(), std::fs::read(&pq).unwrap());
    let o = common::arbiter_in(&dir, &[&base[..], &["--out-format", "parquet"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--out"), "{}", stderr(&o));
}

/// A BBQ suite of two datasets (the `bbq` format and Arbiter's own `jsonl` format).
fn write_eval_suite(dir: &Dir, name: &str, ext: &str) -> PathBuf {
    let path = dir.path(name);
    std::fs::write(
        &path,
        format!(
            "name = \"mini-bbq\"\nkind = \"bbq\"\n[[datasets]]\nformat = \"bbq\"\npath = {:?}\n[[datasets]]\nformat = \"jsonl\"\npath = {:?}\n[solver]\nmax_tokens = 8\n",
            s(&fixture(&format!("bbq.{ext}"))),
            s(&fixture(&format!("own.{ext}"))),
        ),
    )
    .unwrap();
    path
}

fn eval_run(dir: &Dir, suite: &Path, model: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "eval",
        "run",
        "--suite",
        s(suite),
        "--model",
        model,
        "--no-cache",
        // One request at a time: the log is in the order replies arrive.
        "--concurrency",
        "1",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    common::arbiter_in(dir, &args)
}

/// The export's rows as JSON objects, `request` and `scores` parsed back from their JSON text.
fn export_rows(path: &Path) -> (Vec<Value>, std::collections::HashMap<String, String>) {
    let batches = arbiter_columnar::file::read(path, None).unwrap();
    let mut rows = Vec::new();
    for b in &batches.batches {
        for i in 0..b.num_rows() {
            let mut row = serde_json::Map::new();
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                let mut v = arbiter_columnar::value::cell(c.as_ref(), i).unwrap();
                if ["request", "scores"].contains(&f.name().as_str())
                    && let Value::String(text) = &v
                {
                    v = serde_json::from_str(text).unwrap();
                }
                row.insert(f.name().clone(), v);
            }
            rows.push(Value::Object(row));
        }
    }
    (rows, batches.schema.metadata().clone().into())
}

/// What the export should hold for one log line.
fn expected_export_row(line: &Value) -> Value {
    let or_null = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
    serde_json::json!({
        "sample_id": line["sample_id"],
        "epoch": line["epoch"],
        "status": line["status"],
        "technique": or_null(line["request"].get("technique")),
        "category": or_null(line["request"].pointer("/sample/category")),
        "response": or_null(line.get("response")),
        "prompt_tokens": line["usage"]["prompt_tokens"],
        "completion_tokens": line["usage"]["completion_tokens"],
        "cache_hit": line["cache_hit"],
        "error": or_null(line.get("error")),
        "scores": line["scores"],
        "request": line["request"],
    })
}

/// pyarrow (an independent reader) finds `want` in the export, `request` and `scores` parsed
/// from their JSON text, and `partial` under `arbiter.partial` in the file's metadata; skipped
/// without the test venv unless `ARBITER_REQUIRE_PYARROW=1`.
fn pyarrow_reads_export(dir: &Dir, export: &Path, want: &[Value], partial: &str) {
    let Some(python) = pyarrow_or_skip("the export is read back by arbiter-columnar only") else {
        return;
    };
    let expected = dir.path("export-expected.json");
    std::fs::write(&expected, Value::Array(want.to_vec()).to_string()).unwrap();
    let script = "import json, sys, pyarrow.parquet as pq\n\
        rows = pq.read_table(sys.argv[1]).to_pylist()\n\
        for r in rows:\n    r['request'], r['scores'] = json.loads(r['request']), json.loads(r['scores'])\n\
        want = json.load(open(sys.argv[2]))\n\
        assert rows == want, (rows[:1], want[:1])\n\
        meta = pq.read_metadata(sys.argv[1]).metadata\n\
        assert meta[b'arbiter.partial'] == sys.argv[3].encode(), meta\n";
    let o = Command::new(python)
        .args(["-c", script, s(export), s(&expected), partial])
        .output()
        .unwrap();
    assert!(o.status.success(), "pyarrow: {}{}", stdout(&o), stderr(&o));
}

/// An eval suite read from pyarrow's Parquet gives the run of the same suite read from JSONL
/// (the same log, byte for byte, and the same summary); `eval export` writes the log's rows as
/// Parquet, marked partial for a shard and for a run whose log is short of its summary.
#[test]
fn eval_datasets_in_parquet_and_the_export_of_a_run() {
    let dir = Dir::new("pq-eval");
    let model = ScriptedServer::start(|_| arbiter_testkit::Reply::Text("A".into()), Duration::ZERO)
        .unwrap();
    let spec = format!("openai:m@{}", model.base_url());
    let from_jsonl = dir.path("run-jsonl");
    let from_pq = dir.path("run-pq");
    let o = eval_run(
        &dir,
        &write_eval_suite(&dir, "j.toml", "jsonl"),
        &spec,
        &from_jsonl,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let pq_suite = write_eval_suite(&dir, "p.toml", "parquet");
    let o = eval_run(&dir, &pq_suite, &spec, &from_pq, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(from_jsonl.join("samples.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 12);
    assert_eq!(
        std::fs::read_to_string(from_pq.join("samples.jsonl")).unwrap(),
        log
    );
    assert_eq!(
        std::fs::read_to_string(from_pq.join("summary.json")).unwrap(),
        std::fs::read_to_string(from_jsonl.join("summary.json")).unwrap()
    );

    let export = dir.path("samples.parquet");
    let o = common::arbiter_in(&dir, &["eval", "export", s(&from_pq), "--out", s(&export)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("partial"), "{}", stderr(&o));
    let (rows, meta) = export_rows(&export);
    let want: Vec<Value> = log
        .lines()
        .map(|l| expected_export_row(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(rows, want);
    assert_eq!(
        meta.get("arbiter.partial").map(String::as_str),
        Some("false")
    );
    assert!(meta["arbiter.run"].contains("mini-bbq"), "{meta:?}");
    pyarrow_reads_export(&dir, &export, &want, "false");

    // A log cut short of the summary (a later invocation killed) is partial.
    let cut = dir.path("run-cut");
    std::fs::create_dir_all(&cut).unwrap();
    for f in ["run.json", "summary.json"] {
        std::fs::copy(from_pq.join(f), cut.join(f)).unwrap();
    }
    let first_lines: String = log.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(cut.join("samples.jsonl"), first_lines).unwrap();
    let cut_export = dir.path("cut.parquet");
    let o = common::arbiter_in(&dir, &["eval", "export", s(&cut), "--out", s(&cut_export)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("partial run"), "{}", stderr(&o));
    let (rows, meta) = export_rows(&cut_export);
    assert_eq!(rows, want[..5]);
    assert_eq!(
        meta.get("arbiter.partial").map(String::as_str),
        Some("true")
    );
    assert!(meta.contains_key("arbiter.partial_reason"), "{meta:?}");
    pyarrow_reads_export(&dir, &cut_export, &want[..5], "true");

    // A shard is partial.
    let shard = dir.path("run-shard");
    let o = eval_run(&dir, &pq_suite, &spec, &shard, &["--shard", "1/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shard_export = dir.path("shard.parquet");
    let o = common::arbiter_in(
        &dir,
        &["eval", "export", s(&shard), "--out", s(&shard_export)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("shard 1/2"), "{}", stderr(&o));
    let (_, meta) = export_rows(&shard_export);
    assert_eq!(
        meta.get("arbiter.partial").map(String::as_str),
        Some("true")
    );

    let o = common::arbiter_in(
        &dir,
        &[
            "eval",
            "export",
            s(&from_pq),
            "--out",
            s(&dir.path("x.jsonl")),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("*.parquet"), "{}", stderr(&o));
}

/// A bad row of a Parquet eval dataset is named by file, row and field; a truncated or damaged
/// file (every cut point, and seeded byte flips) is an error naming it or, for damage the format
/// cannot notice, a dataset read; never a panic.
#[test]
fn a_damaged_parquet_eval_dataset_is_an_error_not_a_panic() {
    let dir = Dir::new("pq-eval-damaged");
    let spec = "openai:m@http://127.0.0.1:9";
    let bytes = std::fs::read(fixture("own.parquet")).unwrap();
    let check = |name: &str, data: &[u8]| {
        let path = dir.path(name);
        std::fs::write(&path, data).unwrap();
        let suite = dir.path("s.toml");
        std::fs::write(
            &suite,
            format!(
                "name = \"d\"\nkind = \"bbq\"\n[[datasets]]\nformat = \"jsonl\"\npath = {:?}\n",
                s(&path)
            ),
        )
        .unwrap();
        let o = eval_run(
            &dir,
            &suite,
            spec,
            &dir.path("run"),
            &["--max-retries", "0", "--timeout", "1"],
        );
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{name}: {err}");
        err
    };
    for cut in (0..bytes.len()).step_by(bytes.len() / 40 + 1) {
        let err = check("cut.parquet", &bytes[..cut]);
        assert!(err.contains("cut.parquet"), "cut at {cut}: {err}");
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..40 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % damaged.len() as u64) as usize;
            damaged[at] = next() as u8;
        }
        check("flipped.parquet", &damaged);
    }

    let text = std::fs::read_to_string(fixture("own.jsonl")).unwrap();
    let mut rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows[2]["target"]["label"] = serde_json::json!(7);
    let bad_jsonl = dir.path("bad.jsonl");
    std::fs::write(
        &bad_jsonl,
        rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
    )
    .unwrap();
    let Some(python) = pyarrow_or_skip("the bad-row case needs it to write the Parquet file")
    else {
        return;
    };
    let bad = dir.path("bad.parquet");
    let o = Command::new(python)
        .args([
            "-c",
            "import json,sys,pyarrow as pa,pyarrow.parquet as pq; pq.write_table(pa.Table.from_pylist([json.loads(l) for l in open(sys.argv[1])]), sys.argv[2])",
            s(&bad_jsonl),
            s(&bad),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = check("bad.parquet", &std::fs::read(&bad).unwrap());
    assert!(err.contains("bad.parquet: row 2: field `target`"), "{err}");
}

/// The samples of a one-dataset suite in `format` read from `path`.
fn load_one(format: &str, path: &Path) -> Result<Vec<arbiter_evals::dataset::EvalSample>, String> {
    let text = format!(
        "name = \"one\"\nkind = \"refusal\"\n[[datasets]]\nformat = \"{format}\"\npath = {:?}\n",
        s(path)
    );
    let suite = arbiter_evals::suite::Suite::from_toml_str(&text, "one.toml").unwrap();
    suite.load(Path::new(".")).map_err(|e| e.to_string())
}

/// The CSV formats read from pyarrow's Parquet of the CSV (numbers typed, empty cells null) give
/// the CSV's samples, ids included: files without ids number their records, so quoted fields
/// spanning lines (in every fixture but xstest's) move no id. An `eval run` over the refusal
/// formats logs the same bytes from either.
#[test]
fn csv_format_datasets_read_the_same_from_parquet() {
    let mut ids = Vec::new();
    for format in ["xstest", "harmbench", "strongreject", "simpleqa"] {
        let from_csv = load_one(format, &fixture(&format!("{format}.csv"))).unwrap();
        let from_pq = load_one(format, &fixture(&format!("{format}.parquet"))).unwrap();
        assert_eq!(from_pq, from_csv, "{format}");
        ids.extend(from_csv.into_iter().map(|r| r.id));
    }
    assert_eq!(
        ids,
        [
            "xstest-1",
            "xstest-2",
            "xstest-26",
            "harmbench-hb_one",
            "harmbench-hb_two",
            "strongreject-1",
            "strongreject-2",
            "strongreject-3",
            "simpleqa-1",
            "simpleqa-2",
        ]
    );

    let dir = Dir::new("pq-eval-csv-formats");
    let model = ScriptedServer::start(
        |_| arbiter_testkit::Reply::Text("I can't help with that.".into()),
        Duration::ZERO,
    )
    .unwrap();
    let spec = format!("openai:m@{}", model.base_url());
    let grader = ScriptedServer::start(|_| logprob_reply(0.2), Duration::ZERO).unwrap();
    let grader_spec = format!("openai:g@{}", grader.base_url());
    let mut logs = Vec::new();
    for ext in ["csv", "parquet"] {
        let mut suite = String::from("name = \"mini-refusal\"\nkind = \"refusal\"\n");
        for format in ["xstest", "harmbench", "strongreject"] {
            suite += &format!(
                "[[datasets]]\nformat = \"{format}\"\npath = {:?}\n",
                s(&fixture(&format!("{format}.{ext}")))
            );
        }
        let suite_path = dir.write(&format!("{ext}.toml"), &suite);
        let out = dir.path(&format!("run-{ext}"));
        let o = eval_run(&dir, &suite_path, &spec, &out, &["--grader", &grader_spec]);
        assert!(o.status.success(), "{ext}: {}", stderr(&o));
        logs.push(std::fs::read_to_string(out.join("samples.jsonl")).unwrap());
    }
    assert_eq!(logs[0].lines().count(), 8);
    assert_eq!(logs[1], logs[0]);
}

/// A Parquet file without a column its CSV format needs, or with a list where the format reads
/// text, is an error naming the file, the 0-based row and the column.
#[test]
fn a_parquet_file_short_of_a_csv_formats_column_is_named() {
    let err = load_one("strongreject", &fixture("xstest.parquet")).unwrap_err();
    assert!(
        err.contains(
            "xstest.parquet: row 0: field `forbidden_prompt`: column missing from the file"
        ),
        "{err}"
    );
    let Some(python) = pyarrow_or_skip("the list-column case needs it to write the Parquet file")
    else {
        return;
    };
    let dir = Dir::new("pq-csv-format-bad");
    let bad = dir.path("bad.parquet");
    let o = Command::new(python)
        .args([
            "-c",
            "import sys,pyarrow as pa,pyarrow.parquet as pq; pq.write_table(pa.table({'category': ['a', 'b'], 'source': ['s', 's'], 'forbidden_prompt': [['x'], ['y']]}), sys.argv[1])",
            s(&bad),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = load_one("strongreject", &bad).unwrap_err();
    assert!(
        err.contains("bad.parquet: row 0: field `forbidden_prompt`: expected text, found a list"),
        "{err}"
    );
}

/// Every shared dataset in a CSV format, converted by pyarrow to Parquet, reads to the CSV's
/// samples (the shared files have quoted fields spanning lines: 82 HarmBench, 2 StrongREJECT and
/// 6 SimpleQA records). Needs the shared data and pyarrow; CI has both.
#[test]
fn shared_csv_datasets_read_the_same_from_their_parquet() {
    let Some(data) = arbiter_testkit::shared_data("evals") else {
        return;
    };
    let Some(python) = pyarrow_or_skip("skipping the shared datasets' Parquet") else {
        return;
    };
    let dir = Dir::new("pq-shared-csv");
    let files = [
        ("xstest", "xstest/xstest_prompts.csv", 450),
        (
            "harmbench",
            "harmbench/harmbench_behaviors_text_all.csv",
            400,
        ),
        ("strongreject", "strongreject/strongreject_dataset.csv", 313),
        ("simpleqa", "simpleqa/simple_qa_test_set.csv", 4326),
    ];
    for (format, rel, count) in files {
        let csv = data.join(rel);
        let parquet = dir.path(&format!("{format}.parquet"));
        let o = Command::new(&python)
            .args([
                "-c",
                "import sys, pyarrow.csv as c, pyarrow.parquet as pq\n\
                 t = c.read_csv(sys.argv[1], parse_options=c.ParseOptions(newlines_in_values=True), convert_options=c.ConvertOptions(strings_can_be_null=True))\n\
                 pq.write_table(t, sys.argv[2])",
                s(&csv),
                s(&parquet),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let from_csv = load_one(format, &csv).unwrap();
        assert_eq!(from_csv.len(), count, "{format}");
        assert_eq!(load_one(format, &parquet).unwrap(), from_csv, "{format}");
    }
}
