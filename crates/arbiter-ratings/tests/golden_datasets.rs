//! Golden tests on the shared datasets: our readers + statistics against numbers computed by
//! krippendorff 0.8.1 and crowd-kit 1.4.2 (`scripts/golden/make_stats_golden.py`, stored in
//! `crates/arbiter-stats/tests/golden/shared_datasets.json`).
//!
//! The data lives outside the repository: `$ARBITER_DATA` (default `../shared/data` relative to
//! the repository root). Without it these tests explain why and pass, unless
//! `ARBITER_REQUIRE_DATA=1` (CI), where a missing directory is a failure.

use std::path::PathBuf;

use arbiter_ratings::{Loaded, Options, datasets};
use arbiter_stats::aggregate::{METHODS, by_name};
use arbiter_stats::groups::group_alphas;
use arbiter_stats::{Distance, DuplicatePolicy, krippendorff_alpha};
use serde_json::Value;

fn data_dir() -> Option<PathBuf> {
    arbiter_testkit::shared_data("annotation")
}

fn golden() -> Vec<Value> {
    let text = include_str!("../../arbiter-stats/tests/golden/shared_datasets.json");
    serde_json::from_str::<Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn load(dir: &std::path::Path, name: &str, policy: DuplicatePolicy) -> Loaded {
    let opts = Options {
        duplicates: policy,
        ..Options::default()
    };
    let loaded = match name {
        "multipico" => datasets::multipico(&dir.join("multipico"), &["Gender"], &opts),
        "convabuse/full_csv" => {
            datasets::convabuse_csv(&dir.join("convabuse/ConvAbuseEMNLPfull.csv"), &opts)
        }
        other => {
            let set = other.strip_prefix("lewidi/").unwrap();
            datasets::lewidi(&dir.join("lewidi2023"), set, &opts)
        }
    };
    loaded.unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn shared_datasets_match_the_python_references() {
    let Some(dir) = data_dir() else { return };
    for entry in golden() {
        let name = entry["dataset"].as_str().unwrap();
        let loaded = load(&dir, name, DuplicatePolicy::KeepAll);
        let t = &loaded.ratings;
        assert_eq!(
            t.n_ratings() as u64,
            entry["n_ratings"].as_u64().unwrap(),
            "{name}: ratings"
        );
        assert_eq!(
            t.n_items() as u64,
            entry["n_items"].as_u64().unwrap(),
            "{name}: items"
        );
        assert_eq!(
            t.n_raters() as u64,
            entry["n_raters"].as_u64().unwrap(),
            "{name}: raters"
        );

        for (level, want) in entry["alpha"].as_object().unwrap() {
            let Some(distance) = Distance::parse_level(level) else {
                continue;
            };
            let got = krippendorff_alpha(t, &distance).unwrap().alpha.value();
            match want.as_f64() {
                Some(w) => {
                    let g = got.unwrap();
                    assert!((g - w).abs() < 1e-9, "{name} {level}: {g} vs {w}");
                    eprintln!("{name} alpha {level}: arbiter {g:.12} krippendorff {w:.12}");
                }
                None => assert!(got.is_none(), "{name} {level}: expected undefined"),
            }
        }
        let dedup = load(&dir, name, DuplicatePolicy::First);
        let got = krippendorff_alpha(&dedup.ratings, &Distance::Nominal)
            .unwrap()
            .alpha
            .value()
            .unwrap();
        let want = entry["alpha_nominal_dedup_first"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{name} dedup: {got} vs {want}");

        if let Some(groups) = entry.get("group_alpha_nominal").and_then(Value::as_object) {
            let column = &t.groups()[0].name;
            let ga = group_alphas(t, column, &Distance::Nominal).unwrap();
            for (group, want) in groups {
                let got = ga
                    .within
                    .iter()
                    .find(|(g, _)| g == group)
                    .unwrap_or_else(|| panic!("{name}: group {group}"));
                match want.as_f64() {
                    Some(w) => {
                        let g = got.1.alpha.value().unwrap();
                        assert!((g - w).abs() < 1e-9, "{name} group {group}: {g} vs {w}");
                    }
                    None => assert!(got.1.alpha.value().is_none()),
                }
            }
        }

        let aggs = &entry["aggregators"];
        let domain: Vec<&str> = aggs["domain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(t.domain().values(), domain.as_slice(), "{name}: domain");
        for method in METHODS {
            let Some(exp) = aggs.get(method) else {
                continue;
            };
            let fitted = by_name(method).unwrap().fit(t).unwrap();
            let want: Vec<u32> = exp["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let got: Vec<u32> = fitted.labels.iter().map(|l| l.unwrap()).collect();
            let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count();
            eprintln!(
                "{name} {method}: {differ}/{} labels differ from crowd-kit",
                want.len()
            );
            if method == "glad" {
                assert!(
                    differ * 100 <= want.len(),
                    "{name} glad: {differ}/{} differ",
                    want.len()
                );
            } else {
                assert_eq!(
                    differ,
                    0,
                    "{name} {method}: {differ}/{} labels differ",
                    want.len()
                );
            }
            if matches!(method, "ds" | "onecoin-ds") {
                assert_eq!(
                    fitted.convergence.iterations as u64,
                    exp["iterations"].as_u64().unwrap(),
                    "{name} {method}: EM iterations"
                );
            }
            if let Some(skills) = exp.get("skills").and_then(Value::as_array) {
                for (r, s) in skills.iter().enumerate() {
                    let (g, w) = (fitted.skills[r].unwrap(), s.as_f64().unwrap());
                    assert!(
                        (g - w).abs() < 1e-9,
                        "{name} {method} skill {r}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
