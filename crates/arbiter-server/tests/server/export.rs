//! Exports: Parquet beside JSONL and CSV, with the same rows and columns, read back with the
//! `parquet` crate's reader and checked against what pyarrow read from the same bytes.

use std::path::PathBuf;

use arbiter_server::db::{LabelRow, Pool};
use arbiter_server::report;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::helpers::*;

/// Reads a Parquet file with the `parquet` crate: (column names, rows as JSON objects).
pub fn read_parquet(bytes: Vec<u8>) -> (Vec<String>, Vec<Value>) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).expect("a Parquet file");
    let schema = reader.metadata().file_metadata().schema_descr();
    let names: Vec<String> = schema
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .expect("row iterator")
        .map(|row| {
            let row = row.expect("row");
            let mut obj = Map::new();
            for (name, field) in row.get_column_iter() {
                let v = match field {
                    Field::Str(s) => json!(s),
                    Field::Long(n) => json!(n),
                    other => panic!("unexpected Parquet value {other:?} in column {name}"),
                };
                obj.insert(name.clone(), v);
            }
            Value::Object(obj)
        })
        .collect();
    (names, rows)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Fixed rows: commas, quotes, a newline, non-ASCII text, an empty rationale, a rater without
/// pool, and a skip (which is not exported).
fn fixed_rows() -> (Vec<Pool>, Vec<LabelRow>) {
    let pools = vec![
        Pool {
            id: 1,
            name: "lgbtq".into(),
            rule_question: None,
            rule_answer: None,
        },
        Pool {
            id: 2,
            name: "control".into(),
            rule_question: None,
            rule_answer: None,
        },
    ];
    let row =
        |item: &str, rater: &str, pool, label: Option<&str>, rationale: Option<&str>, v, ms| {
            LabelRow {
                item_id: 0,
                external_id: item.into(),
                rater_id: 0,
                pseudonym: rater.into(),
                pool_id: pool,
                label: label.map(str::to_string),
                rationale: rationale.map(str::to_string),
                instructions_version: v,
                duration_ms: ms,
                submitted_at: 0,
                gold_label: None,
            }
        };
    let rows = vec![
        row(
            "i1",
            "r-0a1b2c",
            Some(1),
            Some("toxic"),
            Some("slur, \"quoted\""),
            1,
            1500,
        ),
        row("i1", "r-3d4e5f", Some(2), Some("not toxic"), None, 1, 2200),
        row(
            "i2",
            "r-0a1b2c",
            Some(1),
            Some("not toxic"),
            Some("two\nlines"),
            2,
            0,
        ),
        row("i2", "r-3d4e5f", Some(2), None, None, 2, 900),
        row(
            "i3 ünïcødé",
            "r-777777",
            None,
            Some("[\"a\",\"c\"]"),
            Some("日本語"),
            2,
            123_456_789_012,
        ),
    ];
    (pools, rows)
}

