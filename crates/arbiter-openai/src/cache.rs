//! Content-addressed on-disk cache of successful model responses.
//!
//! The key is the SHA-256 of the endpoint URL and the canonical request body (keys sorted), so
//! any change to base URL, model, prompt or a sampling/logprob parameter is a different entry.
//! Only successful, parsed responses are stored; failures are always retried next time.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use arbiter_core::digest::{hex, sha256_hex};

/// A directory of `ab/abcdef….json` response files.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    dir: PathBuf,
}

impl ResponseCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        ResponseCache { dir }
    }

    /// The key of a request: hex SHA-256 over the URL and the canonical JSON body.
    pub fn key(url: &str, body: &Value) -> String {
        let mut canonical = String::new();
        write_canonical(body, &mut canonical);
        let mut hasher = Sha256::new();
        hasher.update(b"arbiter-cache-v1\n");
        hasher.update(url.as_bytes());
        hasher.update(b"\n");
        hasher.update(canonical.as_bytes());
        hex(&hasher.finalize())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir
            .join(&key[..2.min(key.len())])
            .join(format!("{key}.json"))
    }

    /// The stored response, if present and readable. A corrupt entry counts as a miss.
    pub fn get(&self, key: &str) -> Option<Value> {
        let text = fs::read_to_string(self.path(key)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Store a successful response. Written to a temporary file then renamed, so readers never
    /// see half an entry.
    pub fn put(&self, key: &str, response: &Value) -> std::io::Result<()> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, response.to_string())?;
        fs::rename(&tmp, &path)
    }
}

/// JSON with object keys sorted at every level, whatever map order serde_json was built with.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_key_order_but_not_values_url_or_parameters() {
        let a = json!({"model": "m", "temperature": 0, "top_logprobs": 20});
        let b = json!({"top_logprobs": 20, "temperature": 0, "model": "m"});
        let url = "http://x/v1/chat/completions";
        assert_eq!(ResponseCache::key(url, &a), ResponseCache::key(url, &b));
        assert_ne!(
            ResponseCache::key(url, &a),
            ResponseCache::key("http://y/v1/chat/completions", &a)
        );
        let c = json!({"model": "m", "temperature": 0, "top_logprobs": 5});
        assert_ne!(ResponseCache::key(url, &a), ResponseCache::key(url, &c));
        let d = json!({"model": "m2", "temperature": 0, "top_logprobs": 20});
        assert_ne!(ResponseCache::key(url, &a), ResponseCache::key(url, &d));
    }

    #[test]
    fn round_trips_and_treats_corrupt_entries_as_misses() {
        let dir = std::env::temp_dir().join(format!("arbiter-cache-test-{}", std::process::id()));
        let cache = ResponseCache::new(dir.clone());
        let key = ResponseCache::key("u", &json!({}));
        assert_eq!(cache.get(&key), None);
        cache.put(&key, &json!({"ok": 1})).unwrap();
        assert_eq!(cache.get(&key), Some(json!({"ok": 1})));
        fs::write(cache.path(&key), "{not json").unwrap();
        assert_eq!(cache.get(&key), None);
        let _ = fs::remove_dir_all(dir);
    }
}
