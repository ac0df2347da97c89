//! The perspective models, one trained shape.
//!
//! Every model is a softmax over the classes with logits linear in an item's principal
//! components z (see [`crate::linalg`]):
//!
//! - **majority** and **soft-label**: `b + W z`, fitted to the items' majority label or to
//!   the share of annotators choosing each class (each item weighing the same, as the soft
//!   metrics count them);
//! - **annotator heads**: `b + W z + δ_a + Δ_a z`, one head per annotator over the shared
//!   features, each tied to the shared head by a ridge penalty (multi-task learning with a
//!   common prior: an annotator with few labels stays near everyone's head);
//! - **annotator embedding**: `b + W z + β_a + Σ_r e_ar U_r z`, a low-rank annotator
//!   vector e_a that shares strength across annotators. With identity attributes,
//!   `e_a = M s_a + ε_a` and `β_a = B s_a + η_a` (s_a: the annotator's attribute values, one
//!   indicator each), so a new annotator is placed by what they said about themselves and
//!   refined from a few labels ([`PerspectiveModel::adapt`]).
//!
//! Training is full-batch Adam from a seeded start: the same data and seed give the same bits.

use std::collections::HashMap;

use arbiter_core::rng::SeededRng;
use serde::{Deserialize, Serialize};

use crate::linalg::gaussian;

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Fitted to each item's majority label.
    Majority,
    /// Fitted to each item's distribution of labels.
    SoftLabel,
    /// One head per annotator over shared features.
    AnnotatorHeads,
    /// Annotator embeddings (placed by identity where given).
    AnnotatorEmbedding,
}

impl ModelKind {
    /// All kinds, baselines first.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Majority,
        ModelKind::SoftLabel,
        ModelKind::AnnotatorHeads,
        ModelKind::AnnotatorEmbedding,
    ];

    /// The name used in files and flags.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Majority => "majority",
            ModelKind::SoftLabel => "soft-label",
            ModelKind::AnnotatorHeads => "annotator-heads",
            ModelKind::AnnotatorEmbedding => "annotator-embedding",
        }
    }

    /// Parse [`ModelKind::name`].
    pub fn parse(text: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|k| k.name() == text)
    }

    /// Whether the model predicts each annotator's label (not only the item's).
    pub fn per_annotator(self) -> bool {
        matches!(
            self,
            ModelKind::AnnotatorHeads | ModelKind::AnnotatorEmbedding
        )
    }
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Seed of the initial values.
    pub seed: u64,
    /// Full-batch Adam steps.
    pub steps: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Ridge on the shared weights (per unit of mean loss).
    pub l2: f64,
    /// Ridge on each annotator's own parameters, in labels' worth of loss per unit of squared
    /// norm: how strongly an annotator is pulled to the shared head (heads) or to their
    /// identity's place (embedding). The same prior holds when a new annotator is adapted from
    /// a few labels, so an annotator with as many labels as this value is pulled halfway.
    pub annotator_l2: f64,
    /// Width of the annotator embedding.
    pub rank: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            seed: 1,
            steps: 300,
            learning_rate: 0.05,
            l2: 1e-3,
            annotator_l2: 5.0,
            rank: 8,
        }
    }
}

/// One labelled example: an item (row of the component matrix), an annotator (or none for
/// item-level targets), a target distribution and a weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Row in the component matrix.
    pub item: u32,
    /// Annotator index into the model's annotators (ignored by item-level models).
    pub annotator: u32,
    /// Target distribution over the classes.
    pub target: Vec<f64>,
    /// Weight in the mean loss.
    pub weight: f64,
}

