//! The JSON API end to end, on every configured back end.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn healthz_and_openapi_document_every_route() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let res = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let (s, doc) = app
            .call(reqwest::Method::GET, "/api/openapi.json", &Auth::None, None)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for (path, method) in crate::access::ADMIN_ROUTES
            .iter()
            .chain(crate::access::RATER_ROUTES)
        {
            let templ = path
                .replace("/1/", "/{id}/")
                .replace("/projects/1", "/projects/{id}")
                .replace("/invitations/{id}/", "/invitations/{inv}/")
                .replace("/raters/r-000000/", "/raters/{pseudonym}/");
            let templ = templ.split('?').next().unwrap();
            assert!(
                doc["paths"][templ][method.as_str().to_lowercase()].is_object(),
                "{method} {templ} missing from OpenAPI"
            );
        }
    }
}

#[tokio::test]
async fn invalid_projects_are_refused_with_reasons() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let (s, b) = app
            .admin_post("/api/projects", spec(json!({ "k_min": 3 })))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            b["error"]
                .as_str()
                .unwrap()
                .contains("k_min must be at least 5"),
            "{b}"
        );
        let (s, b) = app
            .admin_post("/api/projects", spec(json!({ "pools": [{ "name": "x", "rule": { "question": "nope", "answer": "yes" } }] })))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            b["error"].as_str().unwrap().contains("unknown question"),
            "{b}"
        );
        let (s, _) = app.admin_post("/api/projects", json!({ "name": 3 })).await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "well-formed JSON of the wrong shape"
        );
        let res = app
            .client
            .post(app.url("/api/projects"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let (s, b) = app.admin_get("/api/projects/999").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
}

#[tokio::test]
async fn item_import_reports_file_and_line_and_is_all_or_nothing() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(spec(json!({})), "").await;
        let (s, b) = app
            .import(
                p,
                "jsonl",
                "{\"id\":\"a\",\"text\":\"x\"}\n{oops\n{\"id\":\"b\",\"text\":\"\"}\n",
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let errs = b["line_errors"].as_array().unwrap();
        assert_eq!(errs.len(), 2, "{b}");
        assert!(
            errs[0]["text"]
                .as_str()
                .unwrap()
                .starts_with("items.jsonl:2:"),
            "{b}"
        );
        assert_eq!(errs[1]["line"], 3);
        let (s, b) = app
            .import(
                p,
                "csv",
                "id,text,gold_label\n1,hello,toxic\n2,bye,purple\n",
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            b["line_errors"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("items.csv:3: gold_label"),
            "{b}"
        );
        let (s, b) = app
            .import(p, "csv", "id,text,warning\n1,hello,\n2,bye,gore\n")
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = app.import(p, "csv", "id,text\n3,new\n1,again\n").await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        let (s, b) = app.import(p, "xml", "<x/>").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        // Nothing of the refused files was imported: exactly items 1 and 2 are served.
        let code = app.invite(p, Some("control"), 1).await;
        let r = app.ready_rater(&code, json!({})).await;
        let mut served = Vec::new();
        while let Some((_, s, _)) = r.label_next(json!("toxic")).await {
            assert_eq!(s, StatusCode::CREATED);
            served.push(());
        }
        assert_eq!(served.len(), 2);
    }
}

#[tokio::test]
async fn rater_flow_consent_questionnaire_gold_feedback_and_versions() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let items = "{\"id\":\"g1\",\"text\":\"you are lovely\",\"gold_label\":\"not toxic\",\"gold_note\":\"Kind words.\"}\n{\"id\":\"w1\",\"text\":\"a threat\",\"warning\":\"violence\"}\n{\"id\":\"n1\",\"text\":\"plain\"}\n";
        let p = app
            .project(spec(json!({ "overlap_per_pool": 1 })), items)
            .await;
        let code = app.invite(p, None, 5).await;
        let r = app.join(&code).await;
        // No item before consent, and no questionnaire before consent.
        assert_eq!(r.get("/api/next").await.0, StatusCode::CONFLICT);
        assert_eq!(
            r.post("/api/questionnaire", json!({})).await.0,
            StatusCode::FORBIDDEN
        );
        let (s, me) = r.get("/api/me").await;
        assert_eq!(s, StatusCode::OK);
        assert!(me["consent_text"].as_str().unwrap().contains("slurs"));
        let options = me["questionnaire"][0]["options"].as_array().unwrap();
        assert!(options.iter().any(|o| o == "prefer not to say"), "{me}");
        assert_eq!(
            r.post("/api/consent", json!({ "agree": false })).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            r.post("/api/consent", json!({ "agree": true })).await.0,
            StatusCode::OK
        );
        assert_eq!(r.get("/api/next").await.0, StatusCode::CONFLICT);
        let (s, _) = r
            .post(
                "/api/questionnaire",
                json!({ "answers": { "lgbtq": "maybe" } }),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = r
            .post(
                "/api/questionnaire",
                json!({ "answers": { "lgbtq": "prefer not to say" } }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);

        // Items come in id order (all equally annotated); the warned one is flagged blurred.
        let (_, n) = r.get("/api/next").await;
        assert_eq!(n["item"]["text"], "you are lovely");
        assert_eq!(n["instructions_version"], 1);
        assert!(
            n["item"].get("gold_label").is_none(),
            "gold must not leak: {n}"
        );
        // Asking again returns the same open item (no extra exposure).
        let (_, again) = r.get("/api/next").await;
        assert_eq!(again["item"]["id"], n["item"]["id"]);
        let item = n["item"]["id"].as_i64().unwrap();
        let (s, b) = r
            .post(
                "/api/annotations",
                json!({ "item_id": item, "label": "toxic" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["gold"]["correct"], false);
        assert_eq!(b["gold"]["note"], "Kind words.");
        let (s, _) = r
            .post(
                "/api/annotations",
                json!({ "item_id": item, "label": "toxic" }),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::CONFLICT,
            "a second answer to the same item is refused"
        );

        // New instructions: the next label records version 2.
        let (s, v) = app
            .admin_post(
                &format!("/api/projects/{p}/instructions"),
                json!({ "text": "Version two." }),
            )
            .await;
        assert_eq!((s, v["version"].as_i64()), (StatusCode::OK, Some(2)));
        let (_, n) = r.get("/api/next").await;
        assert_eq!(n["item"]["blurred"], true);
        assert_eq!(n["item"]["warning"], "violence");
        assert_eq!(n["instructions_version"], 2);
        let item = n["item"]["id"].as_i64().unwrap();
        assert_eq!(
            r.post(
                "/api/annotations",
                json!({ "item_id": item, "label": "purple" })
            )
            .await
            .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            r.post(
                "/api/annotations",
                json!({ "item_id": item, "label": "toxic", "rationale": "threat" })
            )
            .await
            .0,
            StatusCode::CREATED
        );
        // Skipping is free: it is paid and counted as done.
        let (_, n) = r.get("/api/next").await;
        let item = n["item"]["id"].as_i64().unwrap();
        assert_eq!(
            r.post("/api/skip", json!({ "item_id": item })).await.0,
            StatusCode::CREATED
        );
        assert_eq!(r.get("/api/next").await.1["status"], "done");
        let (s, ledger) = r.get("/api/ledger").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            (ledger["labelled"].as_i64(), ledger["skipped"].as_i64()),
            (Some(2), Some(1))
        );
        assert!(
            (ledger["earned"].as_f64().unwrap() - 0.75).abs() < 1e-9,
            "{ledger}"
        );

        let text = text_of(&app, &format!("/api/projects/{p}/export?format=jsonl")).await;
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2, "skips are not exported as labels: {text}");
        assert_eq!(rows[0]["instructions_version"], 1);
        assert_eq!(rows[1]["instructions_version"], 2);
        assert_eq!(rows[1]["rationale"], "threat");
        assert_eq!(rows[0]["rater"], r.pseudonym.as_str());
        assert_eq!(
            rows[0]["pool"],
            arbiter_server::release::WITHHELD_POOLS,
            "one rater in all: no pool is named"
        );
    }
}

#[tokio::test]
async fn session_cap_shows_a_break_and_daily_cap_stops_the_day() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(
                spec(json!({ "session_cap": 2, "daily_cap": 3, "break_minutes": 0 })),
                &items(10, &[]),
            )
            .await;
        let code = app.invite(p, None, 1).await;
        let r = app.ready_rater(&code, json!({ "lgbtq": "no" })).await;
        // A zero-minute break lets work resume at once; the daily cap then stops at 3.
        for _ in 0..3 {
            let (_, s, _) = r.label_next(json!("toxic")).await.expect("item");
            assert_eq!(s, StatusCode::CREATED);
        }
        let (_, n) = r.get("/api/next").await;
        assert_eq!(n["status"], "daily_cap", "{n}");

        let p = app.project(spec(json!({ "name": "second", "session_cap": 2, "daily_cap": 10, "break_minutes": 30 })), &items(10, &[])).await;
        let code = app.invite(p, None, 1).await;
        let r = app.ready_rater(&code, json!({})).await;
        r.label_next(json!("toxic")).await.expect("item");
        let (_, n) = r.get("/api/next").await;
        let item = n["item"]["id"].as_i64().unwrap();
        assert_eq!(
            r.post("/api/skip", json!({ "item_id": item })).await.0,
            StatusCode::CREATED
        );
        let (_, n) = r.get("/api/next").await;
        assert_eq!(n["status"], "break", "skips count as exposure: {n}");
        assert!(n["resume_at"].as_i64().unwrap() > 0);
    }
}

