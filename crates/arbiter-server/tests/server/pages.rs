//! The HTML pages through plain form posts (the browser test covers the JavaScript).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..start + 32].to_string()
}

#[tokio::test]
async fn forms_walk_from_join_to_break_screen_and_escape_content() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let items = "{\"id\":\"x1\",\"text\":\"<script>alert(1)</script>\",\"warning\":\"gore\"}\n{\"id\":\"x2\",\"text\":\"fine\"}\n{\"id\":\"x3\",\"text\":\"more\"}\n";
        let p = app
            .project(
                spec(json!({ "session_cap": 2, "break_minutes": 60 })),
                items,
            )
            .await;
        let code = app.invite(p, None, 1).await;
        let c = &app.client;
        let res = c
            .post(app.url("/join"))
            .form(&[("code", code.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
        for attr in ["HttpOnly", "Secure", "SameSite=Lax"] {
            assert!(set.contains(attr), "{set}");
        }
        let cookie = set.split(';').next().unwrap().to_string();
        let get = |path: &str| c.get(app.url(path)).header("cookie", &cookie).send();
        let html = get("/annotate").await.unwrap();
        assert_eq!(
            html.headers()["location"],
            "/consent",
            "no item before consent"
        );
        let html = get("/consent").await.unwrap().text().await.unwrap();
        assert!(html.contains("slurs") && html.contains("<html lang=\"en\">"));
        let csrf = csrf_of(&html);
        let res = c
            .post(app.url("/consent"))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str()), ("agree", "yes")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["location"], "/questionnaire");
        let html = get("/questionnaire").await.unwrap().text().await.unwrap();
        assert!(html.contains("prefer not to say") && html.contains("<legend>"));
        let res = c
            .post(app.url("/questionnaire"))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str()), ("action", "skip")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["location"], "/annotate");
        let html = get("/annotate").await.unwrap().text().await.unwrap();
        assert!(
            html.contains("class=\"item blurred\""),
            "warned item is blurred"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                && !html.contains("<script>alert"),
            "item text is escaped"
        );
        let item_id = {
            let m = "name=\"item_id\" value=\"";
            let s = html.find(m).unwrap() + m.len();
            html[s..].split('"').next().unwrap().to_string()
        };
        let res = c
            .post(app.url("/annotate"))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("item_id", item_id.as_str()),
                ("label", "toxic"),
                ("action", "label"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let html = get("/annotate").await.unwrap().text().await.unwrap();
        assert!(html.contains("fine") && html.contains("class=\"item\""));
        let m = "name=\"item_id\" value=\"";
        let s = html.find(m).unwrap() + m.len();
        let item_id = html[s..].split('"').next().unwrap().to_string();
        let res = c
            .post(app.url("/annotate"))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("item_id", item_id.as_str()),
                ("action", "skip"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let html = get("/annotate").await.unwrap().text().await.unwrap();
        assert!(html.contains("id=\"break-screen\""), "{html}");
        let html = get("/ledger").await.unwrap().text().await.unwrap();
        assert!(html.contains("Items skipped (paid)"));
        let res = c
            .post(app.url("/withdraw"))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            get("/annotate").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        let res = c.get(app.url("/")).send().await.unwrap();
        assert!(
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
}
