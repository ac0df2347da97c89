//! Property tests: records written as Parquet read back as the same values (and, for ratings,
//! as the same table the JSONL reader builds from the same values); random, truncated and
//! damaged files are errors, never panics.

use std::path::Path;
use std::sync::Arc;

use arbiter_columnar::{file, grades, ratings, rows, samples};
use arbiter_core::{GradeFlag, GradeRecord, Sample, SampleId};
use arbiter_ratings::{Columns, Options};
use arbiter_rbr::pipeline::{ClassProbs, ClassRow, ScoreRow};
use arbiter_testkit::TempDir;
use arrow_array::builder::{StringDictionaryBuilder, StringViewBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use proptest::prelude::*;
use serde_json::{Value, json};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,12}",
        "\\PC{0,20}",
        Just(String::new()),
        Just("line\nbreak \"quoted\" \\ é 🦀".to_string()),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(|x| json!(x)),
        text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A sample as a JSONL line would hold it.
fn sample_json(numeric_id: bool) -> impl Strategy<Value = Value> {
    let message = |roles: &'static [&'static str]| {
        (prop::sample::select(roles), text())
            .prop_map(|(role, content)| json!({"role": role, "content": content}))
    };
    (
        any::<u32>(),
        prop::collection::vec(message(&["system", "user", "assistant", "tool"]), 0..3),
        text(),
        prop_oneof![Just(None), text().prop_map(Some)],
        prop::option::of(prop::sample::select(vec![
            "hard_refuse",
            "safe_refuse_1",
            "safe_refuse_2",
            "comply",
        ])),
        prop::option::of(text()),
        prop::collection::btree_map("[a-z_]{1,8}", any::<bool>(), 0..4),
        prop::collection::vec(("[a-z]{1,6}", json_value()), 0..3),
    )
        .prop_map(
            move |(id, mut prompt, last, completion, rt, category, labels, meta)| {
                prompt.push(json!({"role": "user", "content": last}));
                let mut v = json!({
                    "id": if numeric_id { json!(id) } else { json!(format!("s{id}")) },
                    "prompt": prompt,
                    "completion": match completion {
                        Some(c) => json!(c),
                        None => json!([{"role": "assistant", "content": "ok"}]),
                    },
                });
                if let Some(rt) = rt {
                    v["response_type"] = json!(rt);
                }
                if let Some(c) = category {
                    v["category"] = json!(c);
                }
                if !labels.is_empty() {
                    v["propositions"] = json!(labels);
                }
                if !meta.is_empty() {
                    v["metadata"] = Value::Object(meta.into_iter().collect());
                }
                v
            },
        )
}