/// The writer's bytes for fixed rows equal the stored fixture, which pyarrow read into
/// `export.pyarrow.json` (made by `tests/fixtures/export_pyarrow.py`); the `parquet` crate's
/// reader gives back the same rows as pyarrow and as the JSONL export.
#[test]
fn parquet_export_matches_the_pyarrow_fixture() {
    let (pools, rows) = fixed_rows();
    let shape: Vec<(i64, String, bool)> = pools
        .iter()
        .map(|p| (p.id, p.name.clone(), p.rule_question.is_some()))
        .collect();
    let pools = arbiter_server::release::pool_classes(5, &shape, &Default::default());
    let bytes = report::export("parquet", &pools, &rows).expect("parquet");
    let stored = fixture("export.parquet");
    if std::env::var("ARBITER_UPDATE_FIXTURES").as_deref() == Ok("1") {
        std::fs::write(&stored, &bytes).expect("write fixture");
        eprintln!(
            "wrote {}; now run tests/fixtures/export_pyarrow.py to refresh export.pyarrow.json",
            stored.display()
        );
    }
    let expected_bytes = std::fs::read(&stored).expect("fixture export.parquet");
    assert!(
        bytes == expected_bytes,
        "the Parquet writer's output changed; if that is intended, run with ARBITER_UPDATE_FIXTURES=1 and re-run tests/fixtures/export_pyarrow.py (pyarrow) to check and refresh export.pyarrow.json"
    );
    let pyarrow: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("export.pyarrow.json")).expect("pyarrow fixture"),
    )
    .expect("json");
    let (names, parsed) = read_parquet(bytes);
    let py_names: Vec<&str> = pyarrow["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, py_names);
    assert_eq!(
        pyarrow["schema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "string", "string", "string", "string", "string", "int64", "int64"
        ],
        "pyarrow reads strings as UTF-8 text and counts as int64"
    );
    assert_eq!(
        Value::Array(parsed.clone()),
        pyarrow["rows"],
        "parquet crate vs pyarrow"
    );
    let jsonl = report::export("jsonl", &pools, &rows).expect("jsonl");
    let from_jsonl: Vec<Value> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, from_jsonl, "Parquet and JSONL carry the same rows");
    assert_eq!(parsed.len(), 4, "the skip is not exported");
    let csv = String::from_utf8(report::export("csv", &pools, &rows).unwrap()).unwrap();
    assert_eq!(
        csv.lines().next().unwrap().split(',').collect::<Vec<_>>(),
        names,
        "CSV header = Parquet columns"
    );
    // An empty export is still a readable file.
    let (names, none) = read_parquet(report::export("parquet", &pools, &[]).unwrap());
    assert_eq!((names.len(), none.len()), (7, 0));
}

async fn download(app: &TestApp, project: i64, format: &str) -> (String, Vec<u8>) {
    let res = app
        .client
        .get(app.url(&format!("/api/projects/{project}/export?format={format}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{format}");
    let mime = res.headers()["content-type"].to_str().unwrap().to_string();
    (mime, res.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn parquet_download_has_the_jsonl_rows_without_withdrawn_raters() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(spec(json!({ "overlap_per_pool": 5 })), &items(3, &[]))
            .await;
        let code = app.invite(p, None, 3).await;
        let a = app.ready_rater(&code, json!({ "lgbtq": "yes" })).await;
        let b = app.ready_rater(&code, json!({ "lgbtq": "no" })).await;
        let gone = app.ready_rater(&code, json!({ "lgbtq": "no" })).await;
        for r in [&a, &b, &gone] {
            r.label_next(json!("toxic")).await.unwrap();
        }
        let (_, n) = a.get("/api/next").await;
        a.post(
            "/api/annotations",
            json!({ "item_id": n["item"]["id"], "label": "not toxic", "rationale": "a \"quoted\", reason" }),
        )
        .await;
        assert_eq!(
            gone.post("/api/withdraw", json!({})).await.0,
            StatusCode::OK
        );

        let (mime, bytes) = download(&app, p, "parquet").await;
        assert_eq!(mime, "application/vnd.apache.parquet");
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
        let (names, rows) = read_parquet(bytes);
        assert_eq!(
            names,
            [
                "item",
                "rater",
                "pool",
                "label",
                "rationale",
                "instructions_version",
                "duration_ms"
            ]
        );
        let (_, jsonl) = download(&app, p, "jsonl").await;
        let expected: Vec<Value> = String::from_utf8(jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows, expected);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let text = serde_json::to_string(&rows).unwrap();
        assert!(!text.contains(&gone.pseudonym), "withdrawn rater exported");
        assert!(text.contains(&a.pseudonym) && text.contains(&b.pseudonym));
        assert_eq!(
            rows[0]["pool"],
            arbiter_server::release::WITHHELD_POOLS,
            "two raters left: no pool is named"
        );
        let res = app
            .client
            .get(app.url(&format!("/api/projects/{p}/export?format=xlsx")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
}
