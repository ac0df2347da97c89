//! The admin dashboard's forms: a refused import keeps what was pasted, and the invitation link
//! shown once is absolute and can be copied.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..start + 32].to_string()
}

/// The `href` of the invitation link.
fn invitation_href(html: &str) -> String {
    let m = "id=\"invitation-link\" href=\"";
    let start = html.find(m).expect("invitation link") + m.len();
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn refused_import_keeps_the_form_and_invitation_link_is_absolute() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(spec(json!({})), &items(2, &[])).await;
        let cookie = admin_cookie(&app).await;
        let base = app.url(&format!("/admin/projects/{p}"));
        let html = app
            .client
            .get(&base)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = csrf_of(&html);
        assert!(html.contains("<option value=\"jsonl\" selected>"), "{html}");
        let post = |path: &str, form: Vec<(&str, &str)>| {
            app.client
                .post(format!("{base}{path}"))
                .header("cookie", &cookie)
                .form(&form)
                .send()
        };

        // A CSV whose header lacks the text column: refused, the form refilled and escaped.
        let body = "id,txt\n1,<b>hi</b> & ü\n";
        let res = post(
            "/items",
            vec![
                ("csrf", &csrf),
                ("format", "csv"),
                ("file", "batch \"1\".csv"),
                ("body", body),
            ],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let html = res.text().await.unwrap();
        assert!(html.contains("id=\"import-errors\""), "{html}");
        assert!(
            html.contains("name=\"body\" rows=\"6\" cols=\"70\" required>id,txt\n1,&lt;b&gt;hi&lt;/b&gt; &amp; ü\n</textarea>"),
            "{html}"
        );
        assert!(!html.contains("<b>hi"), "{html}");
        assert!(html.contains("<option value=\"csv\" selected>"), "{html}");
        assert!(
            !html.contains("<option value=\"jsonl\" selected>"),
            "{html}"
        );
        assert!(
            html.contains("id=\"item-file-name\" value=\"batch &quot;1&quot;.csv\""),
            "{html}"
        );
        // A JSONL file with a duplicate id (refused by storage, not by a line) keeps it too.
        let res = post(
            "/items",
            vec![
                ("csrf", &csrf),
                ("format", "jsonl"),
                ("file", "again.jsonl"),
                ("body", "{\"id\":\"i1\",\"text\":\"dup\"}\n"),
            ],
        )
        .await
        .unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
        let html = res.text().await.unwrap();
        assert!(html.contains("id=\"import-errors\""), "{html}");
        assert!(
            html.contains(
                "required>{&quot;id&quot;:&quot;i1&quot;,&quot;text&quot;:&quot;dup&quot;}\n</textarea>"
            ),
            "{html}"
        );
        assert!(html.contains("value=\"again.jsonl\""), "{html}");

        // The invitation link: absolute on the address the request came to, https behind a
        // proxy that says so, and a copy button for the script.
        let res = post("/invitations", vec![("csrf", &csrf), ("max_uses", "1")])
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let html = res.text().await.unwrap();
        let href = invitation_href(&html);
        assert!(
            href.starts_with(&format!("http://{}/join?code=", app.addr)),
            "{href}"
        );
        assert!(
            html.contains(&format!("\">{href}</a>")),
            "the link text is the absolute link too"
        );
        assert!(
            html.contains(
                "<button type=\"button\" id=\"copy-invitation\" hidden>Copy link</button>"
            ) && html.contains("id=\"copy-status\" role=\"status\" aria-live=\"polite\""),
            "{html}"
        );
        let code = href.split("code=").nth(1).unwrap().to_string();
        let r = app.ready_rater(&code, json!({ "lgbtq": "no" })).await;
        assert_eq!(r.get("/api/next").await.1["status"], "item");

        let res = app
            .client
            .post(format!("{base}/invitations"))
            .header("cookie", &cookie)
            .header("x-forwarded-proto", "https")
            .form(&[("csrf", csrf.as_str()), ("max_uses", "1")])
            .send()
            .await
            .unwrap();
        let href = invitation_href(&res.text().await.unwrap());
        assert!(
            href.starts_with(&format!("https://{}/join?code=", app.addr)),
            "{href}"
        );
        // A Host header that is no host name gives the relative link, never its text.
        let res = app
            .client
            .post(format!("{base}/invitations"))
            .header("cookie", &cookie)
            .header("host", "x\"><script>alert(1)</script>")
            .form(&[("csrf", csrf.as_str()), ("max_uses", "1")])
            .send()
            .await
            .unwrap();
        let html = res.text().await.unwrap();
        assert!(invitation_href(&html).starts_with("/join?code="), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
    }
}
