//! Property tests: the readers return errors, never panics, whatever bytes they are given.

use arbiter_core::jsonl::{OnInvalid, read_with, read_with_limit};
use arbiter_core::{GradeRecord, Sample};
use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON values, biased towards the shapes the readers look at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[a-z ]{0,8}".prop_map(Value::String),
        prop::sample::select(vec![
            "user",
            "assistant",
            "Comply",
            "Hard Refuse",
            "apology"
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "prompt",
                    "completion",
                    "role",
                    "content",
                    "response_type",
                    "propositions",
                    "flags",
                    "metadata",
                    "x"
                ]),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn sample_and_grade_parsers_never_panic(v in json_value()) {
        let _ = Sample::from_value(v.clone(), 0);
        let _ = GradeRecord::from_value(v);
    }

    #[test]
    fn jsonl_reader_never_panics_and_keeps_line_numbers(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        match read_with(bytes.as_slice(), "fuzz", OnInvalid::Skip, Sample::from_value) {
            Ok(parsed) => {
                let lines = bytes.split(|b| *b == b'\n').count();
                for e in &parsed.skipped {
                    prop_assert!(e.line >= 1 && e.line <= lines);
                }
            }
            Err(e) => prop_assert!(false, "skip mode never fails: {e}"),
        }
    }

    /// Under a line limit, every line is either taken exactly as without the limit or, when
    /// longer than the limit, skipped with its own line number.
    #[test]
    fn a_line_limit_only_turns_long_lines_into_skips(
        bytes in prop::collection::vec(prop::sample::select(b"{}\n\"a:,1 x".to_vec()), 0..300),
        limit in 0usize..40,
    ) {
        let free = read_with(bytes.as_slice(), "f", OnInvalid::Skip, |v, _| Ok(v)).unwrap();
        let capped = read_with_limit(bytes.as_slice(), "f", OnInvalid::Skip, limit, |v, _| Ok(v)).unwrap();
        let lengths: Vec<usize> = bytes.split(|b| *b == b'\n').map(<[u8]>::len).collect();
        let short = |line: usize| lengths[line - 1] <= limit;
        let kept: Vec<(usize, &Value)> = free.records.iter().filter(|r| short(r.line)).map(|r| (r.line, &r.record)).collect();
        let got: Vec<(usize, &Value)> = capped.records.iter().map(|r| (r.line, &r.record)).collect();
        prop_assert_eq!(got, kept);
        for e in &capped.skipped {
            prop_assert!(!short(e.line) || free.skipped.iter().any(|f| f.line == e.line));
        }
    }
}
