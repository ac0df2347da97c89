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
