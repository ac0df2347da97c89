//! How well each pool's labels are predicted from the item texts by a model fitted on the
//! other pools' labels, behind a small seam.
//!
//! [`PerspectivesFit`] delegates to `arbiter-perspectives` (soft-label models over character
//! n-grams, cross-fitted by item folds), so the dashboard and `arbiter perspectives` share one
//! implementation; tests may swap in another [`Predictability`]. Callers pass pools already
//! regrouped as their released classes: nothing here knows about identity.

use serde::Serialize;

/// One label: dense item index (into the texts), pool index and class index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLabel {
    /// Index into the texts.
    pub item: u32,
    /// Pool index, below `n_pools`.
    pub pool: u32,
    /// Class index, below `n_classes`.
    pub class: u16,
}

/// Soft cross-entropies (nats, lower is better) of one pool's label shares per item, each
/// item scored by models not fitted on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolFit {
    /// Items the pool labelled, each scored once.
    pub items_scored: usize,
    /// Model fitted on every other pool's labels.
    pub from_others: Option<f64>,
    /// Model fitted on this pool's own labels.
    pub own: Option<f64>,
    /// This pool's label shares, ignoring the text.
    pub prior: Option<f64>,
}

/// Computes per-pool predictability.
pub trait Predictability: Send + Sync {
    /// One [`PoolFit`] per pool `0..n_pools`, in order. `texts[i]` is item `i`'s text.
    fn per_pool(
        &self,
        texts: &[&str],
        labels: &[PoolLabel],
        n_pools: usize,
        n_classes: usize,
    ) -> Vec<PoolFit>;
}

/// `arbiter_perspectives::eval::pool_predictability` with a fixed seed, so the dashboard shows
/// the same figures for the same labels on every request.
#[derive(Debug, Clone, Copy)]
pub struct PerspectivesFit {
    /// Item folds (at least 2).
    pub folds: usize,
    /// Seed of the folds and the projection.
    pub seed: u64,
}

impl Default for PerspectivesFit {
    fn default() -> Self {
        PerspectivesFit { folds: 5, seed: 0 }
    }
}

impl Predictability for PerspectivesFit {
    fn per_pool(
        &self,
        texts: &[&str],
        labels: &[PoolLabel],
        n_pools: usize,
        n_classes: usize,
    ) -> Vec<PoolFit> {
        let triples: Vec<(u32, u32, u16)> =
            labels.iter().map(|l| (l.item, l.pool, l.class)).collect();
        arbiter_perspectives::eval::pool_predictability(
            texts, &triples, n_pools, n_classes, self.folds, self.seed,
        )
        .into_iter()
        .map(|p| PoolFit {
            items_scored: p.n_items,
            from_others: p.from_others,
            own: p.own,
            prior: p.prior,
        })
        .collect()
    }
}

/// Remembers the last few results of another [`Predictability`] by a digest of its inputs, so
/// reloading a dashboard whose labels did not change costs a hash, not a fit (0.3 to 1.7 s on
/// two cores at 3,600 to 18,000 labels). The fit is a pure function of its inputs (a fixed seed),
/// so a remembered result is exactly the one a new fit would give; nothing needs invalidating.
pub struct Cached<P> {
    inner: P,
    entries: std::sync::Mutex<std::collections::VecDeque<([u8; 32], Vec<PoolFit>)>>,
}

/// Results kept: a few projects' dashboards at once.
const CACHED_FITS: usize = 16;

impl<P: Predictability> Cached<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        Cached {
            inner,
            entries: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    fn digest(texts: &[&str], labels: &[PoolLabel], n_pools: usize, n_classes: usize) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update((n_pools as u64).to_le_bytes());
        h.update((n_classes as u64).to_le_bytes());
        h.update((texts.len() as u64).to_le_bytes());
        for t in texts {
            // Length-prefixed, so two texts cannot be re-cut into two others.
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        for l in labels {
            h.update(l.item.to_le_bytes());
            h.update(l.pool.to_le_bytes());
            h.update(l.class.to_le_bytes());
        }
        h.finalize().into()
    }
}

impl<P: Predictability> Predictability for Cached<P> {
    fn per_pool(
        &self,
        texts: &[&str],
        labels: &[PoolLabel],
        n_pools: usize,
        n_classes: usize,
    ) -> Vec<PoolFit> {
        let key = Self::digest(texts, labels, n_pools, n_classes);
        // A poisoned lock only means another fit panicked; the entries stay valid.
        let lookup = |entries: &std::collections::VecDeque<([u8; 32], Vec<PoolFit>)>| {
            entries
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        if let Some(hit) = lookup(&self.entries.lock().unwrap_or_else(|e| e.into_inner())) {
            return hit;
        }
        let fits = self.inner.per_pool(texts, labels, n_pools, n_classes);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if lookup(&entries).is_none() {
            if entries.len() == CACHED_FITS {
                entries.pop_front();
            }
            entries.push_back((key, fits.clone()));
        }
        fits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its fits; each result names how many labels it saw.
    struct Counting(AtomicUsize);

    impl Predictability for Counting {
        fn per_pool(
            &self,
            _texts: &[&str],
            labels: &[PoolLabel],
            n_pools: usize,
            _n_classes: usize,
        ) -> Vec<PoolFit> {
            self.0.fetch_add(1, Ordering::SeqCst);
            vec![
                PoolFit {
                    items_scored: labels.len(),
                    from_others: Some(0.5),
                    own: None,
                    prior: Some(0.7),
                };
                n_pools
            ]
        }
    }

    fn label(item: u32, pool: u32, class: u16) -> PoolLabel {
        PoolLabel { item, pool, class }
    }

    #[test]
    fn same_inputs_are_fitted_once_and_any_change_refits() {
        let cached = Cached::new(Counting(AtomicUsize::new(0)));
        let texts = ["ab", "c"];
        let labels = [label(0, 0, 1), label(1, 1, 0)];
        let first = cached.per_pool(&texts, &labels, 2, 2);
        assert_eq!(cached.per_pool(&texts, &labels, 2, 2), first);
        assert_eq!(cached.inner.0.load(Ordering::SeqCst), 1);
        // A changed label, a re-cut text, another pool count: each a new fit.
        let changed = [label(0, 0, 0), label(1, 1, 0)];
        assert_eq!(cached.per_pool(&texts, &changed, 2, 2)[0].items_scored, 2);
        cached.per_pool(&["a", "bc"], &labels, 2, 2);
        cached.per_pool(&texts, &labels, 3, 2);
        assert_eq!(cached.inner.0.load(Ordering::SeqCst), 4);
        // The oldest results make way once the cache is full.
        for n in 0..CACHED_FITS {
            let many: Vec<PoolLabel> = (0..=n as u32)
                .map(|i| label(0, 0, (i % 2) as u16))
                .collect();
            cached.per_pool(&texts, &many, 2, 2);
        }
        cached.per_pool(&texts, &labels, 2, 2);
        assert_eq!(cached.inner.0.load(Ordering::SeqCst), 4 + CACHED_FITS + 1);
    }
}
