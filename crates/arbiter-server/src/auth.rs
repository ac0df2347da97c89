//! Credentials: random tokens, hashing, sessions, role extractors and CSRF checks.
//!
//! Secrets people may choose or that are long-lived and guessable offline (the admin token,
//! invitation codes) are stored only as Argon2id hashes. Session tokens are 256-bit random
//! values, so a fast SHA-256 of them in the database is enough and keeps the per-request cost
//! low; a database leak still yields no usable session.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::AppError;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "arbiter_session";
/// Header carrying the CSRF token on JSON posts made with a session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Session lifetime.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, AppError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| AppError::from(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
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

fn argon2() -> Argon2<'static> {
    // OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2id PHC string of a secret.
pub fn hash_secret(secret: &str) -> Result<String, AppError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| AppError::from(anyhow::anyhow!("no randomness: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| AppError::from(anyhow::anyhow!("salt: {e}")))?;
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::from(anyhow::anyhow!("hashing: {e}")))
}

/// Whether `secret` matches a stored Argon2 PHC string; malformed hashes never match.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2().verify_password(secret.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Memory-hard hashes running at once: each takes 19 MiB, so this bounds their memory (and
/// their share of the blocking pool) whatever arrives.
const HASHES_AT_ONCE: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE);

/// Runs `f` on the blocking pool once one of the few hashing slots is free; answers 503 when
/// none frees up within 5 s rather than queueing without bound.
async fn hashing<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let busy = || {
        AppError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy checking codes; please retry in a moment",
        )
    };
    let _permit = tokio::time::timeout(std::time::Duration::from_secs(5), HASHING.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::from(anyhow::anyhow!("hashing task failed: {e}")))
}

/// Argon2 verification off the async workers, a bounded number at a time.
pub async fn verify_secret_blocking(secret: String, phc: String) -> Result<bool, AppError> {
    hashing(move || verify_secret(&secret, &phc)).await
}

/// Argon2 hashing off the async workers, a bounded number at a time.
pub async fn hash_secret_blocking(secret: String) -> Result<String, AppError> {
    hashing(move || hash_secret(&secret)).await?
}

/// The admin credential.
///
/// The token arrives in the environment, so the process holds it anyway: requests are checked
/// against its SHA-256 in constant time, with no memory-hard work an attacker could trigger.
/// Admin sessions store `key_id`, an Argon2id hash of the token under a per-database salt, and
/// only sessions with the current `key_id` are honoured: a new token ends every old session.
pub struct AdminKey {
    digest: String,
    key_id: String,
}

impl AdminKey {
    /// Derives the check digest and the session key id; the plain token is not kept.
    pub async fn new(token: &str, db: &crate::db::Db) -> Result<Self, AppError> {
        if token.len() < 16 {
            return Err(AppError::bad(
                "ARBITER_ADMIN_TOKEN must be at least 16 characters",
            ));
        }
        let salt = db
            .setting("admin_session_salt", || {
                let mut salt = [0u8; 16];
                getrandom::fill(&mut salt)
                    .map_err(|e| AppError::from(anyhow::anyhow!("no randomness: {e}")))?;
                SaltString::encode_b64(&salt)
                    .map(|s| s.as_str().to_string())
                    .map_err(|e| AppError::from(anyhow::anyhow!("salt: {e}")))
            })
            .await?;
        let owned = token.to_string();
        let key_id = hashing(move || {
            let salt = SaltString::from_b64(&salt)
                .map_err(|e| AppError::from(anyhow::anyhow!("stored salt: {e}")))?;
            argon2()
                .hash_password(owned.as_bytes(), &salt)
                .map(|h| h.hash.map(|o| hex(o.as_bytes())).unwrap_or_default())
                .map_err(|e| AppError::from(anyhow::anyhow!("hashing: {e}")))
        })
        .await??;
        Ok(Self {
            digest: sha256_hex(token),
            key_id,
        })
    }

    /// Checks a presented token in constant time.
    pub fn check(&self, presented: &str) -> bool {
        csrf_matches(&self.digest, Some(&sha256_hex(presented)))
    }

    /// What admin sessions opened now are bound to.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// Value of one cookie from the request headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    header_cookie(&parts.headers, name)
}

/// Value of one cookie from a header map.
pub fn header_cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={SESSION_SECONDS}"
    )
}

/// `Set-Cookie` value that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0")
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct Session {
    /// "admin" or "rater".
    pub role: String,
    /// The rater, for rater sessions.
    pub rater_id: Option<i64>,
    /// CSRF token bound to the session.
    pub csrf: String,
    /// For admin sessions: the admin key they were opened with.
    pub admin_key: Option<String>,
}

