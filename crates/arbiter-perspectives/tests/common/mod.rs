//! What the integration tests' synthetic corpora share: Gaussian draws, and a corpus of
//! built ratings (no splits, no hard labels, each item's text its id) with its feature rows.

use arbiter_core::rng::SeededRng;
use arbiter_perspectives::eval::{EvalSettings, SplitMode};
use arbiter_perspectives::{Corpus, FeatureSpec, Features, ItemMeta};
use arbiter_stats::{DuplicatePolicy, RatingsBuilder};

/// One standard normal draw (Box–Muller).
pub fn normal(rng: &mut SeededRng) -> f64 {
    let u1 = rng.next_f64().max(1e-300);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Feature rows of width `dim` from a synthetic encoder.
pub fn features(data: Vec<f32>, dim: usize) -> Features {
    Features {
        spec: FeatureSpec {
            embedder: Some("synthetic".into()),
            embedding_dim: dim,
            ngram_buckets: 0,
        },
        data,
    }
}

/// The corpus of `ratings` (items without splits) next to its feature rows.
pub fn corpus(
    name: &str,
    ratings: RatingsBuilder,
    data: Vec<f32>,
    dim: usize,
) -> (Corpus, Features) {
    let ratings = ratings.build(DuplicatePolicy::KeepAll).unwrap();
    let corpus = Corpus::from_ratings(name, &ratings, |id| {
        Some(ItemMeta {
            text: id.to_string(),
            split: None,
            hard_label: None,
        })
    })
    .unwrap();
    (corpus, features(data, dim))
}

/// Quick settings for these corpora: a seeded 30% test split, one seed, small ridge grids,
/// k-shot at 5 only, no learning curves. The development items choose alone: five
/// cross-validation fits per candidate would only slow the tests (the folds are checked in
/// the crate's unit tests).
pub fn quick_settings() -> EvalSettings {
    EvalSettings {
        split: SplitMode::Random {
            test_share: 0.3,
            seed: 4,
        },
        seeds: vec![1],
        l2_grid: vec![1e-4, 1e-3],
        annotator_l2_grid: vec![2.0, 8.0],
        shots: vec![5],
        curves: false,
        cv_below: 0,
        ..EvalSettings::default()
    }
}
