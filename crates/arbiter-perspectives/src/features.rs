//! Text features per item: a sentence embedding from the caller's encoder next to hashed
//! character n-grams.
//!
//! The embedded encoder (all-MiniLM-L6-v2) was trained on English; ArMIS is Arabic and
//! MultiPICo has nine languages. Character n-grams carry signal in any script, so every model
//! sees both blocks, each scaled to unit length so neither dominates by its width.

use std::fmt;

/// A sentence encoder at the edge (the embedded grader's MiniLM, or a test's stand-in).
pub trait Embedder {
    /// A name recorded in model files, so a model is never applied to other features.
    fn name(&self) -> String;
    /// Output width.
    fn dim(&self) -> usize;
    /// One vector of [`Embedder::dim`] values per text, in input order.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

/// How the features are made; recorded in model files and checked when a model is applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureSpec {
    /// The embedder's name, or `None` for n-grams only.
    pub embedder: Option<String>,
    /// The embedder's width (0 without one).
    pub embedding_dim: usize,
    /// Hash buckets of the character n-gram block (0 = no such block).
    pub ngram_buckets: usize,
}

impl FeatureSpec {
    /// Total width.
    pub fn dim(&self) -> usize {
        self.embedding_dim + self.ngram_buckets
    }
}

/// The default number of character n-gram buckets.
pub const DEFAULT_NGRAM_BUCKETS: usize = 2048;

/// One row of features per item, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// How they were made.
    pub spec: FeatureSpec,
    /// `n_rows × spec.dim()` values.
    pub data: Vec<f32>,
}

/// The embedder failed or answered with the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureError(pub String);

impl fmt::Display for FeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "text features: {}", self.0)
    }
}

impl std::error::Error for FeatureError {}

impl Features {
    /// Features of `texts`: the embedding block (when an embedder is given) then
    /// `ngram_buckets` hashed character n-gram values.
    pub fn build(
        texts: &[&str],
        embedder: Option<&mut dyn Embedder>,
        ngram_buckets: usize,
    ) -> Result<Features, FeatureError> {
        let (name, embedded) = match embedder {
            Some(e) => {
                let rows = e.embed(texts).map_err(FeatureError)?;
                if rows.len() != texts.len() {
                    return Err(FeatureError(format!(
                        "{} returned {} vectors for {} texts",
                        e.name(),
                        rows.len(),
                        texts.len()
                    )));
                }
                if let Some(bad) = rows.iter().find(|r| r.len() != e.dim()) {
                    return Err(FeatureError(format!(
                        "{} returned a vector of {} values, expected {}",
                        e.name(),
                        bad.len(),
                        e.dim()
                    )));
                }
                (Some((e.name(), e.dim())), rows)
            }
            None => (None, Vec::new()),
        };
        let spec = FeatureSpec {
            embedder: name.as_ref().map(|(n, _)| n.clone()),
            embedding_dim: name.as_ref().map_or(0, |(_, d)| *d),
            ngram_buckets,
        };
        let dim = spec.dim();
        let mut data = vec![0f32; texts.len() * dim];
        for (i, text) in texts.iter().enumerate() {
            let row = &mut data[i * dim..(i + 1) * dim];
            if let Some(e) = embedded.get(i) {
                let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
                let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                for (o, v) in row.iter_mut().zip(e) {
                    *o = v * scale;
                }
            }
            char_ngrams(text, &mut row[spec.embedding_dim..]);
        }
        Ok(Features { spec, data })
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.spec.dim()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim()).unwrap_or(0)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.data[i * d..(i + 1) * d]
    }
}

/// Add the text's character 2-, 3- and 4-grams (lower-cased, whitespace runs as one space,
/// the text padded by a space at each end) into `out` by FNV-1a hash, then replace each count
/// c by 1 + ln c and scale the block to unit length. An empty text or block stays zero.
pub fn char_ngrams(text: &str, out: &mut [f32]) {
    if out.is_empty() {
        return;
    }
    let mut chars: Vec<char> = Vec::with_capacity(text.len() + 2);
    chars.push(' ');
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c.is_whitespace() { ' ' } else { c };
        if !(c == ' ' && chars.last() == Some(&' ')) {
            chars.push(c);
        }
    }
    if chars.last() != Some(&' ') {
        chars.push(' ');
    }
    let buckets = out.len() as u64;
    let mut counts = std::collections::HashMap::<usize, u32>::new();
    for n in 2..=4 {
        for window in chars.windows(n) {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ n as u64;
            for c in window {
                for b in (*c as u32).to_le_bytes() {
                    h ^= b as u64;
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            *counts.entry((h % buckets) as usize).or_insert(0) += 1;
        }
    }
    let mut sum_sq = 0f64;
    for (&bucket, &c) in &counts {
        let v = 1.0 + (c as f64).ln();
        out[bucket] = v as f32;
        sum_sq += v * v;
    }
    if sum_sq > 0.0 {
        let scale = (1.0 / sum_sq.sqrt()) as f32;
        for &bucket in counts.keys() {
            out[bucket] *= scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Embedder for Fixed {
        fn name(&self) -> String {
            "fixed".into()
        }
        fn dim(&self) -> usize {
            2
        }
        fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
            Ok(texts.iter().map(|t| vec![t.len() as f32, 0.0]).collect())
        }
    }

    #[test]
    fn blocks_are_unit_length_and_case_and_spacing_do_not_matter() {
        let f = Features::build(&["Hi  there", "hi there", ""], Some(&mut Fixed), 64).unwrap();
        assert_eq!(f.dim(), 66);
        assert_eq!(f.len(), 3);
        assert_eq!(f.row(0)[..2], [1.0, 0.0]);
        assert_eq!(f.row(0)[2..], f.row(1)[2..]);
        let norm: f32 = f.row(0)[2..].iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(f.row(2).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn one_letter_gives_two_bigrams_and_a_trigram_of_equal_weight() {
        // " a" and "a " are the only bigrams of "a", plus one trigram " a ": three buckets at
        // most, each 1 + ln 1 = 1 before scaling.
        let mut out = vec![0f32; 1 << 16];
        char_ngrams("a", &mut out);
        let set: Vec<f32> = out.iter().copied().filter(|&v| v > 0.0).collect();
        assert_eq!(set.len(), 3);
        for v in set {
            assert!((v - 1.0 / 3f32.sqrt()).abs() < 1e-6);
        }
    }
}
