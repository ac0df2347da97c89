//! Sentence embeddings of many texts with an on-disk cache of the whole matrix.
//!
//! Evaluating perspective models embeds the same dataset again and again (several seeds, each
//! subcommand); on two cores MiniLM takes minutes for MD-Agreement's 10,753 texts. The matrix is
//! kept under `<cache>/embeddings/all-minilm-l6-v2/<key>.f32`, `key` = SHA-256 of the settings
//! and every text. A file is used only when its header, length, key and payload checksum all
//! agree; anything else is ignored and rewritten, never trusted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::model::{EMBEDDING_DIM, MAX_POSITIONS, MODEL_FILES, MODEL_NAME, MiniLm};
use crate::GraderError;
use arbiter_core::digest::hex;

/// The cache file's first bytes (the format's version is part of it).
const MAGIC: &[u8; 8] = b"ARBEMB01";
/// Magic, rows, width, key, payload checksum.
const HEADER_LEN: usize = 8 + 8 + 8 + 32 + 32;

/// Default token limit (`[CLS]` and `[SEP]` included): sentence-transformers' setting for
/// all-MiniLM-L6-v2.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Texts per encoder batch.
pub const DEFAULT_BATCH: usize = 32;

/// Where embedding matrices are cached: `$ARBITER_CACHE/embeddings/all-minilm-l6-v2` (default
/// `~/.cache/arbiter/…`), or `None` without a home directory.
pub fn default_embedding_cache_dir() -> Option<PathBuf> {
    crate::default_cache_dir().map(|d| d.join("embeddings").join(MODEL_NAME))
}

/// How a call to [`TextEmbedder::embed`] got its vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache directory: computed.
    Off,
    /// Read from this file.
    Hit(PathBuf),
    /// Computed and written to this file.
    Written(PathBuf),
    /// A file was there but failed its checks (the reason); computed and rewritten.
    Replaced(PathBuf, String),
    /// Computed; the file could not be written (the reason). The vectors are still right.
    WriteFailed(PathBuf, String),
}

/// MiniLM mean-pooled, unit-length sentence embeddings with the matrix cache.
pub struct TextEmbedder {
    /// The model, loaded when first needed: a run whose texts are all cached never reads it.
    model: Option<MiniLm>,
    dir: PathBuf,
    max_tokens: usize,
    batch: usize,
    cache_dir: Option<PathBuf>,
}

impl TextEmbedder {
    /// Load and verify the model from `dir` (texts cut to `max_tokens`), caching in the
    /// default directory.
    pub fn load(dir: &Path, max_tokens: usize) -> Result<TextEmbedder, GraderError> {
        let mut e = TextEmbedder::lazy(dir, max_tokens);
        e.model()?;
        Ok(e)
    }

    /// [`TextEmbedder::load`], but the model is read (and its files checked) only when a set
    /// of texts is not in the cache, so that a cached run needs neither the model nor the
    /// seconds it takes to load. A missing or damaged model is then that call's error.
    pub fn lazy(dir: &Path, max_tokens: usize) -> TextEmbedder {
        TextEmbedder {
            model: None,
            dir: dir.to_path_buf(),
            // The pinned config's limit, which `MiniLm::load` applies the same way.
            max_tokens: max_tokens.clamp(2, MAX_POSITIONS),
            batch: DEFAULT_BATCH,
            cache_dir: default_embedding_cache_dir(),
        }
    }

    /// The model, loaded on first use.
    fn model(&mut self) -> Result<&MiniLm, GraderError> {
        if self.model.is_none() {
            let model = MiniLm::load(&self.dir, self.max_tokens)?;
            debug_assert_eq!(model.max_tokens(), self.max_tokens);
            self.model = Some(model);
        }
        Ok(self.model.as_ref().expect("loaded above"))
    }

