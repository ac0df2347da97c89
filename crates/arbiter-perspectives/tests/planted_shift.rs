//! A synthetic corpus with a planted per-pool label shift: pool A (six annotators) labels an
//! item positive by one feature direction, pool B (three) also by another. Majority vote
//! follows A; the per-pool models must recover B's viewpoint and the pool matrix must show it.

mod common;

use arbiter_core::rng::SeededRng;
use arbiter_perspectives::eval::{EvalSettings, evaluate};
use arbiter_perspectives::{Corpus, Features, ModelKind, Per, train_models};
use arbiter_stats::{DomainSpec, LabelKind, RatingsBuilder};
use common::normal;

const DIM: usize = 8;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// P(positive) for pool A and pool B at feature row x.
fn truth(x: &[f32]) -> (f64, f64) {
    let a = 3.0 * x[0] as f64 - 1.0;
    (sigmoid(a), sigmoid(a + 5.0 * x[1] as f64 + 1.0))
}

fn corpus(n_items: usize, seed: u64) -> (Corpus, Features) {
    let mut rng = SeededRng::new(seed);
    let mut data = Vec::with_capacity(n_items * DIM);
    for _ in 0..n_items * DIM {
        data.push(normal(&mut rng) as f32);
    }
    let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec!["pool".into()]);
    for i in 0..n_items {
        let (pa, pb) = truth(&data[i * DIM..(i + 1) * DIM]);
        for r in 0..9 {
            let (pool, p) = if r < 6 { ("A", pa) } else { ("B", pb) };
            let label = if rng.next_f64() < p { "1" } else { "0" };
            b.push(
                &format!("item{i}"),
                &format!("{pool}{r}"),
                label,
                &[Some(pool)],
            )
            .unwrap();
        }
    }
    common::corpus("planted", b, data, DIM)
}

fn settings() -> EvalSettings {
    EvalSettings {
        bootstrap: 200,
        pool_attribute: Some("pool".into()),
        identity_attributes: vec!["pool".into()],
        components_grid: vec![DIM],
        ..common::quick_settings()
    }
}

#[test]
fn pool_models_recover_the_planted_shift_and_majority_vote_does_not() {
    let (corpus, features) = corpus(1200, 11);
    let model = train_models(&corpus, &features, &settings(), &mut |_| {}).unwrap();
    model.validate().unwrap();
    // Fresh items from the same process.
    let (fresh, fresh_features) = corpus_items(400, 99);
    let ids: Vec<String> = (0..fresh.len()).map(|i| format!("new{i}")).collect();
    let by_pool = model
        .predict(
            &ids,
            &fresh_features,
            None,
            Some(ModelKind::SoftLabel),
            Per::Pool,
        )
        .unwrap();
    let majority = model
        .predict(
            &ids,
            &fresh_features,
            None,
            Some(ModelKind::Majority),
            Per::Item,
        )
        .unwrap();
    let (mut pool_b_error, mut majority_b_error, mut pool_a_error) = (0.0, 0.0, 0.0);
    for (i, (p, m)) in by_pool.iter().zip(&majority).enumerate() {
        let (pa, pb) = fresh[i];
        let pools = p.per_pool.as_ref().unwrap();
        pool_a_error += (pools["A"]["1"] - pa).abs() / fresh.len() as f64;
        pool_b_error += (pools["B"]["1"] - pb).abs() / fresh.len() as f64;
        majority_b_error += (m.soft_label["1"] - pb).abs() / fresh.len() as f64;
    }
    assert!(
        pool_a_error < 0.08,
        "pool A model is off A's truth by {pool_a_error}"
    );
    assert!(
        pool_b_error < 0.08,
        "pool B model is off B's truth by {pool_b_error}"
    );
    assert!(
        majority_b_error > 0.2,
        "majority vote should miss pool B's viewpoint, but is off by only {majority_b_error}"
    );

    let ev = evaluate(&corpus, &features, &settings(), &mut |_| {}).unwrap();
    let pm = ev.pools.as_ref().unwrap();
    assert_eq!(pm.pools, ["A", "B"]);
    let ce = |r: usize, c: usize| pm.soft_ce[r][c].unwrap();
    // Each pool is predicted best by its own model, and B far better by its own than by A's.
    assert!(ce(1, 1) < ce(0, 1) - 0.1, "{:?}", pm.soft_ce);
    assert!(ce(0, 0) < ce(1, 0), "{:?}", pm.soft_ce);
    assert!(pm.from_others[1].unwrap() > ce(1, 1) + 0.1);
    // The per-annotator models know who is who: averaging B's annotators' predictions
    // approaches B's own model.
    assert!(pm.annotator_model[1].unwrap() < pm.from_all[1].unwrap());
    // Identity places a new annotator: with the pool known, a held-out B annotator is
    // predicted better than by the population head.
    let unseen = ev.unseen.as_ref().unwrap();
    let zero = &unseen.shots[0];
    assert_eq!(unseen.model, ModelKind::AnnotatorEmbedding);
    assert!(zero.identity_macro_f1.unwrap() > zero.population_macro_f1.unwrap());
}

