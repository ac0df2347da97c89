//! Every route tried without credentials, with the wrong role, and as another rater.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Admin routes (project 1 exists in these tests).
pub const ADMIN_ROUTES: &[(&str, Method)] = &[
    ("/api/projects", Method::POST),
    ("/api/projects", Method::GET),
    ("/api/projects/1", Method::GET),
    ("/api/projects/1/instructions", Method::POST),
    ("/api/projects/1/items", Method::POST),
    ("/api/projects/1/invitations", Method::POST),
    ("/api/projects/1/invitations", Method::GET),
    ("/api/projects/1/invitations/1/revoke", Method::POST),
    ("/api/projects/1/raters/r-000000/erase", Method::POST),
    ("/api/projects/1/pools", Method::POST),
    ("/api/projects/1/dashboard", Method::GET),
    ("/api/projects/1/demographics", Method::GET),
    ("/api/projects/1/export?format=csv", Method::GET),
    ("/api/projects/1/datasheet?format=md", Method::GET),
];

/// Rater routes.
pub const RATER_ROUTES: &[(&str, Method)] = &[
    ("/api/me", Method::GET),
    ("/api/consent", Method::POST),
    ("/api/questionnaire", Method::POST),
    ("/api/next", Method::GET),
    ("/api/annotations", Method::POST),
    ("/api/skip", Method::POST),
    ("/api/ledger", Method::GET),
    ("/api/withdraw", Method::POST),
];

const ADMIN_PAGES: &[&str] = &["/admin", "/admin/projects/1"];
/// Admin form posts of the web UI.
const ADMIN_FORMS: &[&str] = &[
    "/admin/projects",
    "/admin/projects/1/items",
    "/admin/projects/1/pools",
    "/admin/projects/1/invitations",
    "/admin/projects/1/instructions",
];
const RATER_PAGES: &[&str] = &[
    "/consent",
    "/questionnaire",
    "/annotate",
    "/ledger",
    "/withdraw",
];