#[tokio::test]
async fn assignment_respects_pool_overlap_least_annotated_first() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(spec(json!({ "overlap_per_pool": 1 })), &items(2, &[]))
            .await;
        let code = app.invite(p, None, 10).await;
        let a = app.ready_rater(&code, json!({ "lgbtq": "no" })).await;
        let b = app.ready_rater(&code, json!({ "lgbtq": "no" })).await;
        let c = app.ready_rater(&code, json!({ "lgbtq": "no" })).await;
        let d = app.ready_rater(&code, json!({ "lgbtq": "yes" })).await;
        let (ia, _, _) = a.label_next(json!("toxic")).await.unwrap();
        let (ib, _, _) = b.label_next(json!("toxic")).await.unwrap();
        assert_ne!(ia, ib, "least-annotated first spreads the pool over items");
        assert!(
            c.label_next(json!("toxic")).await.is_none(),
            "the control pool has its overlap"
        );
        let (id1, _, _) = d.label_next(json!("not toxic")).await.unwrap();
        let (id2, _, _) = d.label_next(json!("not toxic")).await.unwrap();
        assert_ne!(id1, id2, "the other pool still needs both items");
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        // Four raters in all, under k = 5: the identity pools are released as one withheld
        // class, with no sizes, and items are not compared across them.
        let pools = dash["pools"].as_array().unwrap();
        assert_eq!(pools.len(), 1, "{dash}");
        assert_eq!(pools[0]["name"], arbiter_server::release::WITHHELD_POOLS);
        assert!(pools[0]["raters"].is_null(), "{dash}");
        assert_eq!(pools[0]["items_complete"], 2, "both pools' overlap is met");
        assert!(dash["dividing_items"].as_array().unwrap().is_empty());
    }
}