fn write(dir: &TempDir, name: &str, table: arbiter_columnar::Table) -> std::path::PathBuf {
    let path = dir.path(name);
    let bytes = file::write_table(Vec::new(), &path, table).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// JSONL sample lines → samples → Parquet → the same samples, at their rows.
    #[test]
    fn samples_round_trip(lines in any::<bool>().prop_flat_map(|numeric| prop::collection::vec(sample_json(numeric), 1..12))) {
        let dir = TempDir::new("samples-rt");
        // Ids made unique as the readers require.
        let parsed: Vec<Sample> = lines
            .into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                v["id"] = match &v["id"] {
                    Value::String(s) => json!(format!("{s}-{i}")),
                    _ => json!(i),
                };
                let line = v.to_string();
                Sample::from_value(serde_json::from_str(&line).unwrap(), i).unwrap()
            })
            .collect();
        let path = dir.path("s.parquet");
        let table = samples::to_batches(&parsed, &path).unwrap();
        let path = write(&dir, "s.parquet", table);
        let back = samples::read(&path).unwrap();
        prop_assert_eq!(back.len(), parsed.len());
        for (i, (row, want)) in back.into_iter().zip(&parsed).enumerate() {
            prop_assert_eq!(row.row, i);
            prop_assert_eq!(&row.record.unwrap(), want);
        }
    }

    /// Grades (probabilities anywhere in [0, 1], flags, failed cells) survive the round trip.
    #[test]
    fn grades_round_trip(
        numeric in any::<bool>(),
        cells in prop::collection::vec(
            prop::collection::btree_map(
                prop::sample::select(vec!["apology", "judgement", "threat", "x y"]),
                (prop::option::of(0.0f64..=1.0), prop::option::of(prop::sample::select(vec![
                    GradeFlag::LowMass, GradeFlag::NoLabelToken, GradeFlag::ParsedTextFallback, GradeFlag::Error,
                ]))),
                1..4,
            ),
            1..20,
        ),
    ) {
        let records: Vec<GradeRecord> = cells
            .into_iter()
            .enumerate()
            .map(|(i, cells)| GradeRecord {
                id: if numeric { SampleId::Index(i as u64 * 7) } else { SampleId::Name(format!("id-{i}")) },
                propositions: cells.iter().filter_map(|(n, (p, _))| p.map(|p| (n.to_string(), p))).collect(),
                flags: cells.iter().filter_map(|(n, (_, f))| f.map(|f| (n.to_string(), f))).collect(),
            })
            .collect();
        let dir = TempDir::new("grades-rt");
        let path = dir.path("g.parquet");
        let table = grades::to_batches(&records, &path);
        let Ok(table) = table else {
            // Only a file naming no proposition at all is refused.
            prop_assert!(records.iter().all(|r| r.propositions.is_empty() && r.flags.is_empty()));
            return Ok(());
        };
        let path = write(&dir, "g.parquet", table);
        let back: Vec<GradeRecord> = grades::read(&path).unwrap().into_iter().map(|r| r.record.unwrap()).collect();
        prop_assert_eq!(back, records);
    }

    /// Score and class rows: every value written reads back as the JSON line's value.
    #[test]
    fn scores_and_classes_round_trip(values in prop::collection::vec((any::<u16>(), -1e6f64..1e6, -1e3f64..1e3, 0.0f64..=1.0), 1..30)) {
        let scores: Vec<ScoreRow> = values.iter().enumerate().map(|(i, (id, r, b, _))| ScoreRow {
            id: SampleId::Name(format!("{id}-{i}")),
            response_type: arbiter_core::ResponseType::ALL[i % 4],
            class: format!("class{}", id % 3),
            reward: r + b,
            rbr_reward: *r,
            base_reward: *b,
        }).collect();
        let classes: Vec<ClassRow> = values.iter().enumerate().map(|(i, (_, _, _, p))| ClassRow {
            id: SampleId::Index(i as u64),
            response_type: arbiter_core::ResponseType::ALL[i % 4],
            class: "ideal".into(),
            class_probs: ClassProbs(vec![("ideal".into(), *p), ("bad".into(), 1.0 - p)]),
        }).collect();
        let dir = TempDir::new("rows-rt");
        let sp = dir.path("s.parquet");
        let cp = dir.path("c.parquet");
        let sp = write(&dir, "s.parquet", rows::scores_to_batches(&scores, &sp).unwrap());
        let cp = write(&dir, "c.parquet", rows::classes_to_batches(&classes, &cp).unwrap());
        prop_assert_eq!(json_rows(&sp), scores.iter().map(|r| serde_json::to_value(r).unwrap()).collect::<Vec<_>>());
        prop_assert_eq!(json_rows(&cp), classes.iter().map(|r| serde_json::to_value(r).unwrap()).collect::<Vec<_>>());
    }

    /// Ratings read from typed columns give the table (and the bad rows) the JSONL reader
    /// gives the same values.
    #[test]
    fn ratings_equal_the_jsonl_reader(
        rows in prop::collection::vec((0u8..20, 0u8..6, 0u8..4, prop::option::of(0u8..3)), 1..80),
        item_type in 0usize..5,
        label_type in 0usize..5,
    ) {
        let n = rows.len();
        let item_text: Vec<String> = rows.iter().map(|r| format!("{}", r.0)).collect();
        let rater_text: Vec<String> = rows.iter().map(|r| format!("r{}", r.1)).collect();
        // Label 3 is an empty (bad) value for string labels.
        let (item, item_json): (ArrayRef, Vec<Value>) = match item_type {
            0 => (Arc::new(StringArray::from(item_text.clone())), item_text.iter().map(|s| json!(s)).collect()),
            1 => (Arc::new(LargeStringArray::from(item_text.clone())), item_text.iter().map(|s| json!(s)).collect()),
            2 => {
                let mut b = StringViewBuilder::new();
                for s in &item_text { b.append_value(s); }
                (Arc::new(b.finish()), item_text.iter().map(|s| json!(s)).collect())
            }
            3 => {
                let mut b = StringDictionaryBuilder::<Int32Type>::new();
                for s in &item_text { b.append_value(s); }
                (Arc::new(b.finish()), item_text.iter().map(|s| json!(s)).collect())
            }
            _ => (Arc::new(Int64Array::from(rows.iter().map(|r| i64::from(r.0) - 5).collect::<Vec<_>>())),
                  rows.iter().map(|r| json!(i64::from(r.0) - 5)).collect()),
        };
        let (label, label_json): (ArrayRef, Vec<Value>) = match label_type {
            0 => (Arc::new(Int64Array::from(rows.iter().map(|r| i64::from(r.2)).collect::<Vec<_>>())),
                  rows.iter().map(|r| json!(r.2)).collect()),
            1 => (Arc::new(Float64Array::from(rows.iter().map(|r| f64::from(r.2) / 2.0).collect::<Vec<_>>())),
                  rows.iter().map(|r| json!(f64::from(r.2) / 2.0)).collect()),
            2 => (Arc::new(BooleanArray::from(rows.iter().map(|r| r.2 % 2 == 1).collect::<Vec<_>>())),
                  rows.iter().map(|r| json!(r.2 % 2 == 1)).collect()),
            3 => {
                let labels: Vec<String> = rows.iter().map(|r| if r.2 == 3 { " ".to_string() } else { format!(" l{} ", r.2) }).collect();
                let mut b = StringDictionaryBuilder::<Int32Type>::new();
                for s in &labels { b.append_value(s); }
                (Arc::new(b.finish()), labels.iter().map(|s| json!(s)).collect())
            }
            _ => {
                let labels: Vec<String> = rows.iter().map(|r| if r.2 == 3 { String::new() } else { format!("l{}", r.2) }).collect();
                (Arc::new(StringArray::from(labels.clone())), labels.iter().map(|s| json!(s)).collect())
            }
        };
        let pools: Vec<Option<String>> = rows.iter().map(|r| r.3.map(|p| if p == 2 { String::new() } else { format!("p{p}") })).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("item", item.data_type().clone(), false),
            Field::new("rater", DataType::Utf8, false),
            Field::new("label", label.data_type().clone(), false),
            Field::new("pool", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![
            item,
            Arc::new(StringArray::from(rater_text.clone())),
            label,
            Arc::new(StringArray::from(pools.clone())),
        ]).unwrap();
        let dir = TempDir::new("ratings-rt");
        let path = write(&dir, "r.parquet", (schema, vec![batch]));
        let jsonl: String = (0..n).map(|i| {
            let mut v = json!({"item": item_json[i], "rater": rater_text[i], "label": label_json[i]});
            if let Some(p) = &pools[i] { v["pool"] = json!(p); }
            v.to_string() + "\n"
        }).collect();
        let columns = Columns { item: "item".into(), rater: "rater".into(), label: "label".into(), groups: vec!["pool".into()] };
        let options = Options::default();
        let want = arbiter_ratings::read_jsonl_from(jsonl.as_bytes(), Path::new("r.jsonl"), &columns, &options);
        let got = ratings::read(&path, &columns, &options);
        match (want, got) {
            (Ok(want), Ok(got)) => {
                prop_assert_eq!(&got.ratings, &want.ratings);
                let problems = |p: &[arbiter_ratings::Problem]| p.iter().map(|p| (p.field.clone(), p.message.clone())).collect::<Vec<_>>();
                prop_assert_eq!(problems(&got.problems), problems(&want.problems));
                for (g, w) in got.problems.iter().zip(&want.problems) {
                    let w_line: usize = w.location.trim_start_matches("line ").parse().unwrap();
                    prop_assert_eq!(&g.location, &format!("row {}", w_line - 1));
                }
            }
            (Err(want), Err(got)) => prop_assert_eq!(got.to_string().replace("r.parquet", ""), want.to_string().replace("r.jsonl", "").replace(&*dir.path("").display().to_string(), "")),
            (want, got) => prop_assert!(false, "JSONL {want:?} vs Parquet {got:?}"),
        }
    }

    /// Random bytes, a valid file cut short, or a valid file with bytes overwritten: an error
    /// (or, for damage the format cannot notice, some rows), never a panic.
    #[test]
    fn damaged_files_are_errors_not_panics(
        noise in prop::collection::vec(any::<u8>(), 0..600),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        with_magic in any::<bool>(),
    ) {
        let dir = TempDir::new("damaged");
        let mut bytes = noise.clone();
        if with_magic {
            bytes.splice(0..0, *b"PAR1");
            bytes.extend_from_slice(b"PAR1");
        }
        let p = write_bytes(&dir, "noise.parquet", &bytes);
        prop_assert!(file::read(&p, None).is_err());

        let valid = valid_file();
        let cut = cut.index(valid.len());
        let p = write_bytes(&dir, "cut.parquet", &valid[..cut]);
        let err = samples::read(&p).unwrap_err().to_string();
        prop_assert!(err.contains("cut.parquet"), "{}", err);
        let err = arbiter_columnar::value::rows(&p).unwrap_err().to_string();
        prop_assert!(err.contains("cut.parquet"), "{}", err);

        let mut damaged = valid.clone();
        for (at, byte) in flips {
            let i = at.index(damaged.len());
            damaged[i] = byte;
        }
        let p = write_bytes(&dir, "flipped.parquet", &damaged);
        let _ = samples::read(&p).map(|rows| rows.len());
        let _ = grades::read(&p).map(|rows| rows.len());
        let _ = arbiter_columnar::value::rows(&p).map(|rows| rows.len());
    }
}

