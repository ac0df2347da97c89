//! Time α and Dawid–Skene on generated tables without any file reading:
//! `cargo run --release -p arbiter-stats --example scale -- 1000000`.

use std::time::Instant;

use arbiter_core::rng::SeededRng;
use arbiter_stats::aggregate::{Aggregator, DawidSkene};
use arbiter_stats::{
    Distance, DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder, krippendorff_alpha,
};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let (per_item, n_raters, n_labels) = (5, 500, 3);
    let mut rng = SeededRng::new(1);
    let skill: Vec<f64> = (0..n_raters).map(|_| 0.4 + 0.55 * rng.next_f64()).collect();
    let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
    let labels: Vec<String> = (0..n_labels).map(|l| l.to_string()).collect();
    let raters: Vec<String> = (0..n_raters).map(|r| format!("r{r}")).collect();
    for i in 0..n / per_item {
        let truth = rng.below(n_labels);
        let item = format!("i{i}");
        for _ in 0..per_item {
            let r = rng.below(n_raters);
            let l = if rng.next_f64() < skill[r] {
                truth
            } else {
                rng.below(n_labels)
            };
            b.push(&item, &raters[r], &labels[l], &[])
                .expect("valid row");
        }
    }
    let t0 = Instant::now();
    let t = b.build(DuplicatePolicy::KeepAll).expect("table");
    println!("build {:.4} s", t0.elapsed().as_secs_f64());
    for _ in 0..3 {
        let t0 = Instant::now();
        let a = krippendorff_alpha(&t, &Distance::Nominal).expect("alpha");
        println!("alpha {:.4} s ({:?})", t0.elapsed().as_secs_f64(), a.alpha);
    }
    let t0 = Instant::now();
    let f = DawidSkene::default().fit(&t).expect("ds");
    println!(
        "ds {:.4} s ({} iterations)",
        t0.elapsed().as_secs_f64(),
        f.convergence.iterations
    );
}