#[tokio::test]
async fn every_route_refuses_missing_and_wrong_credentials() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(spec(json!({})), &items(2, &[])).await;
        assert_eq!(p, 1);
        let code = app.invite(p, None, 1).await;
        let rater = app.ready_rater(&code, json!({})).await;
        let wrong_bearer = Auth::Bearer("not-the-admin-token-at-all".into());
        for (path, method) in ADMIN_ROUTES {
            let body = Some(json!({}));
            let (s, _) = app
                .call(method.clone(), path, &Auth::None, body.clone())
                .await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without credentials"
            );
            let (s, _) = app
                .call(method.clone(), path, &wrong_bearer, body.clone())
                .await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with a wrong token"
            );
            let (s, _) = app.call(method.clone(), path, &rater.auth(), body).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as a rater");
        }
        for (path, method) in RATER_ROUTES {
            let body = Some(json!({ "item_id": 1, "label": "toxic", "agree": true }));
            let (s, _) = app
                .call(method.clone(), path, &Auth::None, body.clone())
                .await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without credentials"
            );
            let (s, _) = app.call(method.clone(), path, &app.admin(), body).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as admin");
        }
        for path in ADMIN_PAGES {
            let res = app
                .client
                .get(app.url(path))
                .header("cookie", format!("arbiter_session={}", rater.cookie))
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "page {path} as a rater"
            );
            let res = app.client.get(app.url(path)).send().await.unwrap();
            // /withdraw is open to anyone: signed out, it asks for the withdrawal code.
            let expected = if *path == "/withdraw" {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(res.status(), expected, "page {path} anonymous");
        }
        for path in ADMIN_FORMS {
            let form = [
                ("csrf", rater.csrf.as_str()),
                ("name", "x"),
                ("text", "x"),
                ("max_uses", "1"),
                ("body", ""),
            ];
            let res = app
                .client
                .post(app.url(path))
                .header("cookie", format!("arbiter_session={}", rater.cookie))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "form {path} as a rater"
            );
            let res = app
                .client
                .post(app.url(path))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "form {path} anonymous"
            );
        }
        // An admin browser session may not use rater pages.
        let admin_cookie = admin_cookie(&app).await;
        for path in RATER_PAGES {
            let res = app
                .client
                .get(app.url(path))
                .header("cookie", &admin_cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "page {path} as admin");
            let res = app.client.get(app.url(path)).send().await.unwrap();
            // /withdraw is open to anyone: signed out, it asks for the withdrawal code.
            let expected = if *path == "/withdraw" {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(res.status(), expected, "page {path} anonymous");
        }
        let res = app
            .client
            .post(app.url("/admin/login"))
            .form(&[("token", "wrong")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn cookie_posts_need_the_csrf_token() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(spec(json!({})), &items(2, &[])).await;
        let code = app.invite(p, None, 1).await;
        let r = app.join(&code).await;
        let no_csrf = Auth::Cookie(r.cookie.clone(), None);
        let bad_csrf = Auth::Cookie(r.cookie.clone(), Some("0".repeat(32)));
        for (path, method) in RATER_ROUTES.iter().filter(|(_, m)| *m == Method::POST) {
            for auth in [&no_csrf, &bad_csrf] {
                let (s, _) = app
                    .call(
                        method.clone(),
                        path,
                        auth,
                        Some(json!({ "agree": true, "item_id": 1, "label": "toxic" })),
                    )
                    .await;
                assert_eq!(
                    s,
                    StatusCode::FORBIDDEN,
                    "{path} without a valid CSRF token"
                );
            }
        }
        // HTML form without the token.
        let res = app
            .client
            .post(app.url("/consent"))
            .header("cookie", format!("arbiter_session={}", r.cookie))
            .form(&[("agree", "yes")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.get("/api/me").await.1["consented"], false);
        // Admin browser sessions need it too for API posts.
        let admin_cookie = admin_cookie(&app)
            .await
            .split_once('=')
            .unwrap()
            .1
            .to_string();
        let (s, _) = app
            .call(
                Method::POST,
                "/api/projects",
                &Auth::Cookie(admin_cookie.clone(), None),
                Some(spec(json!({}))),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .call(
                Method::GET,
                "/api/projects",
                &Auth::Cookie(admin_cookie, None),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "reads with the admin session work");
    }
}

#[tokio::test]
async fn raters_cannot_touch_other_raters_items_or_projects() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p1 = app.project(spec(json!({})), &items(3, &[])).await;
        let p2 = app
            .project(spec(json!({ "name": "other" })), &items(3, &[]))
            .await;
        let a = app
            .ready_rater(&app.invite(p1, None, 1).await, json!({}))
            .await;
        let b = app
            .ready_rater(&app.invite(p1, None, 1).await, json!({}))
            .await;
        let c = app
            .ready_rater(&app.invite(p2, None, 1).await, json!({}))
            .await;
        let (_, n) = a.get("/api/next").await;
        let a_item = n["item"]["id"].as_i64().unwrap();
        // b was never served a's item (b's own next is a different exposure record), and c is
        // in another project: both are refused.
        for other in [&c] {
            let (s, _) = other
                .post(
                    "/api/annotations",
                    json!({ "item_id": a_item, "label": "toxic" }),
                )
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN);
            let (s, _) = other.post("/api/skip", json!({ "item_id": a_item })).await;
            assert_eq!(s, StatusCode::FORBIDDEN);
        }
        let (s, _) = b
            .post(
                "/api/annotations",
                json!({ "item_id": a_item, "label": "toxic" }),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "an item served to a is not b's to answer"
        );
        assert_eq!(
            a.post(
                "/api/annotations",
                json!({ "item_id": a_item, "label": "toxic" })
            )
            .await
            .0,
            StatusCode::CREATED
        );
        // b's view: own ledger only, no labels of others anywhere.
        let (_, ledger) = b.get("/api/ledger").await;
        assert_eq!(ledger["rater"], b.pseudonym.as_str());
        assert_eq!(ledger["labelled"], 0);
        let (_, me) = b.get("/api/me").await;
        assert!(!me.to_string().contains(&a.pseudonym));
        let (_, next) = b.get("/api/next").await;
        assert!(
            !next.to_string().contains("\"label\""),
            "no other rater's label is ever sent: {next}"
        );
        // Withdrawing b leaves a's label in place.
        assert_eq!(b.post("/api/withdraw", json!({})).await.0, StatusCode::OK);
        let (_, dash) = app
            .admin_get(&format!("/api/projects/{p1}/dashboard"))
            .await;
        assert_eq!(dash["pools"][0]["labels"], 1, "{dash}");
    }
}

#[tokio::test]
async fn body_size_and_rate_limits() {
    let db = databases().await.remove(0);
    let app = spawn_app_with(&db, |c| {
        c.rate_per_second = 5.0;
        c.rate_burst = 5.0;
        c.body_limit = 64 * 1024;
    })
    .await;
    let big = "x".repeat(200 * 1024);
    let (s, _) = app
        .admin_post("/api/projects", json!({ "name": big }))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let mut limited = false;
    for _ in 0..20 {
        let (s, _) = app.call(Method::GET, "/healthz", &Auth::None, None).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "20 quick requests with a limit of 5/s must be throttled"
    );
}
