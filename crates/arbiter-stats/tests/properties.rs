//! Property tests: α does not depend on row order or rater names; no aggregator or group
//! statistic panics on arbitrary tables (empty, one rater, one label, unseen domain labels).

use arbiter_stats::aggregate::{METHODS, by_name};
use arbiter_stats::{
    Bootstrap, Distance, DomainSpec, DuplicatePolicy, LabelDomain, LabelKind, Ratings,
    RatingsBuilder, agreement, alpha_bootstrap, groups, krippendorff_alpha,
};
use proptest::prelude::*;

type Row = (u8, u8, u8, u8);

fn build(rows: &[Row], rename: impl Fn(u8) -> String, spec: DomainSpec) -> Ratings {
    let mut b = RatingsBuilder::new(spec, vec!["pool".into()]);
    for &(item, rater, label, pool) in rows {
        let pool = (pool % 3 != 0).then_some(if pool % 2 == 0 { "even" } else { "odd" });
        b.push(
            &format!("i{item}"),
            &rename(rater),
            &label.to_string(),
            &[pool],
        )
        .unwrap();
    }
    b.build(DuplicatePolicy::KeepAll).unwrap()
}

fn rows_strategy(max_rows: usize) -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0u8..12, 0u8..6, 0u8..4, 0u8..6), 0..max_rows)
}

fn alphas(t: &Ratings) -> Vec<Option<f64>> {
    [
        Distance::Nominal,
        Distance::Ordinal,
        Distance::Interval,
        Distance::Ratio,
    ]
    .iter()
    .map(|d| krippendorff_alpha(t, d).unwrap().alpha.value())
    .collect()
}

fn close(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.iter().zip(b).all(|(x, y)| match (x, y) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn alpha_is_invariant_to_row_order_and_rater_names(rows in rows_strategy(60), seed in any::<u64>()) {
        let spec = || DomainSpec::Infer(LabelKind::Ordered);
        let base = alphas(&build(&rows, |r| format!("r{r}"), spec()));
        let mut shuffled = rows.clone();
        arbiter_core::rng::SeededRng::new(seed).shuffle(&mut shuffled);
        let reordered = alphas(&build(&shuffled, |r| format!("r{r}"), spec()));
        prop_assert!(close(&base, &reordered), "{base:?} vs {reordered:?}");
        let renamed = alphas(&build(&rows, |r| format!("zz-{}", 97 - r), spec()));
        prop_assert!(close(&base, &renamed), "{base:?} vs {renamed:?}");
    }

    #[test]
    fn nothing_panics_on_arbitrary_tables(rows in rows_strategy(40), unseen in any::<bool>()) {
        // Optionally declare labels 0..=9 so that most domain labels never occur.
        let spec = if unseen {
            DomainSpec::Explicit(LabelDomain::new((0..10).map(|i| i.to_string()).collect(), LabelKind::Ordered).unwrap())
        } else {
            DomainSpec::Infer(LabelKind::Nominal)
        };
        let t = build(&rows, |r| format!("r{r}"), spec);
        for method in METHODS {
            let f = by_name(method).unwrap().fit(&t).unwrap();
            prop_assert_eq!(f.labels.len(), t.n_items());
            for item in 0..t.n_items() {
                let s: f64 = f.posterior(item).iter().sum();
                prop_assert!(s.is_finite());
                if f.labels[item].is_some() {
                    prop_assert!((s - 1.0).abs() < 1e-6, "{} item {}: posterior sums to {}", method, item, s);
                }
            }
        }
        let settings = Bootstrap { replicates: 20, seed: 1, confidence: 0.9 };
        let _ = alpha_bootstrap(&t, &Distance::Nominal, settings).unwrap();
        let _ = agreement::multi_rater(&t);
        let _ = agreement::gwet_ac2(&t, agreement::Weights::Quadratic);
        let _ = agreement::cohen_kappa(&t, 0, 1);
        let _ = groups::group_alphas(&t, "pool", &Distance::Nominal).unwrap();
        let _ = groups::in_group_agreement(&t, "pool", 10, 2).unwrap();
        let _ = groups::label_rates(&t, "pool", settings).unwrap();
        let _ = groups::chi_square(&t, "pool").unwrap();
        let _ = groups::kruskal_wallis(&t, "pool").unwrap();
        if let Some(label) = t.domain().values().first().cloned() {
            let _ = groups::logistic_by_group(&t, "pool", &label, settings).unwrap();
        }
        let _ = groups::most_dividing_items(&t, "pool", 1, 5).unwrap();
        let _ = groups::soft_labels(&t, Some("pool")).unwrap();
    }
}

#[test]
fn single_rater_and_single_label_tables() {
    let one_rater = build(
        &[(0, 0, 1, 1), (1, 0, 2, 1)],
        |r| format!("r{r}"),
        DomainSpec::Infer(LabelKind::Nominal),
    );
    let one_label = build(
        &[(0, 0, 1, 1), (0, 1, 1, 2), (1, 2, 1, 1)],
        |r| format!("r{r}"),
        DomainSpec::Infer(LabelKind::Nominal),
    );
    for t in [&one_rater, &one_label] {
        for method in METHODS {
            let f = by_name(method).unwrap().fit(t).unwrap();
            assert!(f.labels.iter().all(Option::is_some), "{method}");
        }
    }
    assert!(
        krippendorff_alpha(&one_rater, &Distance::Nominal)
            .unwrap()
            .alpha
            .value()
            .is_none()
    );
    assert!(
        krippendorff_alpha(&one_label, &Distance::Nominal)
            .unwrap()
            .alpha
            .value()
            .is_none()
    );
}
