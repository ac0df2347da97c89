//! The metrics against scikit-learn and numpy (fixture made by
//! scripts/golden/make_perspectives_golden.py).

use arbiter_perspectives::metrics;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("golden/metrics.json")).unwrap()
}

fn labels(v: &Value) -> Vec<u16> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u16)
        .collect()
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

#[test]
fn f1_equals_sklearn() {
    let f = fixture();
    for case in f["f1"].as_array().unwrap() {
        let (gold, pred) = (labels(&case["gold"]), labels(&case["pred"]));
        close(
            metrics::micro_f1(&pred, &gold).unwrap(),
            case["micro_f1"].as_f64().unwrap(),
        );
        close(
            metrics::macro_f1(&pred, &gold).unwrap(),
            case["macro_f1"].as_f64().unwrap(),
        );
    }
}

#[test]
fn soft_metrics_and_pearson_equal_numpy() {
    let f = fixture();
    for case in f["soft"].as_array().unwrap() {
        let (t, p) = (rows(&case["target"]), rows(&case["pred"]));
        close(
            metrics::soft_ce(&p, &t).unwrap(),
            case["soft_ce"].as_f64().unwrap(),
        );
        close(
            metrics::manhattan(&p, &t).unwrap(),
            case["manhattan"].as_f64().unwrap(),
        );
    }
    let x: Vec<f64> = rows(&Value::Array(vec![f["pearson"]["x"].clone()])).remove(0);
    let y: Vec<f64> = rows(&Value::Array(vec![f["pearson"]["y"].clone()])).remove(0);
    close(
        metrics::pearson(&x, &y).unwrap(),
        f["pearson"]["r"].as_f64().unwrap(),
    );
}