fn write_bytes(dir: &TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A small valid samples file.
fn valid_file() -> Vec<u8> {
    let samples: Vec<Sample> = (0..5)
        .map(|i| {
            Sample::from_value(
                json!({"id": format!("s{i}"), "prompt": [{"role": "user", "content": format!("question {i}")}],
                       "completion": "an answer", "propositions": {"apology": i % 2 == 0}, "metadata": {"k": i}}),
                i,
            )
            .unwrap()
        })
        .collect();
    let table = samples::to_batches(&samples, Path::new("v.parquet")).unwrap();
    file::write_table(Vec::new(), Path::new("v.parquet"), table).unwrap()
}

/// Every row of a file as JSON, null cells left out.
fn json_rows(path: &Path) -> Vec<Value> {
    let batches = file::read(path, None).unwrap();
    let mut out = Vec::new();
    for b in &batches.batches {
        for i in 0..b.num_rows() {
            let mut map = serde_json::Map::new();
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                let v = arbiter_columnar::value::cell(c.as_ref(), i).unwrap();
                if !v.is_null() {
                    map.insert(f.name().clone(), v);
                }
            }
            out.push(Value::Object(map));
        }
    }
    out
}

/// Errors name the file, the row and the field.
#[test]
fn bad_rows_name_file_row_and_field() {
    let dir = TempDir::new("bad-rows");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("prompt", DataType::Utf8, false),
        Field::new("completion", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(StringArray::from(vec!["[]", "x"])),
            Arc::new(StringArray::from(vec!["y", "z"])),
        ],
    )
    .unwrap();
    let path = write(&dir, "bad.parquet", (schema, vec![batch]));
    let rows = samples::read(&path).unwrap();
    let e = rows[1].record.as_ref().unwrap_err();
    assert_eq!(rows[1].location, "row 1");
    assert_eq!(e.field, "prompt");

    let err = ratings::read(
        &path,
        &Columns {
            item: "id".into(),
            rater: "who".into(),
            label: "prompt".into(),
            groups: vec![],
        },
        &Options::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bad.parquet") && err.contains("\"who\""),
        "{err}"
    );
}

/// In a file of several row groups a bad row is also located by its row group.
#[test]
fn a_bad_row_names_its_row_group() {
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let dir = TempDir::new("row-groups");
    let schema = Arc::new(Schema::new(vec![
        Field::new("prompt", DataType::Utf8, false),
        Field::new("completion", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["[]"; 5])),
            Arc::new(StringArray::from(vec!["a"; 5])),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(2))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    let path = write_bytes(&dir, "groups.parquet", &w.into_inner().unwrap());
    let rows = samples::read(&path).unwrap();
    assert_eq!(rows[3].location, "row 3 (row group 1)");
    assert_eq!(rows[4].location, "row 4 (row group 2)");
    assert_eq!(rows[3].record.as_ref().unwrap_err().field, "prompt");
}
