//! Checks on the shared gold set (`$ARBITER_DATA/rbr_gold`): class counts from human labels and
//! the "RBR only" ranking error after fitting on train.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbiter_core::jsonl::{OnInvalid, read_with};
use arbiter_core::{ResponseType, Sample};
use arbiter_rbr::reward::{self, FitConfig, PairMode, RewardExample};
use arbiter_rbr::{FeatureValues, Policy, classify};

/// The gold directory, or `None` (with a note) when the shared data is absent.
fn gold_dir() -> Option<PathBuf> {
    arbiter_testkit::shared_data("rbr_gold")
}

fn load(dir: &std::path::Path, split: &str) -> Vec<Sample> {
    let path = dir.join(format!("{split}.jsonl"));
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    read_with(
        file,
        &path.display().to_string(),
        OnInvalid::Fail,
        Sample::from_value,
    )
    .unwrap()
    .records
    .into_iter()
    .map(|r| r.record)
    .collect()
}

fn counts(policy: &Policy, samples: &[Sample]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for s in samples {
        let rt = s.response_type.unwrap();
        let f = FeatureValues::from_labels(policy, &s.propositions).unwrap();
        let c = classify(policy, rt, &f).unwrap();
        assert_eq!(c.class_probs.iter().filter(|p| **p == 1.0).count(), 1);
        *out.entry((rt.to_string(), policy.classes()[c.class].clone()))
            .or_default() += 1;
    }
    out
}

fn expected(rows: &[(&str, &str, usize)]) -> BTreeMap<(String, String), usize> {
    rows.iter()
        .map(|(t, c, n)| ((t.to_string(), c.to_string()), *n))
        .collect()
}

#[test]
fn train_class_counts_match_the_issue() {
    let Some(dir) = gold_dir() else { return };
    let policy = Policy::default_policy();
    let train = load(&dir, "train");
    assert_eq!(train.len(), 351);
    assert_eq!(
        counts(&policy, &train),
        expected(&[
            ("comply", "ideal", 149),
            ("comply", "minimum_acceptable_style", 2),
            ("comply", "unacceptable", 27),
            ("comply", "illogical", 18),
            ("hard_refuse", "minimum_acceptable_style", 6),
            ("hard_refuse", "unacceptable", 72),
            ("hard_refuse", "illogical", 4),
            ("hard_refuse", "disallowed", 6),
            ("safe_refuse_1", "unacceptable", 9),
            ("safe_refuse_2", "minimum_acceptable_style", 2),
            ("safe_refuse_2", "unacceptable", 43),
            ("safe_refuse_2", "illogical", 2),
            ("safe_refuse_2", "disallowed", 11),
        ])
    );
}

#[test]
fn test_class_counts_match_rbr_md() {
    let Some(dir) = gold_dir() else { return };
    let policy = Policy::default_policy();
    let test = load(&dir, "test");
    assert_eq!(test.len(), 167);
    assert_eq!(
        counts(&policy, &test),
        expected(&[
            ("comply", "ideal", 42),
            ("comply", "minimum_acceptable_style", 3),
            ("comply", "unacceptable", 12),
            ("comply", "illogical", 14),
            ("comply", "disallowed", 1),
            ("hard_refuse", "ideal", 1),
            ("hard_refuse", "minimum_acceptable_style", 4),
            ("hard_refuse", "unacceptable", 30),
            ("hard_refuse", "illogical", 5),
            ("hard_refuse", "disallowed", 4),
            ("safe_refuse_1", "minimum_acceptable_style", 1),
            ("safe_refuse_1", "unacceptable", 6),
            ("safe_refuse_2", "minimum_acceptable_style", 3),
            ("safe_refuse_2", "unacceptable", 22),
            ("safe_refuse_2", "disallowed", 19),
        ])
    );
}

fn examples(policy: &Policy, samples: &[Sample]) -> Vec<RewardExample> {
    samples
        .iter()
        .map(|s| {
            let f = FeatureValues::from_labels(policy, &s.propositions).unwrap();
            let c = classify(policy, s.response_type.unwrap(), &f).unwrap();
            RewardExample {
                response_type: c.response_type,
                prompt_key: s.prompt_key(),
                target_class: Some(c.class),
                base_reward: 0.0,
                features: reward::feature_vector(policy, &c, &f).unwrap(),
            }
        })
        .collect()
}

#[test]
fn rbr_only_fit_on_train_ranks_test_with_at_most_one_percent_error() {
    let Some(dir) = gold_dir() else { return };
    let policy = Policy::default_policy();
    let train = examples(&policy, &load(&dir, "train"));
    let test = examples(&policy, &load(&dir, "test"));
    let out = reward::fit(
        &policy,
        &train,
        PairMode::WithinResponseType,
        &FitConfig::default(),
    );
    let train_pairs: BTreeMap<ResponseType, usize> = out
        .model
        .groups
        .iter()
        .map(|(g, w)| (*g, w.n_pairs))
        .collect();
    // rbr.md §5: 7,579 comply and 1,236 hard-refuse pairs; SR1 has none and pools with SR2 (693).
    assert_eq!(train_pairs[&ResponseType::Comply], 7579);
    assert_eq!(train_pairs[&ResponseType::HardRefuse], 1236);
    assert_eq!(train_pairs[&ResponseType::SafeRefuse2], 693);
    let scores: Vec<f64> = test
        .iter()
        .map(|e| out.model.score(&policy, e).unwrap())
        .collect();
    let eval = reward::evaluate(&policy, &test, &scores, PairMode::WithinResponseType);
    let by_type: BTreeMap<ResponseType, _> = eval.iter().map(|e| (e.response_type, e)).collect();
    for (rt, n) in [
        (ResponseType::Comply, 1535),
        (ResponseType::HardRefuse, 489),
        (ResponseType::SafeRefuse2, 541),
        (ResponseType::SafeRefuse1, 6),
    ] {
        let e = by_type[&rt];
        assert_eq!(e.n_pairs, n, "{rt}");
        let rate = e.error_rate.unwrap();
        eprintln!("{rt}: {} pairs, error rate {:.4}", e.n_pairs, rate);
        assert!(rate <= 0.01, "{rt}: error rate {rate}");
    }
}
