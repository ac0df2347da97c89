//! Secrets: random tokens, SHA-256 of high-entropy tokens, Argon2id for secrets that could be
//! guessed offline, and constant-time comparison. No I/O beyond the OS's randomness, no HTTP,
//! no storage: both `auth` and `db` build on it.
//!
//! Secrets people may choose or that are long-lived and guessable offline (invitation codes)
//! are stored only as Argon2id hashes. Session tokens and withdrawal codes are 128- or 256-bit
//! random values, so a fast SHA-256 of them is enough and keeps the per-request cost low; a
//! database leak still yields no usable credential.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

/// Why a secret could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Every hashing slot stayed busy: the caller should answer "retry later".
    #[error("the server is busy checking codes; please retry in a moment")]
    Busy,
    /// No randomness, a malformed salt, a failed task.
    #[error("{0}")]
    Failed(String),
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, SecretError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| SecretError::Failed(format!("no randomness: {e}")))?;
    Ok(hex(&buf))
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of a high-entropy token, hex.
pub fn sha256_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Compares two strings in time that depends only on their lengths.
pub fn ct_eq(expected: &str, presented: Option<&str>) -> bool {
    let Some(p) = presented else { return false };
    let (a, b) = (expected.as_bytes(), p.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn argon2() -> Argon2<'static> {
    // OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2id PHC string of a secret.
pub fn hash_secret(secret: &str) -> Result<String, SecretError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| SecretError::Failed(format!("no randomness: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| SecretError::Failed(format!("salt: {e}")))?;
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Failed(format!("hashing: {e}")))
}

/// Whether `secret` matches a stored Argon2 PHC string; malformed hashes never match.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2().verify_password(secret.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Argon2id of `secret` under a fixed salt (base64): a stable fingerprint, hex.
pub fn fingerprint(secret: &str, salt_b64: &str) -> Result<String, SecretError> {
    let salt = SaltString::from_b64(salt_b64)
        .map_err(|e| SecretError::Failed(format!("stored salt: {e}")))?;
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.hash.map(|o| hex(o.as_bytes())).unwrap_or_default())
        .map_err(|e| SecretError::Failed(format!("hashing: {e}")))
}

/// A new random salt for [`fingerprint`], base64.
pub fn new_salt() -> Result<String, SecretError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| SecretError::Failed(format!("no randomness: {e}")))?;
    SaltString::encode_b64(&salt)
        .map(|s| s.as_str().to_string())
        .map_err(|e| SecretError::Failed(format!("salt: {e}")))
}

/// Memory-hard hashes running at once: each takes 19 MiB, so this bounds their memory (and
/// their share of the blocking pool) whatever arrives.
const HASHES_AT_ONCE: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE);

/// Runs `f` on the blocking pool once one of the few hashing slots is free; [`SecretError::Busy`]
/// when none frees up within 5 s, rather than queueing without bound.
pub async fn hashing<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SecretError> {
    let _permit = tokio::time::timeout(std::time::Duration::from_secs(5), HASHING.acquire())
        .await
        .map_err(|_| SecretError::Busy)?
        .map_err(|_| SecretError::Busy)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SecretError::Failed(format!("hashing task failed: {e}")))
}

/// Argon2 verification off the async workers, a bounded number at a time.
pub async fn verify_secret_blocking(secret: String, phc: String) -> Result<bool, SecretError> {
    hashing(move || verify_secret(&secret, &phc)).await
}

/// Argon2 hashing off the async workers, a bounded number at a time.
pub async fn hash_secret_blocking(secret: String) -> Result<String, SecretError> {
    hashing(move || hash_secret(&secret)).await?
}