/// The fitted parameters of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerspectiveModel {
    /// Which model.
    pub kind: ModelKind,
    /// Number of classes.
    pub classes: usize,
    /// Input width (principal components).
    pub k: usize,
    /// Shared bias (C).
    pub bias: Vec<f64>,
    /// Shared weights (C × k).
    pub weights: Vec<f64>,
    /// Per annotator: bias offsets (A × C); heads and embedding models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotator_bias: Vec<f64>,
    /// Heads: per annotator weight offsets (A × C × k).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub head_weights: Vec<f64>,
    /// Embedding width r (0 for other kinds).
    #[serde(default)]
    pub rank: usize,
    /// Embedding: U (C × r × k).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basis: Vec<f64>,
    /// Embedding: each annotator's own part ε_a (A × r).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<f64>,
    /// Embedding: identity indicators' places M (S × r).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_embedding: Vec<f64>,
    /// Embedding: identity indicators' bias offsets B (S × C).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_bias: Vec<f64>,
    /// Number of identity indicators S.
    #[serde(default)]
    pub n_identity: usize,
    /// Final mean training loss (with penalties), for the record.
    pub final_loss: f64,
}

/// An annotator as the model sees them: a trained index, or an identity for a new one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Who<'a> {
    /// No particular annotator: the shared head (item models ignore annotators).
    Anyone,
    /// A trained annotator.
    Known(u32),
    /// A new annotator with these identity indicators (may be empty).
    New(&'a [u32]),
    /// A new annotator adapted from a few labels ([`PerspectiveModel::adapt`]).
    Adapted(&'a Adapted),
}

/// A new annotator's own parameters fitted from a few labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapted {
    /// Bias offsets (C).
    pub bias: Vec<f64>,
    /// Heads: weight offsets (C × k); embedding: empty.
    pub head: Vec<f64>,
    /// Embedding: the annotator's vector (r), identity place included.
    pub embedding: Vec<f64>,
}

