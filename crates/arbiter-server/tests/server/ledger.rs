//! The admin's pay ledger with known times on task: what each rater earned, the totals, hourly
//! rates only from 10 minutes on task, withdrawn raters kept anonymously, raters who never
//! consented left out, and pools only as released classes.

use arbiter_server::release::MERGED_POOLS;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Sets every stored annotation of a rater to `ms` of time on task.
async fn set_time(db: &str, pseudonym: &str, ms: i64) {
    sql(
        db,
        &format!(
            "UPDATE annotations SET duration_ms = {ms} WHERE rater_id = (SELECT id FROM raters WHERE pseudonym = '{pseudonym}')"
        ),
    )
    .await;
}

fn line<'a>(dash: &'a Value, rater: &str) -> &'a Value {
    dash["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rater"] == rater)
        .unwrap_or_else(|| panic!("no ledger line for {rater}: {dash}"))
}

fn close(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - expected).abs() < 1e-9)
}

#[tokio::test]
async fn ledger_adds_up_with_known_times_and_released_pools() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        // Pools a and b are chosen by an answer; with k = 5, a (1 rater) and b (4) are merged
        // and only "control" (5 after the withdrawal) is named.
        let p = app
            .project(
                spec(json!({
                    "currency": "EUR",
                    "questionnaire": [
                        { "id": "group", "text": "Your group?", "options": ["a", "b", "c"] }
                    ],
                    "pools": [
                        { "name": "a", "rule": { "question": "group", "answer": "a" } },
                        { "name": "b", "rule": { "question": "group", "answer": "b" } },
                        { "name": "control" }
                    ],
                })),
                &items(10, &[]),
            )
            .await;
        let code = app.invite(p, None, 20).await;
        let worker = app.ready_rater(&code, json!({ "group": "c" })).await;
        let quick = app.ready_rater(&code, json!({ "group": "a" })).await;
        let leaver = app.ready_rater(&code, json!({ "group": "c" })).await;
        for _ in 0..4 {
            app.ready_rater(&code, json!({ "group": "c" })).await;
            app.ready_rater(&code, json!({ "group": "b" })).await;
        }
        let never = app.join(&code).await;

        // worker: 2 labels and a skip, 4 minutes each; quick: 1 label in 30 s; leaver: 2
        // labels, 5 minutes each, then withdraws.
        for _ in 0..2 {
            assert_eq!(worker.label_next(json!("toxic")).await.unwrap().1, 201);
            assert_eq!(leaver.label_next(json!("toxic")).await.unwrap().1, 201);
        }
        let (_, next) = worker.get("/api/next").await;
        let item = next["item"]["id"].as_i64().unwrap();
        let (s, _) = worker.post("/api/skip", json!({ "item_id": item })).await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(quick.label_next(json!("toxic")).await.unwrap().1, 201);
        set_time(&db, &worker.pseudonym, 240_000).await;
        set_time(&db, &quick.pseudonym, 30_000).await;
        set_time(&db, &leaver.pseudonym, 300_000).await;
        let (s, _) = leaver.post("/api/withdraw", json!({})).await;
        assert_eq!(s, StatusCode::OK);

        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        let ledger = dash["ledger"].as_array().unwrap();
        // Ten current raters who consented, then the withdrawn rater's anonymous line.
        assert_eq!(ledger.len(), 11, "{dash}");
        assert!(
            !dash.to_string().contains(&never.pseudonym),
            "a rater who never consented is left out: {dash}"
        );
        for l in ledger {
            assert!(
                l["pool"] == "control" || l["pool"] == MERGED_POOLS || l["pool"].is_null(),
                "only released classes: {l}"
            );
        }

        // 3 items × 0.25 in 12 minutes: 0.75 earned, 3.75 per hour, under the 15.00 standard.
        let w = line(&dash, &worker.pseudonym);
        assert_eq!(
            (w["labelled"].as_i64(), w["skipped"].as_i64()),
            (Some(2), Some(1))
        );
        assert_eq!(w["pool"], "control");
        assert!(
            close(&w["minutes"], 12.0) && close(&w["earned"], 0.75),
            "{w}"
        );
        assert!(close(&w["effective_hourly"], 3.75), "{w}");
        assert_eq!(w["meets_standard"], false);

        // Half a minute: earned, but no hourly rate yet; its pool a (1 rater) is merged.
        let q = line(&dash, &quick.pseudonym);
        assert_eq!(q["pool"], MERGED_POOLS);
        assert!(
            close(&q["minutes"], 0.5) && close(&q["earned"], 0.25),
            "{q}"
        );
        assert!(
            q["effective_hourly"].is_null() && q["meets_standard"].is_null(),
            "{q}"
        );

        // The withdrawn rater: anonymous, no pool, 2 × 0.25 in 10 minutes = 3.00 per hour.
        let owed = &ledger[10];
        assert!(
            owed["rater"]
                .as_str()
                .unwrap()
                .starts_with("withdrawn rater, reference owed-"),
            "{owed}"
        );
        assert!(owed["pool"].is_null());
        assert_eq!(owed["labelled"], 2);
        assert!(
            close(&owed["minutes"], 10.0) && close(&owed["earned"], 0.5),
            "{owed}"
        );
        assert!(close(&owed["effective_hourly"], 3.0), "{owed}");

        // Totals: every line, the anonymous one included.
        let t = &dash["ledger_totals"];
        assert_eq!(
            (t["labelled"].as_i64(), t["skipped"].as_i64()),
            (Some(5), Some(1))
        );
        assert!(
            close(&t["minutes"], 22.5) && close(&t["earned"], 1.5),
            "{t}"
        );
        assert_eq!(t["currency"], "EUR");
        let sum: f64 = ledger.iter().map(|l| l["earned"].as_f64().unwrap()).sum();
        assert!(close(&t["earned"], sum));

        // The page: the same figures, the rule in words, no pool under k.
        let html = text_of(&app, &format!("/admin/projects/{p}")).await;
        let start = html.find("id=\"ledger-table\"").expect("ledger table");
        let table = &html[start..start + html[start..].find("</table>").unwrap()];
        assert!(
            html.contains("Hourly rates are shown once a rater has at least 10 minutes on task."),
            "{html}"
        );
        assert!(
            html[..start].ends_with("<div class=\"scroll\"><table "),
            "the table scrolls on its own on a narrow screen"
        );
        assert!(
            table.contains(&format!(
                "<th scope=\"row\">{}</th><td>control</td><td>2</td><td>1</td><td>12.0</td><td>0.75 EUR</td><td>3.75 EUR</td><td>NO</td>",
                worker.pseudonym
            )),
            "{table}"
        );
        assert!(
            table.contains(&format!(
                "<th scope=\"row\">{}</th><td>{MERGED_POOLS}</td><td>1</td><td>0</td><td>0.5</td><td>0.25 EUR</td><td>–</td><td>–</td>",
                quick.pseudonym
            )),
            "{table}"
        );
        assert!(
            table.contains(
                "<tr id=\"ledger-totals\"><th scope=\"row\">Total</th><td></td><td>5</td><td>1</td><td>22.5</td><td>1.50 EUR</td>"
            ),
            "{table}"
        );
        assert!(table.contains("withdrawn rater, reference owed-"));
        for hidden in ["<td>a</td>", "<td>b</td>", &never.pseudonym] {
            assert!(!table.contains(hidden), "{hidden} in {table}");
        }

        // The raters' own pages: the rate per item, minutes, and a rate only from 10 minutes.
        let own = |cookie: String| {
            let c = app.client.clone();
            let url = app.url("/ledger");
            async move {
                c.get(url)
                    .header("cookie", format!("arbiter_session={cookie}"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        let html = own(worker.cookie.clone()).await;
        for want in [
            "0.25 EUR per item, skips included",
            "12.0 minutes",
            "<dd id=\"effective\">3.75 EUR/hour</dd>",
            "at least 10 minutes on task",
        ] {
            assert!(html.contains(want), "{want}: {html}");
        }
        let html = own(quick.cookie.clone()).await;
        assert!(
            html.contains("<dd id=\"effective\">not yet (0.5 of 10 minutes on task)</dd>"),
            "{html}"
        );
    }
}