/// Two invitation pools that label every item oppositely: the dashboard's JSON and page carry a
/// predictability row per pool, from the real models.
#[tokio::test]
async fn dashboard_predicts_each_pool_from_the_other() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(
                spec(json!({
                    "overlap_per_pool": 1,
                    "questionnaire": [],
                    "pools": [{ "name": "north" }, { "name": "south" }],
                })),
                &items(24, &[]),
            )
            .await;
        for (pool, toxic_when_even) in [("north", true), ("south", false)] {
            let code = app.invite(p, Some(pool), 1).await;
            let r = app.ready_rater(&code, json!({})).await;
            for _ in 0..24 {
                let (_, n) = r.get("/api/next").await;
                let id = n["item"]["id"].as_i64().unwrap();
                let number: usize = n["item"]["text"]
                    .as_str()
                    .unwrap()
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let label = if number.is_multiple_of(2) == toxic_when_even {
                    "toxic"
                } else {
                    "not toxic"
                };
                let (s, b) = r
                    .post("/api/annotations", json!({ "item_id": id, "label": label }))
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{b}");
            }
        }
        let (s, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert_eq!(s, StatusCode::OK, "{dash}");
        let pred = &dash["pool_predictability"];
        assert!(pred["not_computed"].is_null(), "{pred}");
        let rows = pred["pools"].as_array().unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["north", "south"], "{pred}");
        for r in rows {
            assert_eq!(r["items_scored"], 24, "{pred}");
            for key in ["from_others", "own", "prior"] {
                let ce = r[key].as_f64().unwrap();
                assert!(ce.is_finite() && ce > 0.0, "{key}: {pred}");
            }
            // Half the items toxic for each pool: its prior is close to ln 2.
            assert!(
                (r["prior"].as_f64().unwrap() - 2f64.ln()).abs() < 0.05,
                "{pred}"
            );
        }
        let html = text_of(&app, &format!("/admin/projects/{p}")).await;
        let table = html
            .split("id=\"predictability-table\"")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap();
        assert!(
            table.contains("Predicted from the other pools") && table.contains("south"),
            "{table}"
        );
    }
}

