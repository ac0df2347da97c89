//! Property tests: exact class probabilities against brute-force enumeration, sums to one,
//! and no panics on arbitrary feature maps.

use std::collections::BTreeMap;

use arbiter_core::ResponseType;
use arbiter_rbr::{FeatureValues, Policy, classify};
use proptest::prelude::*;

fn response_type() -> impl Strategy<Value = ResponseType> {
    prop::sample::select(ResponseType::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn class_probabilities_sum_to_one(rt in response_type(), ps in prop::collection::vec(0.0f64..=1.0, 23)) {
        let policy = Policy::default_policy();
        let map: BTreeMap<String, f64> = policy.propositions().iter().zip(&ps).map(|(p, v)| (p.name.clone(), *v)).collect();
        let f = FeatureValues::from_probabilities(&policy, &map).unwrap();
        let c = classify(&policy, rt, &f).unwrap();
        let total: f64 = c.class_probs.iter().sum();
        prop_assert!((total - 1.0).abs() < 1e-9, "sum {}", total);
        prop_assert!(c.class_probs.iter().all(|p| (-1e-12..=1.0 + 1e-12).contains(p)));
    }

    #[test]
    fn boolean_features_give_exactly_one_class(rt in response_type(), bits in prop::collection::vec(any::<bool>(), 23)) {
        let policy = Policy::default_policy();
        let map: BTreeMap<String, bool> = policy.propositions().iter().zip(&bits).map(|(p, v)| (p.name.clone(), *v)).collect();
        let f = FeatureValues::from_labels(&policy, &map).unwrap();
        let c = classify(&policy, rt, &f).unwrap();
        prop_assert_eq!(c.class_probs.iter().filter(|p| **p == 1.0).count(), 1);
        prop_assert_eq!(c.class_probs[c.class], 1.0);
    }

    #[test]
    fn arbitrary_feature_maps_never_panic(
        rt in response_type(),
        entries in prop::collection::btree_map("[a-z_]{0,12}|apology|judgement|disallowed_content", prop::num::f64::ANY, 0..30),
    ) {
        let policy = Policy::default_policy();
        if let Ok(f) = FeatureValues::from_probabilities(&policy, &entries) {
            let _ = classify(&policy, rt, &f);
        }
    }
}

/// Exact probabilities equal a brute-force sum over every assignment of the type's leaves.
#[test]
fn exact_probabilities_match_enumeration_on_comply_and_hard_refuse() {
    let policy = Policy::default_policy();
    let mut rng = arbiter_core::rng::SeededRng::new(5);
    for rt in [ResponseType::Comply, ResponseType::HardRefuse] {
        let partition = policy.partition(rt).unwrap();
        let leaves = partition.leaves().to_vec();
        for _ in 0..3 {
            let p: Vec<f64> = (0..23).map(|_| rng.next_f64()).collect();
            let exact = partition.probabilities(&p);
            let mut brute = vec![0.0; 5];
            for mask in 0u32..(1 << leaves.len()) {
                let mut values = vec![false; 23];
                let mut weight = 1.0;
                for (bit, &leaf) in leaves.iter().enumerate() {
                    let on = mask >> bit & 1 == 1;
                    values[leaf] = on;
                    weight *= if on { p[leaf] } else { 1.0 - p[leaf] };
                }
                brute[partition.decide(&values)] += weight;
            }
            for (a, b) in exact.iter().zip(&brute) {
                assert!((a - b).abs() < 1e-12, "{rt}: {exact:?} vs {brute:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary policy text and arbitrary rule text give errors, never panics.
    #[test]
    fn policy_and_rule_parsers_never_panic(text in "\\PC{0,200}", rule in "[a-z_!&|() ]{0,40}") {
        let _ = Policy::from_toml_str(&text, "fuzz.toml");
        let _ = arbiter_rbr::expr::Expr::parse(&rule);
        let edited = arbiter_rbr::DEFAULT_POLICY_TOML.replacen("\"correct_refusal\"", &format!("{rule:?}"), 1);
        let _ = Policy::from_toml_str(&edited, "fuzz.toml");
    }
}