    /// Cache in `dir` instead (`None`: no cache).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> TextEmbedder {
        self.cache_dir = dir;
        self
    }

    /// Model name and settings, as recorded in feature specs.
    pub fn name(&self) -> String {
        format!("{MODEL_NAME}/mean/max{}", self.max_tokens)
    }

    /// Output width.
    pub fn dim(&self) -> usize {
        EMBEDDING_DIM
    }

    /// The cache key of `texts` under these settings: SHA-256 over the format, the model's
    /// pinned weights checksum, the pooling and token limit, then each text length-prefixed.
    pub fn cache_key(&self, texts: &[&str]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(MAGIC);
        h.update(MODEL_FILES[0].1.as_bytes());
        h.update(self.name().as_bytes());
        h.update((texts.len() as u64).to_le_bytes());
        for t in texts {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        h.finalize().into()
    }

    /// One vector per text, in input order, from the cache when a sound file is there.
    /// `progress` is called with the number of texts embedded so far (not on a hit).
    pub fn embed(
        &mut self,
        texts: &[&str],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Vec<f32>>, CacheOutcome), GraderError> {
        let key = self.cache_key(texts);
        let path = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{}.f32", hex(&key))));
        let mut stale = None;
        if let Some(p) = &path {
            match read_matrix(p, &key, texts.len(), EMBEDDING_DIM) {
                Ok(Some(rows)) => return Ok((rows, CacheOutcome::Hit(p.clone()))),
                Ok(None) => {}
                Err(why) => stale = Some(why),
            }
        }
        let batch = self.batch;
        let rows = self
            .model()?
            .embed_pooled(texts, batch, progress, &|states| {
                super::model::normalised(&super::model::mean_pool(states))
            })?;
        let outcome = match path {
            None => CacheOutcome::Off,
            Some(p) => match write_matrix(&p, &key, &rows, EMBEDDING_DIM) {
                Ok(()) => match stale {
                    Some(why) => CacheOutcome::Replaced(p, why),
                    None => CacheOutcome::Written(p),
                },
                Err(e) => CacheOutcome::WriteFailed(p, e.to_string()),
            },
        };
        Ok((rows, outcome))
    }
}

/// The cached matrix at `path`: `Ok(None)` when there is no file, `Err(reason)` when there is
/// one that fails a check (wrong length, header, key, checksum or a non-finite value).
pub fn read_matrix(
    path: &Path,
    key: &[u8; 32],
    rows: usize,
    dim: usize,
) -> Result<Option<Vec<Vec<f32>>>, String> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let payload_len = rows
        .checked_mul(dim)
        .and_then(|n| n.checked_mul(4))
        .ok_or("size overflows")?;
    if bytes.len() != HEADER_LEN + payload_len {
        return Err(format!(
            "{} bytes, expected {}",
            bytes.len(),
            HEADER_LEN + payload_len
        ));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
    if &header[..8] != MAGIC {
        return Err("not an embedding cache file".into());
    }
    if u64_at(8) != rows as u64 || u64_at(16) != dim as u64 {
        return Err(format!(
            "shape {}×{}, expected {rows}×{dim}",
            u64_at(8),
            u64_at(16)
        ));
    }
    if &header[24..56] != key {
        return Err("key differs".into());
    }
    if header[56..88] != Sha256::digest(payload)[..] {
        return Err("payload checksum differs".into());
    }
    let mut out = Vec::with_capacity(rows);
    for row in payload.chunks_exact(dim * 4) {
        let v: Vec<f32> = row
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err("a value is not finite".into());
        }
        out.push(v);
    }
    Ok(Some(out))
}

/// Write the matrix atomically: a temporary file in the same directory, synced, then renamed
/// over `path`, so a reader sees the old file or the whole new one.
pub fn write_matrix(
    path: &Path,
    key: &[u8; 32],
    rows: &[Vec<f32>],
    dim: usize,
) -> std::io::Result<()> {
    if let Some(bad) = rows.iter().position(|r| r.len() != dim) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("row {bad} has {} values, expected {dim}", rows[bad].len()),
        ));
    }
    let mut payload = Vec::with_capacity(rows.len() * dim * 4);
    for v in rows.iter().flatten() {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(rows.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(dim as u64).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("matrix"),
        std::process::id()
    ));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("arbiter-embcache-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_every_corruption_is_refused() {
        let dir = temp_dir("rt");
        let path = dir.join("m.f32");
        let key = [7u8; 32];
        let rows = vec![vec![0.5f32, -1.0, 2.0], vec![3.0, 0.0, -0.25]];
        assert_eq!(read_matrix(&path, &key, 2, 3), Ok(None));
        write_matrix(&path, &key, &rows, 3).unwrap();
        assert_eq!(read_matrix(&path, &key, 2, 3), Ok(Some(rows.clone())));
        assert!(
            read_matrix(&path, &[8u8; 32], 2, 3)
                .unwrap_err()
                .contains("key")
        );
        assert!(
            read_matrix(&path, &key, 3, 3)
                .unwrap_err()
                .contains("bytes")
        );
        assert!(
            read_matrix(&path, &key, 3, 2)
                .unwrap_err()
                .contains("shape")
        );

        let good = fs::read(&path).unwrap();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert!(
            read_matrix(&path, &key, 2, 3)
                .unwrap_err()
                .contains("checksum")
        );
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(
            read_matrix(&path, &key, 2, 3)
                .unwrap_err()
                .contains("bytes")
        );
        let mut magic = good.clone();
        magic[0] = b'X';
        fs::write(&path, &magic).unwrap();
        assert!(read_matrix(&path, &key, 2, 3).is_err());

        assert!(write_matrix(&path, &key, &[vec![1.0]], 3).is_err());
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
