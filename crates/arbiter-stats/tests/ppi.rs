//! Prediction-powered inference against ppi_python 0.2.3 (fixture written by
//! `scripts/golden/make_ppi_golden.py`) and by simulation with a deliberately biased grader.

use arbiter_core::rng::SeededRng;
use arbiter_stats::ppi::{self, Method};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{what}: arbiter {got} vs ppi_python {want}"
    );
}

#[test]
fn matches_ppi_python() {
    let cases: Value = serde_json::from_str(include_str!("golden/ppi.json")).expect("fixture");
    let cases = cases.as_array().expect("array of cases");
    assert!(cases.len() >= 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (y, f, u) = (
            floats(&case["labels"]),
            floats(&case["predictions"]),
            floats(&case["unlabelled"]),
        );
        let lambda = ppi::power_tuned_lambda(&y, &f, &u).unwrap();
        assert_close(
            &format!("{name} lambda"),
            lambda,
            case["lambda_tuned"].as_f64().unwrap(),
        );
        for (key, level) in [("0.95", 0.95), ("0.9", 0.9)] {
            let want = &case[key];
            for (method, label) in [
                (Method::PowerTuned, "ppi++"),
                (Method::Ppi, "ppi"),
                (Method::Classical, "classical"),
            ] {
                let got = ppi::mean(&y, &f, &u, method, level).unwrap();
                let w = &want[label];
                let what = format!("{name} {label} @{key}");
                assert_close(&what, got.estimate, w["estimate"].as_f64().unwrap());
                let ci = floats(&w["ci"]);
                assert_close(&format!("{what} lower"), got.ci[0], ci[0]);
                assert_close(&format!("{what} upper"), got.ci[1], ci[1]);
            }
            let g = ppi::grader_only(&f, &u, level).unwrap();
            let w = &want["grader_only"];
            assert_close(
                &format!("{name} grader"),
                g.estimate,
                w["estimate"].as_f64().unwrap(),
            );
            let ci = floats(&w["ci"]);
            assert_close(&format!("{name} grader lower"), g.ci[0], ci[0]);
            assert_close(&format!("{name} grader upper"), g.ci[1], ci[1]);
        }
    }
}

/// evals.md's check: a grader that misses 30 % of positives and flags 5 % of negatives, true
/// share 0.3, 200 labelled of 2,000 samples, 1,000 seeded replicates. The 95 % PPI++ interval
/// must cover the truth in at least 93 % of them; the grader-only interval (centred near
/// 0.3·0.7 + 0.7·0.05 = 0.245) almost never does.
#[test]
fn biased_grader_simulation_coverage() {
    const TRUTH: f64 = 0.3;
    const REPLICATES: usize = 1_000;
    let (n, big_n) = (200, 1_800);
    let mut rng = SeededRng::new(20_240_117);
    let mut covered = [0usize; 4];
    let mut width = [0.0f64; 4];
    let (mut y, mut f, mut u) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPLICATES {
        y.clear();
        f.clear();
        u.clear();
        for i in 0..n + big_n {
            let positive = rng.next_f64() < TRUTH;
            let flagged = if positive {
                rng.next_f64() >= 0.30
            } else {
                rng.next_f64() < 0.05
            };
            let flagged = if flagged { 1.0 } else { 0.0 };
            if i < n {
                y.push(if positive { 1.0 } else { 0.0 });
                f.push(flagged);
            } else {
                u.push(flagged);
            }
        }
        let intervals = [
            ppi::mean(&y, &f, &u, Method::PowerTuned, 0.95).unwrap().ci,
            ppi::mean(&y, &f, &u, Method::Ppi, 0.95).unwrap().ci,
            ppi::mean(&y, &f, &u, Method::Classical, 0.95).unwrap().ci,
            ppi::grader_only(&f, &u, 0.95).unwrap().ci,
        ];
        for (k, [lo, hi]) in intervals.into_iter().enumerate() {
            covered[k] += usize::from(lo <= TRUTH && TRUTH <= hi);
            width[k] += hi - lo;
        }
    }
    let share = |k: usize| covered[k] as f64 / REPLICATES as f64;
    let mean_width = |k: usize| width[k] / REPLICATES as f64;
    for (k, name) in ["PPI++", "PPI", "classical", "grader-only"]
        .iter()
        .enumerate()
    {
        eprintln!(
            "{name:<12} coverage {:.3}  mean width {:.4}",
            share(k),
            mean_width(k)
        );
    }
    assert!(share(0) >= 0.93, "PPI++ coverage {}", share(0));
    assert!(share(1) >= 0.93, "PPI coverage {}", share(1));
    assert!(share(2) >= 0.93, "classical coverage {}", share(2));
    assert!(share(3) < 0.05, "grader-only coverage {}", share(3));
    // Power tuning borrows strength from the 1,800 unlabelled rows: narrower than the labels
    // alone and no wider than plain PPI.
    assert!(mean_width(0) < 0.9 * mean_width(2));
    assert!(mean_width(0) <= mean_width(1) * 1.001);
}
