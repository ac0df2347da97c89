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
        // Consent shows the withdrawal code once, then leads on to the questionnaire.
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("id=\"withdrawal-code\">W") && html.contains("href=\"/questionnaire\""),
            "{html}"
        );
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
        // The warned item is hidden: its text is not in the page, and a label without showing
        // it first is refused (the form has no `shown` field until then).
        let html = get("/annotate").await.unwrap().text().await.unwrap();
        assert!(
            html.contains("id=\"item-hidden\"") && !html.contains("alert(1)"),
            "warned item is hidden: {html}"
        );
        let item_id = {
            let m = "name=\"item_id\" value=\"";
            let s = html.find(m).unwrap() + m.len();
            html[s..].split('"').next().unwrap().to_string()
        };
        let label = |shown: bool| {
            let mut form = vec![
                ("csrf", csrf.clone()),
                ("item_id", item_id.clone()),
                ("label", "toxic".to_string()),
                ("action", "label".to_string()),
            ];
            if shown {
                form.push(("shown", "1".to_string()));
            }
            c.post(app.url("/annotate"))
                .header("cookie", &cookie)
                .form(&form)
                .send()
        };
        let res = label(false).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(
            res.text()
                .await
                .unwrap()
                .contains("show it before labelling it")
        );
        let html = get("/annotate?show=1").await.unwrap().text().await.unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                && !html.contains("<script>alert")
                && html.contains("name=\"shown\" value=\"1\""),
            "item text is escaped"
        );
        let res = label(true).await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()["location"], "/annotate?saved=1");
        // Undo without a script: the saved notice's form takes the label back and the item
        // comes again (hidden again), then it is labelled anew.
        let html = get("/annotate?saved=1")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("id=\"undo\"") && html.contains("fine"),
            "{html}"
        );
        let undo = || {
            c.post(app.url("/annotate/undo"))
                .header("cookie", &cookie)
                .form(&[("csrf", csrf.as_str())])
                .send()
        };
        let res = undo().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()["location"], "/annotate?undone=1");
        let html = get("/annotate?undone=1")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("taken back")
                && html.contains(&format!("name=\"item_id\" value=\"{item_id}\"")),
            "{html}"
        );
        // Only once: there is nothing left to take back.
        let res = undo().await.unwrap();
        assert_eq!(res.status(), StatusCode::CONFLICT);
        let res = label(true).await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let html = get("/annotate").await.unwrap().text().await.unwrap();
        assert!(html.contains("fine") && html.contains("class=\"item\""));
        assert!(!html.contains("id=\"instructions-changed\""));
        // New instructions since the rater's last label: a notice, and the instructions open.
        let (s, _) = app
            .admin_post(
                &format!("/api/projects/{p}/instructions"),
                json!({ "text": "Version two.\nRead twice." }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let html = get("/annotate").await.unwrap().text().await.unwrap();
        assert!(
            html.contains("id=\"instructions-changed\"")
                && html.contains("<details id=\"instructions-box\" open>")
                && html.contains("Version two.<br />\nRead twice."),
            "{html}"
        );
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
        assert!(
            html.contains("id=\"break-screen\"") && html.contains("<time datetime=\""),
            "{html}"
        );
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

#[tokio::test]
async fn admin_forms_create_import_pool_invite_and_publish() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let cookie = admin_cookie(&app).await;
        let c = &app.client;
        let get = |path: String| c.get(app.url(&path)).header("cookie", &cookie).send();
        let post = |path: String, form: Vec<(&'static str, String)>| {
            c.post(app.url(&path))
                .header("cookie", &cookie)
                .form(&form)
                .send()
        };
        let html = get("/admin".into()).await.unwrap().text().await.unwrap();
        assert!(html.contains("id=\"create-project\""), "{html}");
        let csrf = csrf_of(&html);
        let mut fields: Vec<(&'static str, String)> = vec![
            ("name", "<b>Pilot</b>".into()),
            ("instructions", "Label each comment.".into()),
            ("label_kind", "nominal".into()),
            ("labels", "toxic\nnot toxic\n".into()),
            ("rationale", "optional".into()),
            ("consent_text", "Some comments contain slurs.".into()),
            ("content_warning", "".into()),
            ("session_cap", "50".into()),
            ("daily_cap", "200".into()),
            ("break_minutes", "15".into()),
            ("pay_standard_per_hour", "15".into()),
            ("pay_per_item", "0.25".into()),
            ("currency", "EUR".into()),
            ("pay_standard_source", "".into()),
            ("overlap_per_pool", "2".into()),
            ("k_min", "3".into()),
            ("gold_min_accuracy", "0.7".into()),
            (
                "questionnaire",
                "lgbtq | Do you identify as LGBTQ+? | yes; no".into(),
            ),
            ("pools", "lgbtq | lgbtq = yes\ncontrol\n".into()),
            ("spec_json", "".into()),
        ];
        // Without the CSRF token: refused, nothing created.
        let res = post("/admin/projects".into(), fields.clone())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        fields.push(("csrf", csrf.clone()));
        // An invalid value re-shows the form with the reason and what was typed, escaped.
        let res = post("/admin/projects".into(), fields.clone())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let html = res.text().await.unwrap();
        assert!(html.contains("k_min must be at least 5"), "{html}");
        assert!(
            html.contains("value=\"&lt;b&gt;Pilot&lt;/b&gt;\"") && !html.contains("<b>Pilot"),
            "{html}"
        );
        for f in fields.iter_mut() {
            if f.0 == "k_min" {
                f.1 = "5".into();
            }
        }
        let res = post("/admin/projects".into(), fields.clone())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let location = res.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with("/admin/projects/"), "{location}");
        let p: i64 = location["/admin/projects/".len()..]
            .split('?')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let html = get(location).await.unwrap().text().await.unwrap();
        assert!(html.contains("Project created."), "{html}");
        assert!(html.contains("Dashboard: &lt;b&gt;Pilot&lt;/b&gt;") && !html.contains("<b>Pilot"));
        assert!(
            html.contains("id=\"export-parquet\""),
            "Parquet download offered"
        );
        let (_, proj) = app.admin_get(&format!("/api/projects/{p}")).await;
        assert_eq!(proj["spec"]["currency"], "EUR");
        assert_eq!(proj["pools"].as_array().unwrap().len(), 2, "{proj}");
        assert_eq!(
            proj["spec"]["questionnaire"][0]["options"][2],
            "prefer not to say"
        );

        // Import: a bad file is refused whole, its lines named; a good one is stored.
        let base = format!("/admin/projects/{p}");
        let bad = "{\"id\":\"a\",\"text\":\"<i>x</i>\"}\n{oops\n";
        let res = post(
            format!("{base}/items"),
            vec![
                ("csrf", csrf.clone()),
                ("format", "jsonl".into()),
                ("file", "batch.jsonl".into()),
                ("body", bad.into()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("id=\"import-errors\"") && html.contains("batch.jsonl:2:"),
            "{html}"
        );
        let res = post(
            format!("{base}/items"),
            vec![
                ("csrf", csrf.clone()),
                ("format", "csv".into()),
                ("file", "".into()),
                (
                    "body",
                    "id,text,gold_label\n1,hello,toxic\n2,<script>x</script>,\n3,bye,\n".into(),
                ),
            ],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let html = get(res.headers()["location"].to_str().unwrap().to_string())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Imported 3 items."), "{html}");

        // A pool chosen by an answer that does not exist is refused; a valid one is added.
        let res = post(
            format!("{base}/pools"),
            vec![
                ("csrf", csrf.clone()),
                ("name", "experts".into()),
                ("question", "lgbtq".into()),
                ("answer", "maybe".into()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.text().await.unwrap().contains("id=\"pool-error\""));
        let res = post(
            format!("{base}/pools"),
            vec![
                ("csrf", csrf.clone()),
                ("name", "experts <3".into()),
                ("question", "".into()),
                ("answer", "".into()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let html = get(base.clone()).await.unwrap().text().await.unwrap();
        assert!(html.contains("experts &lt;3"), "{html}");

        // An invitation into the new pool: the code is shown once and works.
        let res = post(
            format!("{base}/invitations"),
            vec![
                ("csrf", csrf.clone()),
                ("pool", "experts <3".into()),
                ("max_uses", "2".into()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let html = res.text().await.unwrap();
        let m = "id=\"invitation-code\">";
        let start = html.find(m).expect("code shown") + m.len();
        let code = html[start..].split('<').next().unwrap().to_string();
        assert!(html.contains(&format!("/join?code={code}")));
        let r = app.ready_rater(&code, json!({ "lgbtq": "yes" })).await;
        let (_, n) = r.get("/api/next").await;
        assert_eq!(n["status"], "item", "{n}");
        // The invitation's pool wins over the answer (checked in storage: a pool of one is
        // never named in any output).
        let state = app.state.as_ref().expect("in-process server");
        let pools = state.db.pools(p).await.unwrap();
        let raters = state.db.raters(p).await.unwrap();
        let experts = pools.iter().find(|x| x.name == "experts <3").unwrap().id;
        assert_eq!(raters[0].pool_id, Some(experts));
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert!(!dash.to_string().contains("experts"), "{dash}");

        // A new instructions version.
        let res = post(
            format!("{base}/instructions"),
            vec![
                ("csrf", csrf.clone()),
                ("text", "Version two & more.".into()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let html = get(res.headers()["location"].to_str().unwrap().to_string())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("Instructions version 2 published")
                && html.contains("Version two &amp; more.")
        );
        // A wrong CSRF token on any admin form is refused.
        let res = post(
            format!("{base}/invitations"),
            vec![("csrf", "0".repeat(32)), ("max_uses", "1".into())],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
}
