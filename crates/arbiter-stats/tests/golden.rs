//! Golden tests: values computed by krippendorff 0.8.1 and crowd-kit 1.4.2 on small tables
//! written by `scripts/golden/make_stats_golden.py` (see `golden/README.md`).

use arbiter_stats::aggregate::by_name;
use arbiter_stats::{
    Distance, DomainSpec, DuplicatePolicy, LabelKind, Ratings, RatingsBuilder, krippendorff_alpha,
};
use serde_json::Value;

fn fixtures() -> Vec<Value> {
    let text = include_str!("golden/small_tables.json");
    serde_json::from_str::<Value>(text)
        .expect("valid fixture JSON")
        .as_array()
        .expect("array of tables")
        .clone()
}

fn table(rows: &Value) -> Ratings {
    let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Ordered), vec![]);
    for row in rows.as_array().unwrap() {
        let f: Vec<&str> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        b.push(f[0], f[1], f[2], &[]).unwrap();
    }
    b.build(DuplicatePolicy::KeepAll).unwrap()
}

/// Compare α at every level the fixture has.
fn check_alpha(name: &str, t: &Ratings, expected: &Value) -> usize {
    let mut checked = 0;
    for level in ["nominal", "ordinal", "interval", "ratio"] {
        let Some(want) = expected.get(level) else {
            continue;
        };
        let got = krippendorff_alpha(t, &Distance::parse_level(level).unwrap()).unwrap();
        match want.as_f64() {
            Some(w) => {
                let g = got.alpha.value().unwrap_or(f64::NAN);
                assert!(
                    (g - w).abs() < 1e-9,
                    "{name} {level}: arbiter {g} vs krippendorff {w}"
                );
            }
            None => assert!(
                got.alpha.value().is_none(),
                "{name} {level}: expected undefined"
            ),
        }
        checked += 1;
    }
    checked
}

/// Compare aggregated labels; GLAD may differ on near-ties (see glad.rs), others must be equal.
fn check_aggregators(name: &str, t: &Ratings, expected: &Value) {
    let domain: Vec<&str> = expected["domain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(t.domain().values(), domain.as_slice(), "{name}: domain");
    for method in arbiter_stats::aggregate::METHODS {
        let Some(exp) = expected.get(method) else {
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
        eprintln!("{name} {method}: {differ}/{} labels differ", want.len());
        if method == "glad" {
            assert!(
                differ * 50 <= want.len(),
                "{name} glad: {differ}/{} labels differ",
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
        if let Some(it) = exp.get("iterations").and_then(Value::as_u64)
            && matches!(method, "ds" | "onecoin-ds")
        {
            assert_eq!(
                fitted.convergence.iterations as u64, it,
                "{name} {method}: iterations"
            );
        }
        if let Some(skills) = exp.get("skills").and_then(Value::as_array) {
            for (r, s) in skills.iter().enumerate() {
                let g = fitted.skills[r].unwrap();
                let w = s.as_f64().unwrap();
                assert!(
                    (g - w).abs() < 1e-9,
                    "{name} {method} skill of rater {r}: {g} vs {w}"
                );
            }
        }
        if let Some(maxp) = exp.get("max_posterior").and_then(Value::as_array) {
            let tol = if method == "glad" { 2e-2 } else { 1e-9 };
            for (i, w) in maxp.iter().enumerate() {
                let w = w.as_f64().unwrap();
                let g = fitted.posterior(i).iter().copied().fold(0.0, f64::max);
                assert!(
                    (g - w).abs() < tol,
                    "{name} {method} item {i}: max posterior {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn small_tables_match_krippendorff_and_crowd_kit() {
    let mut n = 0;
    for fx in fixtures() {
        let name = fx["name"].as_str().unwrap();
        let t = table(&fx["rows"]);
        n += check_alpha(name, &t, &fx["alpha"]);
        check_aggregators(name, &t, &fx["aggregators"]);
    }
    assert!(n >= 20, "only {n} alpha values compared");
}

#[test]
fn wikipedia_fixture_is_present() {
    let fx = fixtures();
    let wiki = fx
        .iter()
        .find(|f| f["name"] == "wikipedia")
        .expect("wikipedia fixture");
    let want = wiki["alpha"]["nominal"].as_f64().unwrap();
    assert!((want - 0.691358).abs() < 5e-7);
}
