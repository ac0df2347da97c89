//! Annotator models may read more principal components than the item models: two pairs of
//! annotators split along a minor feature direction that the soft label depends on only
//! through its size. Whatever width the soft-label model takes, the annotator models must
//! reach the split, and a model file must keep every model's components, round-trip and
//! predict. (That they widen past a narrower shared width is the crate's unit test
//! `annotator_models_widen_past_the_shared_width_when_their_own_heads_need_it`.)

mod common;

use arbiter_core::rng::SeededRng;
use arbiter_perspectives::eval::{EvalSettings, evaluate};
use arbiter_perspectives::{Corpus, Features, ModelKind, Per, train_models};
use arbiter_stats::{DomainSpec, LabelKind, RatingsBuilder};
use common::normal;

const DIM: usize = 16;

/// Feature j has spread 16 − j, so the principal components come out in feature order: the
/// shared signal (feature 0) leads, the annotators' split (feature 5) is the sixth.
fn corpus(n_items: usize, seed: u64) -> (Corpus, Features) {
    let mut rng = SeededRng::new(seed);
    let unit: Vec<f64> = (0..n_items * DIM).map(|_| normal(&mut rng)).collect();
    let data: Vec<f32> = unit
        .iter()
        .enumerate()
        .map(|(n, &v)| (v * (DIM - n % DIM) as f64) as f32)
        .collect();
    let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), Vec::new());
    for i in 0..n_items {
        let x = &unit[i * DIM..(i + 1) * DIM];
        for (r, side) in [("r1", 1.0), ("r2", 1.0), ("r3", -1.0), ("r4", -1.0)] {
            let score = 3.0 * x[0] + side * 2.0 * x[5] + 0.3 * normal(&mut rng);
            b.push(
                &format!("item{i}"),
                r,
                if score > 0.0 { "1" } else { "0" },
                &[],
            )
            .unwrap();
        }
    }
    common::corpus("split views", b, data, DIM)
}

fn settings() -> EvalSettings {
    EvalSettings {
        bootstrap: 100,
        components_grid: vec![2, DIM],
        ..common::quick_settings()
    }
}

#[test]
fn annotator_models_read_the_components_the_soft_label_model_does_not_need() {
    let (corpus, features) = corpus(800, 3);
    let e = evaluate(&corpus, &features, &settings(), &mut |_| {}).unwrap();
    let best = e
        .components_scores
        .iter()
        .min_by(|a, b| a.dev_soft_ce.total_cmp(&b.dev_soft_ce))
        .unwrap();
    assert_eq!(e.components, best.components);
    let of = |kind: ModelKind| e.models.iter().find(|m| m.model == kind).unwrap();
    assert_eq!(of(ModelKind::SoftLabel).components, e.components);
    assert_eq!(of(ModelKind::Majority).components, e.components);
    let soft = of(ModelKind::SoftLabel).soft_ce.value;
    for kind in [ModelKind::AnnotatorHeads, ModelKind::AnnotatorEmbedding] {
        let m = of(kind);
        assert_eq!(m.components, DIM, "{kind:?}");
        assert!(
            m.soft_ce.value < soft - 0.05,
            "{kind:?}: {} vs {soft}",
            m.soft_ce.value
        );
    }
}

#[test]
fn a_model_file_holds_each_model_at_its_own_width() {
    let (corpus, features) = corpus(800, 3);
    let model = train_models(&corpus, &features, &settings(), &mut |_| {}).unwrap();
    model.validate().unwrap();
    let k_of = |kind: ModelKind| model.model(kind).unwrap().model.k;
    assert_eq!(k_of(ModelKind::AnnotatorHeads), DIM);
    assert!([2, DIM].contains(&k_of(ModelKind::SoftLabel)));
    assert_eq!(k_of(ModelKind::Majority), k_of(ModelKind::SoftLabel));
    let widest = ModelKind::ALL.into_iter().map(k_of).max().unwrap();
    assert_eq!(
        model.pca.k(),
        widest,
        "the widest model's components are kept"
    );

    let text = serde_json::to_string(&model).unwrap();
    let back: arbiter_perspectives::ModelFile = serde_json::from_str(&text).unwrap();
    back.validate().unwrap();
    let ids: Vec<String> = corpus.items.iter().map(|i| i.id.clone()).collect();
    for kind in ModelKind::ALL {
        let a = model
            .predict(&ids, &features, None, Some(kind), Per::Item)
            .unwrap();
        assert_eq!(
            a,
            back.predict(&ids, &features, None, Some(kind), Per::Item)
                .unwrap()
        );
    }
    // Where feature 5 is large the first pair says yes and the second no, by their heads.
    let per = model
        .predict(
            &ids,
            &features,
            None,
            Some(ModelKind::AnnotatorHeads),
            Per::Annotator,
        )
        .unwrap();
    let (mut agree, mut n) = (0, 0);
    for (i, p) in per.iter().enumerate() {
        let x5 = features.data[i * DIM + 5] as f64 / (DIM - 5) as f64;
        if x5.abs() < 1.0 {
            continue;
        }
        let a = p.per_annotator.as_ref().unwrap();
        let yes = |r: &str| a[r]["1"];
        n += 1;
        if (yes("r1") + yes("r2") > yes("r3") + yes("r4")) == (x5 > 0.0) {
            agree += 1;
        }
    }
    assert!(n > 100 && agree as f64 > 0.9 * n as f64, "{agree} of {n}");

    // A model wider than the file's components is refused.
    let mut broken = back.clone();
    let soft = broken
        .models
        .iter_mut()
        .find(|m| m.model.kind == ModelKind::SoftLabel)
        .unwrap();
    soft.model.k = DIM + 1;
    soft.model.weights = vec![0.0; 2 * (DIM + 1)];
    assert!(broken.validate().is_err());
}
