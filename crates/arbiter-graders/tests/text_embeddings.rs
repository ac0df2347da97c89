//! The cached text embedder against the encoder itself: a miss computes what `MiniLm::embed`
//! gives, a hit returns the same bits, and a damaged cache file is replaced, never read.
//! Skipped with a reason when the model is not installed (required under ARBITER_REQUIRE_MODEL).

use std::path::PathBuf;

use arbiter_graders::embedded::model::{MiniLm, default_model_dir};
use arbiter_graders::embedded::text_embeddings::{self, CacheOutcome, TextEmbedder};

fn model_dir_or_skip() -> Option<PathBuf> {
    let dir = default_model_dir();
    arbiter_testkit::model_installed(&dir).then_some(dir)
}

#[test]
fn cache_hits_equal_fresh_embeddings_and_corruption_is_rewritten() {
    let Some(model_dir) = model_dir_or_skip() else {
        return;
    };
    let cache = std::env::temp_dir().join(format!("arbiter-embtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let texts = [
        "Cheap £ means foreigners will be flocking here this summer",
        "agent: Please go on.\nuser: yes",
        "",
        "لا أحد يحب هذا",
    ];
    let mut embedder = TextEmbedder::load(&model_dir, 256)
        .unwrap()
        .with_cache_dir(Some(cache.clone()));
    let mut calls = 0;
    let (fresh, outcome) = embedder.embed(&texts, &mut |_| calls += 1).unwrap();
    assert!(calls > 0);
    let CacheOutcome::Written(path) = outcome else {
        panic!("{outcome:?}")
    };
    let direct = MiniLm::load(&model_dir, 256)
        .unwrap()
        .embed(&texts, 8)
        .unwrap();
    assert_eq!(fresh.len(), 4);
    for (a, b) in fresh.iter().zip(&direct) {
        assert_eq!(a.len(), 384);
        let dist: f32 = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum();
        assert!(dist < 1e-3, "{dist}");
    }

    let (hit, outcome) = embedder.embed(&texts, &mut |_| panic!("computed")).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit(path.clone()));
    assert_eq!(hit, fresh);

    // Another text list has another key.
    let (_, other) = embedder.embed(&texts[..3], &mut |_| {}).unwrap();
    assert!(matches!(other, CacheOutcome::Written(p) if p != path));

    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (again, outcome) = embedder.embed(&texts, &mut |_| {}).unwrap();
    assert!(
        matches!(&outcome, CacheOutcome::Replaced(p, why) if *p == path && why.contains("checksum")),
        "{outcome:?}"
    );
    assert_eq!(again, fresh);
    let (_, outcome) = embedder.embed(&texts, &mut |_| panic!("computed")).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit(path));
    std::fs::remove_dir_all(&cache).unwrap();
}

/// A run whose texts are all cached never reads the model: a lazy embedder over a directory
/// with no model gives the cached rows, and only a text set that is not cached fails, naming
/// the missing model.
#[test]
fn cached_texts_need_no_model() {
    let cache = std::env::temp_dir().join(format!("arbiter-emblazy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let nowhere = cache.join("no-model-here");
    let mut embedder = TextEmbedder::lazy(&nowhere, 256).with_cache_dir(Some(cache.clone()));
    let texts = ["one", "two"];
    let rows: Vec<Vec<f32>> = (0..2)
        .map(|r| (0..384).map(|c| (r * 384 + c) as f32 / 1000.0).collect())
        .collect();
    let key = embedder.cache_key(&texts);
    let path = cache.join(format!(
        "{}.f32",
        key.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    std::fs::create_dir_all(&cache).unwrap();
    text_embeddings::write_matrix(&path, &key, &rows, 384).unwrap();
    let (got, outcome) = embedder.embed(&texts, &mut |_| panic!("computed")).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit(path));
    assert_eq!(got, rows);
    let err = embedder.embed(&texts[..1], &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("no-model-here"), "{err}");
    // The token limit is the pinned model's, as a loaded model would apply it.
    assert_eq!(
        TextEmbedder::lazy(&nowhere, 100_000).name(),
        "all-minilm-l6-v2/mean/max512"
    );
    let _ = std::fs::remove_dir_all(&cache);
}