async fn load_session(parts: &Parts, state: &AppState) -> Result<Option<Session>, AppError> {
    let Some(token) = cookie(parts, SESSION_COOKIE) else {
        return Ok(None);
    };
    state.db.session(&sha256_hex(token)).await
}

/// Compares CSRF tokens in constant time.
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    let Some(p) = presented else { return false };
    let (a, b) = (expected.as_bytes(), p.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct Admin {
    /// CSRF token when authenticated by cookie; `None` for bearer requests (not ambient).
    pub csrf: Option<String>,
}

impl Admin {
    /// Refuses a cookie-authenticated state change without the session's CSRF token.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), AppError> {
        match &self.csrf {
            Some(expected) if !csrf_matches(expected, presented) => {
                Err(AppError::forbidden("missing or wrong CSRF token"))
            }
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(auth) = parts.headers.get(AUTHORIZATION) {
            let value = auth.to_str().unwrap_or("");
            let token = value.strip_prefix("Bearer ").unwrap_or("");
            return if !token.is_empty() && state.admin.check(token) {
                Ok(Admin { csrf: None })
            } else {
                Err(AppError::unauthorized())
            };
        }
        match load_session(parts, state).await? {
            Some(s) if s.role == "admin" => {
                if s.admin_key.as_deref() == Some(state.admin.key_id()) {
                    Ok(Admin { csrf: Some(s.csrf) })
                } else {
                    // Opened under an earlier admin token: rotating the token ended it.
                    Err(AppError::unauthorized())
                }
            }
            Some(_) => Err(AppError::forbidden("admin only")),
            None => Err(AppError::unauthorized()),
        }
    }
}

/// An authenticated rater who has not withdrawn.
#[derive(Debug, Clone)]
pub struct Rater {
    /// Rater id.
    pub id: i64,
    /// The rater's project.
    pub project_id: i64,
    /// The rater's pool, once known.
    pub pool_id: Option<i64>,
    /// Pseudonymous id used in exports.
    pub pseudonym: String,
    /// When consent was given.
    pub consented_at: Option<i64>,
    /// When the questionnaire was answered or declined.
    pub questionnaire_at: Option<i64>,
    /// Start of the current work session (reset after a break).
    pub work_started_at: i64,
    /// Qualification round: 0 regular work, k in round k, -1 out of rounds.
    pub qual_round: i64,
    /// Gold items answered in the current round.
    pub round_answered: i64,
    /// Of which correct.
    pub round_correct: i64,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Rater {
    /// Refuses a state change without the session's CSRF token.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), AppError> {
        if csrf_matches(&self.csrf, presented) {
            Ok(())
        } else {
            Err(AppError::forbidden("missing or wrong CSRF token"))
        }
    }
}

impl FromRequestParts<AppState> for Rater {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        rater_with_exposure(&parts.headers, state, 0)
            .await
            .map(|(rater, _)| rater)
    }
}

/// Authenticates a rater from the request headers and, in the same database round trip, looks
/// up their exposure to `item_id` (0: none). Refusals are those of the [`Rater`] extractor.
pub async fn rater_with_exposure(
    headers: &axum::http::HeaderMap,
    state: &AppState,
    item_id: i64,
) -> Result<(Rater, Option<crate::db::Exposure>), AppError> {
    if headers.contains_key(AUTHORIZATION) {
        return Err(AppError::forbidden("raters only"));
    }
    let Some(token) = header_cookie(headers, SESSION_COOKIE) else {
        return Err(AppError::unauthorized());
    };
    let hash = sha256_hex(token);
    if let Some(found) = state.db.rater_and_exposure(&hash, item_id).await? {
        return Ok(found);
    }
    match state.db.session(&hash).await? {
        Some(s) if s.role != "rater" => Err(AppError::forbidden("raters only")),
        _ => Err(AppError::unauthorized()),
    }
}

/// The CSRF header of a request, if any.
pub fn csrf_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// Refuses a cross-site request that would sign the browser in (login CSRF). Browsers say
/// where a request comes from in `Sec-Fetch-Site` (all current ones) or `Origin`: it must be
/// this server (or the user's own navigation). Clients that send neither are not browsers, so
/// no ambient credential of a victim is at stake, and pass.
pub fn same_origin(headers: &axum::http::HeaderMap) -> Result<(), AppError> {
    let refuse =
        || AppError::forbidden("cross-site request refused: open this page on the server itself");
    let header = |name: axum::http::header::HeaderName| {
        headers.get(name).map(|v| v.to_str().unwrap_or("invalid"))
    };
    if let Some(site) = header(axum::http::HeaderName::from_static("sec-fetch-site")) {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(refuse()),
        };
    }
    let Some(origin) = header(axum::http::header::ORIGIN) else {
        return Ok(());
    };
    let host = header(axum::http::header::HOST).ok_or_else(refuse)?;
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(refuse)?;
    if authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(refuse())
    }
}