fn softmax_in_place(v: &mut [f64]) {
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// Adam state over one flat parameter vector.
struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, params: &mut [f64], grad: &[f64], lr: f64) {
        self.t += 1;
        let (b1, b2) = (0.9f64, 0.999f64);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for i in 0..params.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * grad[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * grad[i] * grad[i];
            params[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// Where each parameter block starts in the flat vector.
#[derive(Debug, Clone, Copy)]
struct Layout {
    c: usize,
    k: usize,
    a: usize,
    r: usize,
    s: usize,
    heads: bool,
    per_annotator: bool,
}

impl Layout {
    fn bias(&self) -> usize {
        0
    }
    fn weights(&self) -> usize {
        self.c
    }
    fn annotator_bias(&self) -> usize {
        self.weights() + self.c * self.k
    }
    fn head_weights(&self) -> usize {
        self.annotator_bias()
            + if self.per_annotator {
                self.a * self.c
            } else {
                0
            }
    }
    fn basis(&self) -> usize {
        self.head_weights()
            + if self.heads {
                self.a * self.c * self.k
            } else {
                0
            }
    }
    fn embeddings(&self) -> usize {
        self.basis() + self.c * self.r * self.k
    }
    fn identity_embedding(&self) -> usize {
        self.embeddings() + self.a * self.r
    }
    fn identity_bias(&self) -> usize {
        self.identity_embedding() + self.s * self.r
    }
    fn len(&self) -> usize {
        self.identity_bias() + self.s * self.c
    }
}

/// Train one model on `examples` over the component matrix `z` (`k` wide, row-major).
/// `identity[a]` lists annotator a's identity indicators (embedding model; `n_identity` of
/// them in all).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    kind: ModelKind,
    z: &[f64],
    k: usize,
    classes: usize,
    n_annotators: usize,
    identity: &[Vec<u32>],
    n_identity: usize,
    examples: &[Example],
    opts: &TrainOptions,
) -> PerspectiveModel {
    let per_annotator = kind.per_annotator();
    let embedding = kind == ModelKind::AnnotatorEmbedding;
    let layout = Layout {
        c: classes,
        k,
        a: if per_annotator { n_annotators } else { 0 },
        r: if embedding { opts.rank } else { 0 },
        s: if embedding { n_identity } else { 0 },
        heads: kind == ModelKind::AnnotatorHeads,
        per_annotator,
    };
    let mut rng = SeededRng::new(opts.seed);
    let mut params = vec![0.0; layout.len()];
    // Start the shared bias at the log prior so early steps fit the text, not the base rate.
    let mut prior = vec![1e-3; classes];
    let total_weight: f64 = examples.iter().map(|e| e.weight).sum::<f64>().max(1e-300);
    for e in examples {
        axpy(e.weight, &e.target, &mut prior);
    }
    let prior_sum: f64 = prior.iter().sum();
    for c in 0..classes {
        params[layout.bias() + c] = (prior[c] / prior_sum).ln();
    }
    if embedding {
        for p in &mut params[layout.basis()..layout.embeddings()] {
            *p = 0.01 * gaussian(&mut rng);
        }
        for p in &mut params[layout.embeddings()..layout.identity_embedding()] {
            *p = 0.1 * gaussian(&mut rng);
        }
    }
    // Examples grouped by item, so per-item products are computed once.
    let mut by_item: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, e) in examples.iter().enumerate() {
        by_item.entry(e.item).or_default().push(i);
    }
    let mut items: Vec<(u32, Vec<usize>)> = by_item.into_iter().collect();
    items.sort_by_key(|(item, _)| *item);

    let mut adam = Adam::new(params.len());
    let mut loss = 0.0;
    // One pass over some items: the gradient of the mean loss and the loss, from those items.
    let pass = |items: &[(u32, Vec<usize>)], params: &[f64], last: bool| -> (Vec<f64>, f64) {
        let mut grad = vec![0.0; params.len()];
        let mut loss = 0.0;
        let mut logits = vec![0.0; classes];
        let mut projected = vec![0.0; classes * layout.r];
        let mut e_full = vec![0.0; layout.r];
        let mut item_u_grad = vec![0.0; classes * layout.r];
        let mut item_grad = vec![0.0; classes];
        for (item, rows) in items {
            let zi = &z[*item as usize * k..(*item as usize + 1) * k];
            let mut base = vec![0.0; classes];
            for (c, b) in base.iter_mut().enumerate() {
                *b = params[layout.bias() + c]
                    + dot(
                        &params[layout.weights() + c * k..layout.weights() + (c + 1) * k],
                        zi,
                    );
            }
            if embedding {
                for (cr, p) in projected.iter_mut().enumerate() {
                    let at = layout.basis() + cr * k;
                    *p = dot(&params[at..at + k], zi);
                }
                item_u_grad.iter_mut().for_each(|g| *g = 0.0);
            }
            item_grad.iter_mut().for_each(|g| *g = 0.0);
            for &ex in rows {
                let e = &examples[ex];
                let a = e.annotator as usize;
                logits.copy_from_slice(&base);
                if per_annotator {
                    for (c, l) in logits.iter_mut().enumerate() {
                        *l += params[layout.annotator_bias() + a * classes + c];
                    }
                }
                if layout.heads {
                    for (c, l) in logits.iter_mut().enumerate() {
                        let at = layout.head_weights() + (a * classes + c) * k;
                        *l += dot(&params[at..at + k], zi);
                    }
                }
                if embedding {
                    let own = layout.embeddings() + a * layout.r;
                    e_full.copy_from_slice(&params[own..own + layout.r]);
                    for &s in &identity[a] {
                        let at = layout.identity_embedding() + s as usize * layout.r;
                        axpy(1.0, &params[at..at + layout.r], &mut e_full);
                        for (c, l) in logits.iter_mut().enumerate() {
                            *l += params[layout.identity_bias() + s as usize * classes + c];
                        }
                    }
                    for (c, l) in logits.iter_mut().enumerate() {
                        *l += dot(&e_full, &projected[c * layout.r..(c + 1) * layout.r]);
                    }
                }
                softmax_in_place(&mut logits);
                let w = e.weight / total_weight;
                for (t, p) in e.target.iter().zip(&logits) {
                    if *t > 0.0 {
                        loss -= w * t * p.max(1e-300).ln();
                    }
                }
                if last {
                    continue;
                }
                // d loss / d logit_c = w (p_c − t_c)
                for c in 0..classes {
                    let g = w * (logits[c] - e.target[c]);
                    item_grad[c] += g;
                    if per_annotator {
                        grad[layout.annotator_bias() + a * classes + c] += g;
                    }
                    if layout.heads {
                        let at = layout.head_weights() + (a * classes + c) * k;
                        axpy(g, zi, &mut grad[at..at + k]);
                    }
                    if embedding {
                        let p = &projected[c * layout.r..(c + 1) * layout.r];
                        let own = layout.embeddings() + a * layout.r;
                        axpy(g, p, &mut grad[own..own + layout.r]);
                        for &s in &identity[a] {
                            let at = layout.identity_embedding() + s as usize * layout.r;
                            axpy(g, p, &mut grad[at..at + layout.r]);
                            grad[layout.identity_bias() + s as usize * classes + c] += g;
                        }
                        axpy(
                            g,
                            &e_full,
                            &mut item_u_grad[c * layout.r..(c + 1) * layout.r],
                        );
                    }
                }
            }
            if last {
                continue;
            }
            for c in 0..classes {
                grad[layout.bias() + c] += item_grad[c];
                let at = layout.weights() + c * k;
                axpy(item_grad[c], zi, &mut grad[at..at + k]);
            }
            if embedding {
                for (cr, &g) in item_u_grad.iter().enumerate() {
                    if g != 0.0 {
                        let at = layout.basis() + cr * k;
                        axpy(g, zi, &mut grad[at..at + k]);
                    }
                }
            }
        }
        (grad, loss)
    };
    for step in 0..=opts.steps {
        let last = step == opts.steps;
        // Two fixed halves of the items on two threads, summed in order: the same bits on any
        // machine.
        let half = items.len() / 2;
        let ((mut grad, first_loss), (second, second_loss)) = std::thread::scope(|s| {
            let other = s.spawn(|| pass(&items[half..], &params, last));
            let first = pass(&items[..half], &params, last);
            (first, other.join().expect("a training pass panicked"))
        });
        for (g, x) in grad.iter_mut().zip(&second) {
            *g += x;
        }
        loss = first_loss + second_loss;
        // Penalties: shared weights and the embedding basis and identity places by `l2` (per
        // unit of mean loss); each annotator's own parameters by `annotator_l2` labels' worth.
        let own = opts.annotator_l2 / total_weight;
        let penalties = [
            (layout.weights(), layout.annotator_bias(), opts.l2),
            (layout.annotator_bias(), layout.basis(), own),
            (layout.basis(), layout.embeddings(), opts.l2),
            (layout.embeddings(), layout.identity_embedding(), own),
            (layout.identity_embedding(), layout.len(), opts.l2),
        ];
        for (from, to, lambda) in penalties {
            for i in from..to {
                loss += lambda * params[i] * params[i];
                grad[i] += 2.0 * lambda * params[i];
            }
        }
        if step < opts.steps {
            adam.step(&mut params, &grad, opts.learning_rate);
        }
    }
    let take = |from: usize, to: usize| params[from..to].to_vec();
    PerspectiveModel {
        kind,
        classes,
        k,
        bias: take(layout.bias(), layout.weights()),
        weights: take(layout.weights(), layout.annotator_bias()),
        annotator_bias: take(layout.annotator_bias(), layout.head_weights()),
        head_weights: take(layout.head_weights(), layout.basis()),
        rank: layout.r,
        basis: take(layout.basis(), layout.embeddings()),
        embeddings: take(layout.embeddings(), layout.identity_embedding()),
        identity_embedding: take(layout.identity_embedding(), layout.identity_bias()),
        identity_bias: take(layout.identity_bias(), layout.len()),
        n_identity: layout.s,
        final_loss: loss,
    }
}

impl PerspectiveModel {
    /// Number of annotators the model was trained with (0 for item models).
    pub fn n_annotators(&self) -> usize {
        if self.kind.per_annotator() {
            self.annotator_bias.len() / self.classes
        } else {
            0
        }
    }

    /// Class probabilities for an item's components `z` and an annotator. `z` may be wider
    /// than the model: it reads the leading [`PerspectiveModel::k`] values.
    pub fn predict(&self, z: &[f64], who: Who<'_>, identity: &[Vec<u32>]) -> Vec<f64> {
        let (c_n, k, r) = (self.classes, self.k, self.rank);
        debug_assert!(z.len() >= k, "{} components for a {k}-wide model", z.len());
        let mut logits: Vec<f64> = (0..c_n)
            .map(|c| self.bias[c] + dot(&self.weights[c * k..(c + 1) * k], z))
            .collect();
        if !self.kind.per_annotator() {
            softmax_in_place(&mut logits);
            return logits;
        }
        let mut e = vec![0.0; r];
        match who {
            Who::Anyone => {}
            Who::Known(a) => {
                let a = a as usize;
                for (c, l) in logits.iter_mut().enumerate() {
                    *l += self.annotator_bias[a * c_n + c];
                }
                if self.kind == ModelKind::AnnotatorHeads {
                    for (c, l) in logits.iter_mut().enumerate() {
                        let at = (a * c_n + c) * k;
                        *l += dot(&self.head_weights[at..at + k], z);
                    }
                }
                if r > 0 {
                    e.copy_from_slice(&self.embeddings[a * r..(a + 1) * r]);
                    self.add_identity_place(
                        identity.get(a).map_or(&[], |v| v),
                        &mut logits,
                        &mut e,
                    );
                }
            }
            Who::New(ids) => {
                if r > 0 {
                    self.add_identity_place(ids, &mut logits, &mut e);
                }
            }
            Who::Adapted(adapted) => {
                axpy(1.0, &adapted.bias, &mut logits);
                if !adapted.head.is_empty() {
                    for (c, l) in logits.iter_mut().enumerate() {
                        *l += dot(&adapted.head[c * k..(c + 1) * k], z);
                    }
                }
                if r > 0 {
                    e.copy_from_slice(&adapted.embedding);
                }
            }
        }
        if r > 0 {
            for (c, l) in logits.iter_mut().enumerate() {
                let mut u = 0.0;
                for (j, ej) in e.iter().enumerate() {
                    if *ej != 0.0 {
                        let at = (c * r + j) * k;
                        u += ej * dot(&self.basis[at..at + k], z);
                    }
                }
                *l += u;
            }
        }
        softmax_in_place(&mut logits);
        logits
    }

    /// Add the places of the identity indicators among `ids` that the model has (embedding
    /// model: `B s` to the bias offsets (C), `M s` to the embedding (r)).
    fn add_identity_place(&self, ids: &[u32], bias: &mut [f64], e: &mut [f64]) {
        let (c_n, r) = (self.classes, self.rank);
        for &s in ids.iter().filter(|&&s| (s as usize) < self.n_identity) {
            let s = s as usize;
            axpy(1.0, &self.identity_embedding[s * r..(s + 1) * r], e);
            axpy(1.0, &self.identity_bias[s * c_n..(s + 1) * c_n], bias);
        }
    }

    /// A trained annotator's own parameters in [`PerspectiveModel::adapt`]'s layout: bias
    /// offsets (C), then the head's weight offsets (C × k) or the embedding (r). With `placed`
    /// the identity's part is included (the annotator's whole vector); without, only their own.
    fn own_parameters(&self, a: usize, ids: &[u32], placed: bool) -> Vec<f64> {
        let (c_n, k, r) = (self.classes, self.k, self.rank);
        let mut own = self.annotator_bias[a * c_n..(a + 1) * c_n].to_vec();
        if self.kind == ModelKind::AnnotatorHeads {
            own.extend_from_slice(&self.head_weights[a * c_n * k..(a + 1) * c_n * k]);
            return own;
        }
        let mut e = self.embeddings[a * r..(a + 1) * r].to_vec();
        if placed {
            self.add_identity_place(ids, &mut own, &mut e);
        }
        own.extend_from_slice(&e);
        own
    }

    /// The trained annotators as a population to draw a new one from: the mean of their
    /// parameters and, per block (bias offsets; head or embedding), the variance around it
    /// (empirical Bayes). `whole`: their whole vectors (for an annotator no identity places),
    /// else their own parts (added to the identity's place). `None` with fewer than two.
    fn annotator_population(
        &self,
        seen: &[bool],
        identity: &[Vec<u32>],
        whole: bool,
    ) -> Option<(Vec<f64>, [f64; 2])> {
        let trained: Vec<Vec<f64>> = (0..self.n_annotators())
            .filter(|&a| seen.get(a).copied().unwrap_or(false))
            .map(|a| self.own_parameters(a, identity.get(a).map_or(&[], |v| v), whole))
            .collect();
        if trained.len() < 2 {
            return None;
        }
        let n = trained.len() as f64;
        let mut mean = vec![0.0; trained[0].len()];
        for t in &trained {
            axpy(1.0 / n, t, &mut mean);
        }
        let c_n = self.classes;
        let mut spread = [0.0f64; 2];
        for t in &trained {
            for (i, (x, m)) in t.iter().zip(&mean).enumerate() {
                spread[usize::from(i >= c_n)] += (x - m) * (x - m);
            }
        }
        // Unbiased over annotators, pooled over the block's coordinates; floored so a block
        // every annotator shares exactly still pins rather than divides by zero.
        let widths = [c_n as f64, (mean.len() - c_n).max(1) as f64];
        let variance = [0, 1].map(|b| (spread[b] / ((n - 1.0) * widths[b])).max(1e-8));
        Some((mean, variance))
    }

    /// Fit a new annotator's own parameters from a few labelled items (rows of `z` with a
    /// class each), everything shared kept fixed: heads get a bias and weight offset, the
    /// embedding a vector. The prior is the trained annotators' population (`seen`):
    /// centred on their mean (plus the identity's place where `ids` places them), as wide as
    /// their spread, so k labels move the annotator as far as k labels should; with fewer
    /// than two trained annotators, the identity's place and the training's annotator ridge.
    /// Returns `None` for item models.
    pub fn adapt(
        &self,
        z: &[f64],
        labelled: &[(u32, u16)],
        ids: &[u32],
        seen: &[bool],
        identity: &[Vec<u32>],
        opts: &TrainOptions,
    ) -> Option<Adapted> {
        if !self.kind.per_annotator() {
            return None;
        }
        let (c_n, k, r) = (self.classes, self.k, self.rank);
        let placed = ids.iter().any(|&s| (s as usize) < self.n_identity);
        let heads = self.kind == ModelKind::AnnotatorHeads;
        // Parameters: bias offset (C), then head (C × k) or embedding (r); the anchor starts
        // at the identity's place (the heads model has no identities).
        let n_own = c_n + if heads { c_n * k } else { r };
        let mut anchor = vec![0.0; n_own];
        if !heads {
            let (bias, e) = anchor.split_at_mut(c_n);
            self.add_identity_place(ids, bias, e);
        }
        // Prior precision per coordinate, in labels' worth: 1 / σ² of the population's block,
        // or twice the training's ridge without a population.
        let mut precision = vec![2.0 * opts.annotator_l2; n_own];
        if let Some((mean, variance)) = self.annotator_population(seen, identity, !placed) {
            axpy(1.0, &mean, &mut anchor);
            for (i, p) in precision.iter_mut().enumerate() {
                *p = 1.0 / variance[usize::from(i >= c_n)];
            }
        }
        let mut own = anchor.clone();
        // Per labelled item: the shared logits and, for the embedding, U z.
        // (shared logits, U z, z, label) per labelled item.
        type Row<'z> = (Vec<f64>, Vec<f64>, &'z [f64], u16);
        let prepared: Vec<Row<'_>> = labelled
            .iter()
            .map(|&(row, label)| {
                let zi = &z[row as usize * k..(row as usize + 1) * k];
                let base: Vec<f64> = (0..c_n)
                    .map(|c| self.bias[c] + dot(&self.weights[c * k..(c + 1) * k], zi))
                    .collect();
                let proj: Vec<f64> = (0..c_n * r)
                    .map(|cr| dot(&self.basis[cr * k..(cr + 1) * k], zi))
                    .collect();
                (base, proj, zi, label)
            })
            .collect();
        let n = labelled.len().max(1) as f64;
        let mut adam = Adam::new(n_own);
        let mut grad = vec![0.0; n_own];
        for _ in 0..200 {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for (base, proj, zi, label) in &prepared {
                let mut logits = base.clone();
                axpy(1.0, &own[..c_n], &mut logits);
                for (c, l) in logits.iter_mut().enumerate() {
                    *l += if heads {
                        dot(&own[c_n + c * k..c_n + (c + 1) * k], zi)
                    } else {
                        dot(&own[c_n..], &proj[c * r..(c + 1) * r])
                    };
                }
                softmax_in_place(&mut logits);
                for c in 0..c_n {
                    let g = (logits[c] - if c == *label as usize { 1.0 } else { 0.0 }) / n;
                    grad[c] += g;
                    if heads {
                        axpy(g, zi, &mut grad[c_n + c * k..c_n + (c + 1) * k]);
                    } else {
                        axpy(g, &proj[c * r..(c + 1) * r], &mut grad[c_n..]);
                    }
                }
            }
            // The prior, over n labels: pulled toward the population's place.
            for i in 0..n_own {
                grad[i] += precision[i] / n * (own[i] - anchor[i]);
            }
            adam.step(&mut own, &grad, opts.learning_rate);
        }
        Some(Adapted {
            bias: own[..c_n].to_vec(),
            head: if heads {
                own[c_n..].to_vec()
            } else {
                Vec::new()
            },
            embedding: if heads {
                Vec::new()
            } else {
                own[c_n..].to_vec()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heads model over one component with two classes whose trained annotators differ only
    /// in their class-1 bias offset, by `offsets`.
    fn heads_model(offsets: &[f64]) -> PerspectiveModel {
        PerspectiveModel {
            kind: ModelKind::AnnotatorHeads,
            classes: 2,
            k: 1,
            bias: vec![0.0, 0.0],
            weights: vec![0.0, 0.0],
            annotator_bias: offsets.iter().flat_map(|&o| [0.0, o]).collect(),
            head_weights: vec![0.0; offsets.len() * 2],
            rank: 0,
            basis: Vec::new(),
            embeddings: Vec::new(),
            identity_embedding: Vec::new(),
            identity_bias: Vec::new(),
            n_identity: 0,
            final_loss: 0.0,
        }
    }

    fn class1_offset(m: &PerspectiveModel, labels: &[(u32, u16)], seen: &[bool]) -> f64 {
        let z = vec![0.0; 8];
        let opts = TrainOptions::default();
        let a = m.adapt(&z, labels, &[], seen, &[], &opts).unwrap();
        a.bias[1] - a.bias[0]
    }

    #[test]
    fn a_new_annotator_starts_from_the_trained_population_and_moves_as_far_as_it_is_wide() {
        // Three trained annotators around +2 (the last, untrained, is left out).
        let tight = heads_model(&[1.9, 2.0, 2.1, -5.0]);
        let wide = heads_model(&[0.0, 2.0, 4.0, -5.0]);
        let seen = [true, true, true, false];
        // No labels: the population's mean, not the shared head's 0.
        assert!((class1_offset(&tight, &[], &seen) - 2.0).abs() < 0.05);
        // Five labels of class 0 pull against it: little where annotators agree closely,
        // far where they spread.
        let against: Vec<(u32, u16)> = (0..5).map(|i| (i, 0)).collect();
        let (t, w) = (
            class1_offset(&tight, &against, &seen),
            class1_offset(&wide, &against, &seen),
        );
        assert!(t > 1.8 && t < 2.0, "tight population moved to {t}");
        assert!(w < t - 0.5, "wide population moved only to {w} (tight {t})");
        // One trained annotator is no population: the training's ridge around the shared head.
        let alone = class1_offset(&tight, &[], &[true, false, false, false]);
        assert!(alone.abs() < 0.05, "{alone}");
    }
}
