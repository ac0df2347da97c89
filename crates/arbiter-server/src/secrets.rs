//! Secrets: random tokens, SHA-256 of high-entropy tokens, Argon2id for secrets that could be
//! guessed offline, and constant-time comparison. No I/O beyond the OS's randomness, no HTTP,
//! no storage: both `auth` and `db` build on it.
//!
//! Secrets people may choose or that are long-lived and guessable offline (invitation codes)
//! are stored only as Argon2id hashes. Session tokens and withdrawal codes are 128- or 256-bit
//! random values, so a fast SHA-256 of them is enough and keeps the per-request cost low; a
//! database leak still yields no usable credential.

use arbiter_core::digest::hex;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

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

/// SHA-256 of a high-entropy token, hex.
pub fn sha256_hex(token: &str) -> String {
    arbiter_core::digest::sha256_hex(token.as_bytes())
}

/// Compares two strings in time that depends only on their lengths.
pub fn ct_eq(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| ct_eq_bytes(expected.as_bytes(), p.as_bytes()))
}

fn params() -> Params {
    // OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    Params::new(19 * 1024, 2, 1, Some(32)).unwrap_or_default()
}

std::thread_local! {
    /// This thread's Argon2 memory, allocated once and reused: a fresh 19 MiB per hash would be
    /// kept by the allocator per thread anyway, and grew the server to 230 MiB in a join storm.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Raw Argon2 of `secret` under `salt` into `out`, in this thread's reused memory.
fn raw(
    argon: &Argon2,
    blocks: usize,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), SecretError> {
    BLOCKS.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::new());
        }
        argon
            .hash_password_into_with_memory(secret, salt, out, &mut memory[..blocks])
            .map_err(|e| SecretError::Failed(format!("hashing: {e}")))
    })
}

/// Argon2id (our parameters) of `secret` under a base64 salt: 32 bytes.
fn ours(secret: &str, salt: &SaltString) -> Result<[u8; 32], SecretError> {
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| SecretError::Failed(format!("salt: {e}")))?;
    let params = params();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; 32];
    raw(
        &argon,
        params.block_count(),
        secret.as_bytes(),
        salt_raw,
        &mut out,
    )?;
    Ok(out)
}

/// Argon2id PHC string of a secret, under a fresh random salt.
pub fn hash_secret(secret: &str) -> Result<String, SecretError> {
    let salt = random_salt()?;
    let out = ours(secret, &salt)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: (&params())
            .try_into()
            .map_err(|e| SecretError::Failed(format!("params: {e}")))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| SecretError::Failed(format!("output: {e}")))?),
    };
    Ok(phc.to_string())
}

/// Whether `secret` matches a stored Argon2id PHC string (compared in constant time);
/// malformed hashes never match.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    let check = || -> Option<bool> {
        let hash = PasswordHash::new(phc).ok()?;
        if hash.algorithm != argon2::ARGON2ID_IDENT {
            return None;
        }
        let version = match hash.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::V0x13,
        };
        let expected = hash.hash?;
        let params = Params::try_from(&hash).ok()?;
        let mut salt_bytes = [0u8; 64];
        let salt = hash.salt?.decode_b64(&mut salt_bytes).ok()?;
        let argon = Argon2::new(Algorithm::Argon2id, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        raw(
            &argon,
            params.block_count(),
            secret.as_bytes(),
            salt,
            &mut out,
        )
        .ok()?;
        Some(ct_eq_bytes(expected.as_bytes(), &out))
    };
    check().unwrap_or(false)
}

fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Argon2id of `secret` under a fixed salt (base64): a stable fingerprint, hex.
pub fn fingerprint(secret: &str, salt_b64: &str) -> Result<String, SecretError> {
    let salt = SaltString::from_b64(salt_b64)
        .map_err(|e| SecretError::Failed(format!("stored salt: {e}")))?;
    Ok(hex(&ours(secret, &salt)?))
}

fn random_salt() -> Result<SaltString, SecretError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| SecretError::Failed(format!("no randomness: {e}")))?;
    SaltString::encode_b64(&salt).map_err(|e| SecretError::Failed(format!("salt: {e}")))
}

/// A new random salt for [`fingerprint`], base64.
pub fn new_salt() -> Result<String, SecretError> {
    Ok(random_salt()?.as_str().to_string())
}

/// Memory-hard hashes running at once: each takes 19 MiB, so this bounds their memory
/// whatever arrives.
const HASHES_AT_ONCE: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE);

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads: as many as may hash at once, started on first use. Hashes run here
/// rather than on Tokio's blocking pool because the allocator keeps each thread's freed 19 MiB
/// for reuse: spread over the blocking pool's many threads, a join storm left hundreds of MiB
/// resident; on two threads it leaves two buffers.
fn hashers() -> Option<&'static std::sync::Mutex<std::sync::mpsc::Sender<Job>>> {
    static POOL: std::sync::OnceLock<Option<std::sync::Mutex<std::sync::mpsc::Sender<Job>>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..HASHES_AT_ONCE {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("arbiter-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .ok()?;
        }
        Some(std::sync::Mutex::new(tx))
    })
    .as_ref()
}

/// Runs `f` on a hashing thread once one of the few hashing slots is free;
/// [`SecretError::Busy`] when none frees up within 5 s, rather than queueing without bound.
pub async fn hashing<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SecretError> {
    let _permit = tokio::time::timeout(std::time::Duration::from_secs(5), HASHING.acquire())
        .await
        .map_err(|_| SecretError::Busy)?
        .map_err(|_| SecretError::Busy)?;
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    hashers()
        .ok_or_else(|| SecretError::Failed("could not start the hashing threads".into()))?
        .lock()
        .map_err(|_| SecretError::Failed("hashing threads poisoned".into()))?
        .send(job)
        .map_err(|_| SecretError::Failed("hashing threads stopped".into()))?;
    result
        .await
        .map_err(|_| SecretError::Failed("a hashing job panicked".into()))
}

/// Argon2 verification off the async workers, a bounded number at a time.
pub async fn verify_secret_blocking(secret: String, phc: String) -> Result<bool, SecretError> {
    hashing(move || verify_secret(&secret, &phc)).await
}

/// Argon2 hashing off the async workers, a bounded number at a time.
pub async fn hash_secret_blocking(secret: String) -> Result<String, SecretError> {
    hashing(move || hash_secret(&secret)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_match_the_crates_own_verifier() {
        use argon2::password_hash::PasswordVerifier;
        let phc = hash_secret("an invitation secret").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_secret("an invitation secret", &phc));
        assert!(!verify_secret("another secret", &phc));
        assert!(!verify_secret("an invitation secret", "not a hash"));
        // The argon2 crate's own verifier agrees (so stored hashes stay interchangeable).
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"an invitation secret", &parsed)
                .is_ok()
        );
        let theirs = {
            use argon2::password_hash::PasswordHasher;
            let salt = SaltString::from_b64(&new_salt().unwrap()).unwrap();
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
                .hash_password(b"x", &salt)
                .unwrap()
                .to_string()
        };
        assert!(verify_secret("x", &theirs) && !verify_secret("y", &theirs));
        let salt = new_salt().unwrap();
        assert_eq!(
            fingerprint("t", &salt).unwrap(),
            fingerprint("t", &salt).unwrap()
        );
        assert_ne!(
            fingerprint("t", &salt).unwrap(),
            fingerprint("u", &salt).unwrap()
        );
    }
}
