//! Phase times of reading a ratings CSV and computing α and Dawid–Skene on it, for profiling
//! the library side of `bench/stats_vs_python.py`:
//! `cargo run --release -p arbiter-ratings --example read_fit -- FILE.csv [alpha|ds|both]`.

use std::path::Path;
use std::time::Instant;

use arbiter_ratings::{Columns, Options, read_path};
use arbiter_stats::aggregate::{Aggregator, DawidSkene};
use arbiter_stats::{Distance, agreement, krippendorff_alpha};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: read_fit FILE.csv [alpha|ds|both]");
    let what = args.next().unwrap_or_else(|| "both".into());
    let columns = Columns {
        item: "item".into(),
        rater: "rater".into(),
        label: "label".into(),
        groups: vec![],
    };
    let t = Instant::now();
    let loaded = read_path(Path::new(&path), &columns, &Options::default()).expect("read");
    eprintln!("read  {:.4} s", t.elapsed().as_secs_f64());
    let r = &loaded.ratings;
    if what != "ds" {
        let t = Instant::now();
        let a = krippendorff_alpha(r, &Distance::Nominal).expect("alpha");
        let m = agreement::multi_rater(r);
        eprintln!("alpha {:.4} s", t.elapsed().as_secs_f64());
        println!("{:?} {:?}", a.alpha, m.fleiss_kappa);
    }
    if what != "alpha" {
        let t = Instant::now();
        let f = DawidSkene::default().fit(r).expect("fit");
        eprintln!("ds    {:.4} s", t.elapsed().as_secs_f64());
        println!("{} iterations", f.convergence.iterations);
    }
}