/// Fresh feature rows and each pool's true probability.
fn corpus_items(n: usize, seed: u64) -> (Vec<(f64, f64)>, Features) {
    let mut rng = SeededRng::new(seed);
    let data: Vec<f32> = (0..n * DIM).map(|_| normal(&mut rng) as f32).collect();
    let truths = (0..n)
        .map(|i| truth(&data[i * DIM..(i + 1) * DIM]))
        .collect();
    (truths, common::features(data, DIM))
}

#[test]
fn a_model_file_round_trips_through_json_and_refuses_other_features() {
    let (corpus, features) = corpus(300, 5);
    let mut s = settings();
    s.l2_grid = vec![1e-3];
    s.annotator_l2_grid = vec![8.0];
    let model = train_models(&corpus, &features, &s, &mut |_| {}).unwrap();
    let text = serde_json::to_string(&model).unwrap();
    let back: arbiter_perspectives::ModelFile = serde_json::from_str(&text).unwrap();
    back.validate().unwrap();
    let ids: Vec<String> = corpus.items.iter().map(|i| i.id.clone()).collect();
    let a = model
        .predict(&ids, &features, None, None, Per::Annotator)
        .unwrap();
    let b = back
        .predict(&ids, &features, None, None, Per::Annotator)
        .unwrap();
    assert_eq!(a, b);
    for p in &a {
        let total: f64 = p.soft_label.values().sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert_eq!(p.per_annotator.as_ref().unwrap().len(), 9);
    }
    let mut other = features.clone();
    other.spec.embedder = Some("another encoder".into());
    assert!(back.predict(&ids, &other, None, None, Per::Item).is_err());
    let mut broken = back.clone();
    broken.models[0].model.bias.pop();
    assert!(broken.validate().is_err());
}

#[test]
fn pool_predictability_shows_the_pool_the_others_cannot_stand_for() {
    // Pool 0 calls an item offensive when it mentions "storm"; pool 1 when it mentions "harbour".
    // Pool 2 agrees with pool 0. Pool 1's labels are poorly predicted from the other pools.
    let mut rng = SeededRng::new(8);
    let words = ["storm", "harbour", "window", "garden", "letter", "bridge"];
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for item in 0..300u32 {
        let picked: Vec<&str> = (0..3).map(|_| words[rng.below(words.len())]).collect();
        let text = picked.join(" ");
        for pool in 0..3u32 {
            let trigger = if pool == 1 { "harbour" } else { "storm" };
            for _ in 0..2 {
                let p = if text.contains(trigger) { 0.9 } else { 0.1 };
                labels.push((item, pool, u16::from(rng.next_f64() < p)));
            }
        }
        texts.push(text);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let out = arbiter_perspectives::eval::pool_predictability(&refs, &labels, 3, 2, 5, 1);
    assert_eq!(out.len(), 3);
    for p in &out {
        assert_eq!(p.n_items, 300);
        // Text helps every pool predict itself.
        assert!(p.own.unwrap() < p.prior.unwrap() - 0.1, "{p:?}");
    }
    // What a pool loses when the others stand for it: pools 0 and 2 half agree with their
    // others (each other, and pool 1); nobody agrees with pool 1.
    let loss = |p: &arbiter_perspectives::eval::PoolPredictability| {
        p.from_others.unwrap() - p.own.unwrap()
    };
    assert!(
        loss(&out[1]) > 2.0 * loss(&out[0]).max(loss(&out[2])),
        "{out:?}"
    );
    assert!(
        out[1].from_others.unwrap() > out[1].prior.unwrap(),
        "{out:?}"
    );
}
