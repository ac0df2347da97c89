//! `spawn_app()` on port 0 with a fresh database per back end, and typed clients.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use arbiter_server::{AppState, Config, serve_on};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique name for temp files and databases.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

/// The database URLs to run each test against: a fresh SQLite file always, and a fresh
/// PostgreSQL database when `ARBITER_TEST_POSTGRES_URL` is set. Without it, PostgreSQL is
/// skipped with a printed reason unless `ARBITER_REQUIRE_POSTGRES=1`.
pub async fn databases() -> Vec<String> {
    let dir = std::env::temp_dir().join(unique("arbiter-test"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut out = vec![format!("sqlite:{}", dir.join("db.sqlite").display())];
    match std::env::var("ARBITER_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => out.push(fresh_postgres(&url).await),
        _ => {
            if std::env::var("ARBITER_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("ARBITER_REQUIRE_POSTGRES=1 but ARBITER_TEST_POSTGRES_URL is not set");
            }
            eprintln!(
                "note: PostgreSQL part skipped: ARBITER_TEST_POSTGRES_URL is not set (scripts/start-postgres.sh prints one)"
            );
        }
    }
    out
}

async fn fresh_postgres(url: &str) -> String {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = unique("arbiter_t");
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .expect("connect to ARBITER_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
    format!("{base}/{name}")
}

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db_url: String,
    pub client: reqwest::Client,
    /// The server's state when it runs in this process (not for `arbiter-server` processes).
    pub state: Option<AppState>,
}

pub async fn spawn_app(db_url: &str) -> TestApp {
    spawn_app_with(db_url, |_| {}).await
}

pub async fn spawn_app_with(db_url: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::new(db_url, "127.0.0.1:0", ADMIN_TOKEN);
    config.rate_per_second = 10_000.0;
    config.rate_burst = 10_000.0;
    tweak(&mut config);
    let state = AppState::new(&config).await.expect("state");
    let kept = state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        serve_on(listener, state, &config, std::future::pending()).await;
    });
    TestApp {
        addr,
        db_url: db_url.to_string(),
        client: http_client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        state: Some(kept),
    }
}

/// Status and parsed JSON (or `Value::String` of the text) of a response.
pub async fn read(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    /// Session cookie and the CSRF token to send (None = leave it out).
    Cookie(String, Option<String>),
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => req = req.bearer_auth(t),
            Auth::Cookie(c, csrf) => {
                req = req.header("cookie", format!("arbiter_session={c}"));
                if let Some(t) = csrf {
                    req = req.header("x-csrf-token", t);
                }
            }
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request")).await
    }

    pub fn admin(&self) -> Auth {
        Auth::Bearer(ADMIN_TOKEN.into())
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, &self.admin(), Some(body))
            .await
    }

    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, &self.admin(), None).await
    }

    pub async fn import(&self, project: i64, format: &str, body: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.url(&format!(
                "/api/projects/{project}/items?format={format}&file=items.{format}"
            )))
            .bearer_auth(ADMIN_TOKEN)
            .body(body.to_string())
            .send()
            .await
            .expect("import");
        read(res).await
    }

    /// Creates a project from `spec` and imports `items` (JSONL).
    pub async fn project(&self, spec: Value, items: &str) -> i64 {
        let (s, b) = self.admin_post("/api/projects", spec).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let id = b["id"].as_i64().expect("id");
        if !items.is_empty() {
            let (s, b) = self.import(id, "jsonl", items).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        id
    }

    pub async fn invite(&self, project: i64, pool: Option<&str>, uses: i64) -> String {
        let (s, b) = self
            .admin_post(
                &format!("/api/projects/{project}/invitations"),
                json!({ "pool": pool, "max_uses": uses }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["code"].as_str().expect("code").to_string()
    }

    /// Joins with a code; returns a rater client.
    pub async fn join(&self, code: &str) -> RaterClient<'_> {
        let res = self
            .client
            .post(self.url("/api/join"))
            .json(&json!({ "code": code }))
            .send()
            .await
            .expect("join");
        assert_eq!(res.status(), StatusCode::CREATED);
        let cookie = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_string())
            .expect("session cookie");
        let (_, body) = read(res).await;
        RaterClient {
            app: self,
            cookie,
            csrf: body["csrf"].as_str().expect("csrf").to_string(),
            pseudonym: body["pseudonym"].as_str().expect("pseudonym").to_string(),
            withdrawal_code: None,
        }
    }

    /// Joins, consents and answers the questionnaire.
    pub async fn ready_rater(&self, code: &str, answers: Value) -> RaterClient<'_> {
        let mut r = self.join(code).await;
        let (s, consent) = r.post("/api/consent", json!({ "agree": true })).await;
        assert_eq!(s, StatusCode::OK, "{consent}");
        r.withdrawal_code = consent["withdrawal_code"].as_str().map(str::to_string);
        let (s, b) = r
            .post("/api/questionnaire", json!({ "answers": answers }))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        r
    }
}

