//! Durability under kill -9, and the submission benchmark, against the real server binary.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A server in a process of its own, to kill: this test binary re-run as [`serve_child`],
/// which calls `run_from_env`, exactly what `arbiter serve` calls.
pub struct ServerProcess {
    pub child: Child,
    pub app: TestApp,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub async fn start_server(db: &str, port: u16) -> ServerProcess {
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "crash::serve_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ARBITER_TEST_SERVE_DB", db)
        .env("ARBITER_TEST_SERVE_ADDR", format!("127.0.0.1:{port}"))
        .env("ARBITER_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server process");
    let app = TestApp {
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
        db_url: db.to_string(),
        client: http_client_builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client"),
        state: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = app.client.get(app.url("/healthz")).send().await
            && res.status() == StatusCode::OK
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ServerProcess { child, app }
}

/// Sets up a project and `n` ready raters; returns (project, raters as (cookie, csrf, pseudonym)).
async fn setup(
    app: &TestApp,
    n_raters: usize,
    n_items: usize,
) -> (i64, Vec<(String, String, String)>) {
    let p = app
        .project(
            spec(json!({ "overlap_per_pool": 1000, "session_cap": 100000, "daily_cap": 100000, "max_open_claims": 50, "questionnaire": [], "pools": [] })),
            &items(n_items, &[]),
        )
        .await;
    let code = app.invite(p, None, n_raters as i64).await;
    let mut raters = Vec::new();
    for _ in 0..n_raters {
        let r = app.ready_rater(&code, json!({})).await;
        raters.push((r.cookie.clone(), r.csrf.clone(), r.pseudonym.clone()));
    }
    (p, raters)
}

/// One rater's loop: fetch, submit, record what was acknowledged, until stopped or refused.
async fn rater_loop(
    app: TestApp,
    (cookie, csrf, pseudonym): (String, String, String),
    acked: Arc<Mutex<Vec<(String, String)>>>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    stop_at: Instant,
    prefetch: i64,
) {
    let cookie = format!("arbiter_session={cookie}");
    while Instant::now() < stop_at {
        let url = app.url(&format!("/api/next?prefetch={prefetch}"));
        let Ok(res) = app.client.get(url).header("cookie", &cookie).send().await else {
            return;
        };
        let Ok(next) = res.json::<Value>().await else {
            return;
        };
        let batch: Vec<Value> = match next["status"].as_str() {
            Some("item") => vec![next["item"].clone()],
            Some("items") => next["items"].as_array().cloned().unwrap_or_default(),
            _ => return,
        };
        for item in batch {
            if Instant::now() >= stop_at {
                return;
            }
            let (Some(id), Some(text)) = (item["id"].as_i64(), item["text"].as_str()) else {
                return;
            };
            let external = format!("i{}", text.rsplit(' ').next().unwrap_or(""));
            let started = Instant::now();
            let res = app
                .client
                .post(app.url("/api/annotations"))
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .json(&json!({ "item_id": id, "label": "toxic" }))
                .send()
                .await;
            let Ok(res) = res else { return };
            if res.status() != StatusCode::CREATED {
                return;
            }
            latencies.lock().unwrap().push(started.elapsed());
            acked.lock().unwrap().push((pseudonym.clone(), external));
        }
    }
}

async fn export_pairs(app: &TestApp, project: i64) -> Vec<(String, String)> {
    let res = app
        .client
        .get(app.url(&format!("/api/projects/{project}/export?format=jsonl")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), StatusCode::OK);
    res.text()
        .await
        .expect("text")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("jsonl");
            (
                v["rater"].as_str().unwrap().to_string(),
                v["item"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_annotations_survive_kill_9() {
    for db in databases().await {
        let port = free_port();
        let mut server = start_server(&db, port).await;
        let (project, raters) = setup(&server.app, 24, 400).await;
        let acked = Arc::new(Mutex::new(Vec::new()));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let stop_at = Instant::now() + Duration::from_secs(10);
        let tasks: Vec<_> = raters
            .iter()
            .map(|r| {
                tokio::spawn(rater_loop(
                    server.app.clone_client(),
                    r.clone(),
                    acked.clone(),
                    latencies.clone(),
                    stop_at,
                    1,
                ))
            })
            .collect();
        // Kill mid-load, once a good number of annotations were acknowledged.
        let deadline = Instant::now() + Duration::from_secs(8);
        while acked.lock().unwrap().len() < 300 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();
        drop(server);
        for t in tasks {
            let _ = t.await;
        }
        let acked: Vec<(String, String)> = acked.lock().unwrap().clone();
        assert!(
            acked.len() >= 300,
            "load generator got only {} acknowledgements",
            acked.len()
        );

        let mut server = start_server(&db, port).await;
        let stored = export_pairs(&server.app, project).await;
        let unique: BTreeSet<&(String, String)> = stored.iter().collect();
        assert_eq!(unique.len(), stored.len(), "an annotation was stored twice");
        let missing: Vec<_> = acked.iter().filter(|a| !unique.contains(a)).collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged annotations lost, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        println!(
            "crash test on {}: {} acknowledged before SIGKILL, {} stored after restart (in-flight extras: {})",
            db.split(':').next().unwrap_or("?"),
            acked.len(),
            stored.len(),
            stored.len() - acked.len()
        );
        server.child.kill().ok();
        let _ = server.child.wait();
    }
}

/// Submissions per second and latency percentiles on SQLite, over loopback, bounded in time.
///
/// Each rater prefetches 20 items (`GET /api/next?prefetch=20`) and submits them one by one;
/// only the submissions are timed. Thresholds are asserted only when `ARBITER_BENCH_ASSERT=1`, since a
/// shared CI core cannot promise throughput; the figures are always printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_benchmark_sqlite() {
    let db = databases().await.remove(0);
    let port = free_port();
    let mut server = start_server(&db, port).await;
    let (project, raters) = setup(&server.app, 64, 1000).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let seconds = 5.0;
    let started = Instant::now();
    let stop_at = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = raters
        .iter()
        .map(|r| {
            tokio::spawn(rater_loop(
                server.app.clone_client(),
                r.clone(),
                acked.clone(),
                latencies.clone(),
                stop_at,
                20,
            ))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat: Vec<Duration> = latencies.lock().unwrap().clone();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let n = lat.len();
    let rate = n as f64 / elapsed;
    println!(
        "benchmark (SQLite, 64 raters, prefetch 20, {elapsed:.1} s): {n} submissions, {rate:.0}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    let stored = export_pairs(&server.app, project).await;
    let mut per: HashMap<&(String, String), usize> = HashMap::new();
    for s in &stored {
        *per.entry(s).or_default() += 1;
    }
    assert!(per.values().all(|c| *c == 1));
    assert_eq!(
        stored.len(),
        n,
        "every acknowledged submission is stored once"
    );
    if std::env::var("ARBITER_BENCH_ASSERT").as_deref() == Ok("1") {
        assert!(rate >= 2000.0, "{rate:.0} submissions/s < 2000");
        assert!(
            pct(0.99) <= Duration::from_millis(50),
            "p99 {:?} > 50 ms",
            pct(0.99)
        );
    }
    server.child.kill().ok();
    let _ = server.child.wait();
}

/// Not a test: the entry point of the server process that [`start_server`] starts (this test
/// binary run again with `--ignored --exact crash::serve_child`). It serves until SIGTERM,
/// Ctrl-C or kill -9.
#[test]
#[ignore = "the server process of the crash and browser tests, started by start_server"]
fn serve_child() {
    let (Ok(db), Ok(addr)) = (
        std::env::var("ARBITER_TEST_SERVE_DB"),
        std::env::var("ARBITER_TEST_SERVE_ADDR"),
    ) else {
        panic!("run by start_server only (ARBITER_TEST_SERVE_DB and _ADDR unset)");
    };
    arbiter_server::run_from_env(&db, &addr, Some(1_000_000.0)).expect("serve");
}

/// SIGTERM: the server stops accepting, finishes the requests in flight and exits 0; every
/// submission it acknowledged is stored.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_acknowledged_writes_and_exits_cleanly() {
    let db = databases().await.remove(0);
    let port = free_port();
    let mut server = start_server(&db, port).await;
    let (p, raters) = setup(&server.app, 8, 400).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let stop_at = Instant::now() + Duration::from_secs(30);
    let mut loops = Vec::new();
    for r in raters {
        loops.push(tokio::spawn(rater_loop(
            server.app.clone_client(),
            r,
            acked.clone(),
            latencies.clone(),
            stop_at,
            5,
        )));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = server.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    for l in loops {
        let _ = l.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "some submissions were acknowledged");
    let again = start_server(&db, free_port()).await;
    let rows = export_pairs(&again.app, p).await;
    for pair in &acked {
        assert!(rows.contains(pair), "acknowledged {pair:?} lost at SIGTERM");
    }
}