#[tokio::test]
async fn dashboard_agreement_demographics_and_datasheet() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(spec(json!({ "overlap_per_pool": 6 })), &items(4, &[2]))
            .await;
        let code = app.invite(p, None, 20).await;
        // Six raters, five "no" and one "yes": the "yes" group is under k = 5.
        let mut raters = Vec::new();
        for i in 0..6 {
            let answer = if i == 5 { "yes" } else { "no" };
            raters.push(app.ready_rater(&code, json!({ "lgbtq": answer })).await);
        }
        // Pattern: items 1 and 2 unanimous within control, item 3 split, item 4 unanimous.
        let labels = [
            ["toxic", "toxic", "not toxic", "toxic"],
            ["toxic", "toxic", "toxic", "toxic"],
            ["toxic", "toxic", "not toxic", "toxic"],
            ["toxic", "toxic", "toxic", "toxic"],
            ["toxic", "not toxic", "not toxic", "toxic"],
            ["not toxic", "not toxic", "not toxic", "not toxic"],
        ];
        for (r, row) in raters.iter().zip(labels) {
            for _ in 0..4 {
                let (_, n) = r.get("/api/next").await;
                let id = n["item"]["id"].as_i64().unwrap();
                let ext = n["item"]["text"]
                    .as_str()
                    .unwrap()
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap();
                let (s, _) = r
                    .post(
                        "/api/annotations",
                        json!({ "item_id": id, "label": row[ext - 1] }),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED);
            }
        }
        let (s, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert_eq!(s, StatusCode::OK, "{dash}");
        // Expected α from arbiter-stats on the same rows (checked against krippendorff's
        // reference values in its golden tests).
        use arbiter_server::agreement::{Agreement, Level, Rating, StatsAlpha};
        let mut all = Vec::new();
        for (ri, row) in labels.iter().enumerate() {
            for (ii, l) in row.iter().enumerate() {
                all.push(Rating {
                    item: ii as i64,
                    rater: ri as i64,
                    label: l.to_string(),
                });
            }
        }
        let pooled = StatsAlpha.alpha(&all, &Level::Nominal).unwrap();
        assert!(
            (dash["alpha_pooled"].as_f64().unwrap() - pooled).abs() < 1e-9,
            "{dash}"
        );
        // The lgbtq pool has one rater: it is merged with control (5) into one class of 6, so
        // its size and its own α are never shown.
        let pools = dash["pools"].as_array().unwrap();
        assert_eq!(pools.len(), 1, "{dash}");
        assert_eq!(pools[0]["name"], arbiter_server::release::MERGED_POOLS);
        assert_eq!(pools[0]["raters"], 6);
        assert!(
            (pools[0]["alpha_within"].as_f64().unwrap() - pooled).abs() < 1e-9,
            "{dash}"
        );
        assert_eq!(dash["ledger"].as_array().unwrap().len(), 6);
        // One released class: no pool to predict from the others.
        assert!(
            dash["pool_predictability"]["not_computed"]
                .as_str()
                .unwrap()
                .contains("two released pool classes, and 1"),
            "{dash}"
        );
        assert!(
            dash["pool_predictability"]["pools"]
                .as_array()
                .unwrap()
                .is_empty()
        );

        let (_, demo) = app
            .admin_get(&format!("/api/projects/{p}/demographics"))
            .await;
        // "lgbtq" chooses a pool: its answers leave only as pool classes, never as counts.
        let q = &demo["questions"][0];
        assert!(q["groups"].as_object().unwrap().is_empty(), "{demo}");
        assert_eq!(q["withheld"], true);
        assert!(
            q["note"].as_str().unwrap().contains("chooses pools"),
            "{demo}"
        );
        assert_eq!(demo["raters"], 6);

        for (fmt, needle) in [
            ("md", "**21. A withdrawal path"),
            ("html", "<dt>21. A withdrawal path"),
        ] {
            let res = app
                .client
                .get(app.url(&format!("/api/projects/{p}/datasheet?format={fmt}")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let text = res.text().await.unwrap();
            assert!(text.contains(needle), "{text}");
            assert!(text.contains("subjective"), "admin notes appear");
            assert!(text.contains("0.25 USD per completed item"), "{text}");
            for n in 1..=21 {
                let marker = if fmt == "md" {
                    format!("**{n}. ")
                } else {
                    format!("<dt>{n}. ")
                };
                assert!(text.contains(&marker), "datasheet item {n} missing");
            }
        }
        let res = app
            .client
            .get(app.url(&format!("/api/projects/{p}/export?format=csv")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let csv = res.text().await.unwrap();
        assert!(
            csv.starts_with("item,rater,pool,label,rationale,instructions_version,duration_ms"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 25);
        assert!(csv.contains(&raters[0].pseudonym));
    }
}

#[tokio::test]
async fn withdrawal_erases_data_and_ends_the_session() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app.project(spec(json!({})), &items(3, &[])).await;
        let code = app.invite(p, None, 2).await;
        let stay = app.ready_rater(&code, json!({ "lgbtq": "no" })).await;
        let leave = app.ready_rater(&code, json!({ "lgbtq": "yes" })).await;
        stay.label_next(json!("toxic")).await.unwrap();
        leave.label_next(json!("toxic")).await.unwrap();
        leave.label_next(json!("toxic")).await.unwrap();
        assert_eq!(
            leave.post("/api/withdraw", json!({})).await.0,
            StatusCode::OK
        );
        assert_eq!(leave.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
        let text = text_of(&app, &format!("/api/projects/{p}/export?format=jsonl")).await;
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains(&leave.pseudonym));
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert_eq!(dash["withdrawn"], 1);
        // What the withdrawn rater earned stays owed, as an anonymous line.
        let ledger = dash["ledger"].as_array().unwrap();
        assert_eq!(ledger.len(), 2, "{dash}");
        assert_eq!(ledger[0]["rater"], stay.pseudonym.as_str());
        assert!(
            ledger[1]["rater"]
                .as_str()
                .unwrap()
                .starts_with("withdrawn rater, reference owed-"),
            "{dash}"
        );
        assert_eq!(ledger[1]["labelled"], 2);
        assert!(ledger[1]["earned"].as_f64().unwrap() > 0.0);
        // The invitation's second use was spent; it cannot be reused.
        let res = app
            .client
            .post(app.url("/api/join"))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn prefetch_stays_within_the_caps() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(
                spec(json!({ "session_cap": 3, "daily_cap": 5, "break_minutes": 30 })),
                &items(10, &[1]),
            )
            .await;
        let r = app
            .ready_rater(&app.invite(p, None, 1).await, json!({}))
            .await;
        let (_, first) = r.get("/api/next").await;
        let (s, batch) = r.get("/api/next?prefetch=10").await;
        assert_eq!(s, StatusCode::OK);
        let items = batch["items"].as_array().unwrap();
        assert_eq!(
            items.len(),
            3,
            "the session cap bounds prefetching: {batch}"
        );
        assert_eq!(items[0]["id"], first["item"]["id"], "open items come first");
        assert_eq!(items[0]["blurred"], true);
        for it in items {
            let (s, _) = r
                .post(
                    "/api/annotations",
                    json!({ "item_id": it["id"], "label": "toxic" }),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
        assert_eq!(r.get("/api/next?prefetch=10").await.1["status"], "break");
    }
}