/// A joined rater.
pub struct RaterClient<'a> {
    pub app: &'a TestApp,
    pub cookie: String,
    pub csrf: String,
    pub pseudonym: String,
    /// Shown once at consent.
    pub withdrawal_code: Option<String>,
}

impl RaterClient<'_> {
    pub fn auth(&self) -> Auth {
        Auth::Cookie(self.cookie.clone(), Some(self.csrf.clone()))
    }
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.app.call(Method::GET, path, &self.auth(), None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.app
            .call(Method::POST, path, &self.auth(), Some(body))
            .await
    }
    /// Fetches the next item and labels it; returns (item id, status, body).
    pub async fn label_next(&self, label: Value) -> Option<(i64, StatusCode, Value)> {
        let (s, next) = self.get("/api/next").await;
        assert_eq!(s, StatusCode::OK, "{next}");
        if next["status"] != "item" {
            return None;
        }
        let item = next["item"]["id"].as_i64().expect("item id");
        let (s, b) = self
            .post(
                "/api/annotations",
                json!({ "item_id": item, "label": label }),
            )
            .await;
        Some((item, s, b))
    }
}

/// A project spec with sensible defaults, overridable by `patch`.
pub fn spec(patch: Value) -> Value {
    let mut base = json!({
        "name": "toxicity pilot",
        "instructions": "Label each comment as toxic or not toxic.",
        "label_schema": { "kind": "nominal", "labels": ["toxic", "not toxic"] },
        "rationale": "optional",
        "consent_text": "Some comments contain slurs and threats. You may stop at any time.",
        "content_warning": "hate speech",
        "session_cap": 100,
        "daily_cap": 500,
        "break_minutes": 10,
        "pay_standard_per_hour": 15.0,
        "pay_per_item": 0.25,
        "overlap_per_pool": 3,
        "questionnaire": [
            { "id": "lgbtq", "text": "Do you identify as LGBTQ+?", "options": ["yes", "no"] }
        ],
        "pools": [
            { "name": "lgbtq", "rule": { "question": "lgbtq", "answer": "yes" } },
            { "name": "control" }
        ],
        "datasheet_notes": { "1": "Whether a comment is toxic is subjective." }
    });
    if let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// `n` JSONL items `i1..in`; items whose number is in `warned` carry a warning.
pub fn items(n: usize, warned: &[usize]) -> String {
    (1..=n)
        .map(|i| {
            let mut v = json!({ "id": format!("i{i}"), "text": format!("comment number {i}") });
            if warned.contains(&i) {
                v["warning"] = json!("violent threat");
            }
            v.to_string() + "\n"
        })
        .collect()
}

impl TestApp {
    /// A handle to the same server for another task.
    pub fn clone_client(&self) -> TestApp {
        TestApp {
            addr: self.addr,
            db_url: self.db_url.clone(),
            client: self.client.clone(),
            state: self.state.clone(),
        }
    }
}

/// A reqwest builder with a TLS crypto provider installed. The workspace's reqwest is unified
/// with the graders' `rustls-no-provider` feature, so a client built without a provider panics
/// even for plain HTTP.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A `sqlite:PATH` server URL as sqlx's `sqlite://PATH` (for tests that open the file).
pub fn sqlite_url(db_url: &str) -> String {
    format!(
        "sqlite://{}",
        db_url
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
    )
}

/// Runs one SQL statement on the server's database behind its back (either back end): how
/// tests move the clock on sessions and invitations, or inspect what storage kept.
pub async fn sql(db_url: &str, statement: &str) {
    let mut conn = connect(db_url).await;
    sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
        .execute(&mut conn)
        .await
        .expect("statement");
}

/// One count from the server's database.
pub async fn sql_count(db_url: &str, query: &str) -> i64 {
    let mut conn = connect(db_url).await;
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(query.to_string()))
        .fetch_one(&mut conn)
        .await
        .expect("count");
    n
}

/// Signs in through the form; returns the admin's cookie header value.
pub async fn admin_cookie(app: &TestApp) -> String {
    let res = app
        .client
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The text of an admin GET (bearer token), asserting 200.
pub async fn text_of(app: &TestApp, path: &str) -> String {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

/// A direct connection to the server's database (either back end).
async fn connect(db_url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = if db_url.starts_with("sqlite:") {
        sqlite_url(db_url)
    } else {
        db_url.to_string()
    };
    sqlx::AnyConnection::connect(&url)
        .await
        .expect("open the database")
}
