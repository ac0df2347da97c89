//! Who is asking: the admin credential, session cookies, the role extractors, CSRF and
//! same-origin checks. The cryptographic primitives live in `secrets`.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;

pub use crate::db::{Rater, SESSION_SECONDS, Session};
pub use crate::secrets::{random_hex, sha256_hex};

use crate::AppState;
use crate::error::AppError;
use crate::secrets;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "arbiter_session";
/// Header carrying the CSRF token on JSON posts made with a session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

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
                secrets::new_salt().map_err(crate::db::StoreError::from)
            })
            .await?;
        let owned = token.to_string();
        let key_id = secrets::hashing(move || secrets::fingerprint(&owned, &salt)).await??;
        Ok(Self {
            digest: sha256_hex(token),
            key_id,
        })
    }

    /// Checks a presented token in constant time.
    pub fn check(&self, presented: &str) -> bool {
        secrets::ct_eq(&self.digest, Some(&sha256_hex(presented)))
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

async fn load_session(parts: &Parts, state: &AppState) -> Result<Option<Session>, AppError> {
    let Some(token) = cookie(parts, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state.db.session(&sha256_hex(token)).await?)
}

/// Compares CSRF tokens in constant time.
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    secrets::ct_eq(expected, presented)
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
        if !state.per_rater.allow(&found.0.id.to_string()) {
            return Err(AppError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded; slow down",
            ));
        }
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
