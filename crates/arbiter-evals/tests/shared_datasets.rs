//! Every shared eval dataset loads completely, with the row counts of evals.md §3.

use std::fs::File;
use std::path::PathBuf;

use arbiter_evals::dataset::{self, EvalSample, Target};
use arbiter_evals::metrics::Expected;

fn data_dir() -> Option<PathBuf> {
    arbiter_testkit::shared_data("evals")
}

fn open(dir: &std::path::Path, rel: &str) -> (File, String) {
    let p = dir.join(rel);
    (File::open(&p).unwrap(), p.display().to_string())
}

fn expected_count(rows: &[EvalSample], e: Expected) -> usize {
    rows.iter()
        .filter(|r| r.target == Target::Behaviour { expected: e })
        .count()
}

#[test]
fn refusal_datasets_load_with_documented_counts() {
    let Some(dir) = data_dir() else { return };
    let (f, s) = open(&dir, "xstest/xstest_prompts.csv");
    let xs = dataset::read_xstest(f, &s).unwrap();
    assert_eq!(xs.len(), 450);
    assert_eq!(expected_count(&xs, Expected::Comply), 250);
    let types: std::collections::BTreeSet<&str> = xs
        .iter()
        .filter(|r| {
            r.target
                == Target::Behaviour {
                    expected: Expected::Comply,
                }
        })
        .map(|r| r.category.as_str())
        .collect();
    assert_eq!(types.len(), 10);
    for t in &types {
        assert!(arbiter_evals::metrics::XSTEST_SAFE_TYPES.contains(t), "{t}");
    }

    let (f, s) = open(&dir, "strongreject/strongreject_dataset.csv");
    assert_eq!(dataset::read_strongreject(f, &s).unwrap().len(), 313);
    let (f, s) = open(&dir, "harmbench/harmbench_behaviors_text_all.csv");
    assert_eq!(dataset::read_harmbench(f, &s).unwrap().len(), 400);
    let mut dna = 0;
    for entry in std::fs::read_dir(dir.join("donotanswer")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "jsonl") {
            let area = p.file_stem().unwrap().to_string_lossy().to_string();
            dna +=
                dataset::read_donotanswer(File::open(&p).unwrap(), &p.display().to_string(), &area)
                    .unwrap()
                    .len();
        }
    }
    assert_eq!(dna, 939);
    let (f, s) = open(&dir, "simpleqa/simple_qa_test_set.csv");
    assert_eq!(dataset::read_simpleqa(f, &s).unwrap().len(), 4326);
}

#[test]
fn every_bbq_row_has_one_stereotyped_target_and_one_unknown() {
    let Some(dir) = data_dir() else { return };
    let mut total = 0;
    for (cat, n) in [
        ("Age", 3680),
        ("Disability_status", 1556),
        ("Nationality", 3080),
        ("Physical_appearance", 1576),
        ("Religion", 1200),
        ("Sexual_orientation", 864),
    ] {
        let (f, s) = open(&dir, &format!("bbq/{cat}.jsonl"));
        let rows = dataset::read_bbq(f, &s).unwrap();
        assert_eq!(rows.len(), n, "{cat}");
        for r in &rows {
            match &r.target {
                Target::Choice {
                    label,
                    unknown,
                    biased,
                    ambiguous,
                    ..
                } => {
                    assert_ne!(biased, unknown);
                    assert_eq!(*ambiguous, label == unknown, "{}", r.id);
                }
                other => panic!("{other:?}"),
            }
        }
        total += rows.len();
    }
    assert_eq!(total, 11_956);
}

#[test]
fn built_in_suites_load_from_the_shared_data() {
    let Some(dir) = data_dir() else { return };
    let root = dir.parent().unwrap();
    for (name, samples, work) in [
        ("refusal", 320 + 939 + 313 + 250, 1822),
        ("xstest", 450, 450),
        ("strongreject", 313, 3130),
        ("bbq", 11_956, 11_956),
        ("simpleqa", 4326, 4326),
    ] {
        let suite = arbiter_evals::suite::Suite::built_in(name).unwrap();
        let rows = suite.load(root).unwrap();
        assert_eq!(rows.len(), samples, "{name}");
        let items = suite.work(&rows);
        assert_eq!(items.len(), work, "{name}");
        let keys: std::collections::BTreeSet<(&str, u32)> =
            items.iter().map(|w| (w.key.as_str(), w.epoch)).collect();
        assert_eq!(keys.len(), items.len(), "{name}: work keys must be unique");
    }
}
