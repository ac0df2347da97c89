//! Credentials: random tokens, hashing, sessions, role extractors and CSRF checks.
//!
//! Secrets people may choose or that are long-lived and guessable offline (the admin token,
//! invitation codes) are stored only as Argon2id hashes. Session tokens are 256-bit random
//! values, so a fast SHA-256 of them in the database is enough and keeps the per-request cost
//! low; a database leak still yields no usable session.

use std::collections::HashSet;
use std::sync::Mutex;

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

/// Runs Argon2 verification off the async workers.
pub async fn verify_secret_blocking(secret: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_secret(&secret, &phc))
        .await
        .unwrap_or(false)
}

/// The admin credential, held only as an Argon2 hash.
pub struct AdminKey {
    phc: String,
    /// SHA-256 of tokens that already passed Argon2, so repeat calls stay cheap; only
    /// correct tokens ever enter, so guessing still pays the memory-hard price.
    verified: Mutex<HashSet<String>>,
}

impl AdminKey {
    /// Hashes the token given at start-up; the plain token is not kept.
    pub fn new(token: &str) -> Result<Self, AppError> {
        if token.len() < 16 {
            return Err(AppError::bad(
                "ARBITER_ADMIN_TOKEN must be at least 16 characters",
            ));
        }
        Ok(Self {
            phc: hash_secret(token)?,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Checks a presented token.
    pub async fn check(&self, presented: &str) -> bool {
        let digest = sha256_hex(presented);
        if self
            .verified
            .lock()
            .map(|s| s.contains(&digest))
            .unwrap_or(false)
        {
            return true;
        }
        let ok = verify_secret_blocking(presented.to_string(), self.phc.clone()).await;
        if ok && let Ok(mut set) = self.verified.lock() {
            set.insert(digest);
        }
        ok
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
            return if !token.is_empty() && state.admin.check(token).await {
                Ok(Admin { csrf: None })
            } else {
                Err(AppError::unauthorized())
            };
        }
        match load_session(parts, state).await? {
            Some(s) if s.role == "admin" => Ok(Admin { csrf: Some(s.csrf) }),
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
