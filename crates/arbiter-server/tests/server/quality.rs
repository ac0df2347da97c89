//! Gold re-qualification, and overlap places given back by skips and expired claims.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// JSONL: gold items `g1..` (gold label "not toxic") then regular items `n1..`.
fn gold_then_regular(gold: usize, regular: usize) -> String {
    let mut out = String::new();
    for i in 1..=gold {
        out.push_str(&format!(
            "{{\"id\":\"g{i}\",\"text\":\"gold {i}\",\"gold_label\":\"not toxic\",\"gold_note\":\"A check item.\"}}\n"
        ));
    }
    for i in 1..=regular {
        out.push_str(&format!("{{\"id\":\"n{i}\",\"text\":\"regular {i}\"}}\n"));
    }
    out
}

/// Answers the next item; returns (the item's text, the /api/next body).
async fn answer(r: &RaterClient<'_>, label: &str) -> (String, Value) {
    let (s, next) = r.get("/api/next").await;
    assert_eq!(s, StatusCode::OK, "{next}");
    assert_eq!(next["status"], "item", "{next}");
    let id = next["item"]["id"].as_i64().unwrap();
    let (s, b) = r
        .post("/api/annotations", json!({ "item_id": id, "label": label }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (next["item"]["text"].as_str().unwrap().to_string(), next)
}

fn policy() -> Value {
    spec(json!({
        "overlap_per_pool": 5,
        "questionnaire": [],
        "pools": [],
        "gold_min_accuracy": 0.6,
        "gold_min_answers": 2,
        "requalify_items": 2,
        "requalify_attempts": 2
    }))
}

#[tokio::test]
async fn raters_below_the_gold_threshold_requalify_before_regular_items() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        // Passing in the second round brings the rater back to regular work.
        let p = app.project(policy(), &gold_then_regular(6, 3)).await;
        let r = app
            .ready_rater(&app.invite(p, None, 1).await, json!({}))
            .await;
        let (t, _) = answer(&r, "toxic").await;
        assert_eq!(t, "gold 1");
        let (t, first) = answer(&r, "toxic").await;
        assert_eq!(t, "gold 2");
        assert!(first["qualification"].is_null(), "{first}");
        // 0 of 2 right, under 60%: a qualification round of gold items only, explained.
        let (s, batch) = r.get("/api/next?prefetch=10").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            batch["status"], "item",
            "no prefetching in a round: {batch}"
        );
        let q = &batch["qualification"];
        assert_eq!(
            (q["round"].as_i64(), q["rounds"].as_i64()),
            (Some(1), Some(2)),
            "{batch}"
        );
        assert_eq!(
            (q["items"].as_i64(), q["needed"].as_i64()),
            (Some(2), Some(2))
        );
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert_eq!(
            dash["gold"][0]["standing"], "qualification round 1 of 2",
            "{dash}"
        );
        let html = app
            .client
            .get(app.url("/annotate"))
            .header("cookie", format!("arbiter_session={}", r.cookie))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("id=\"qualification\"") && html.contains("Qualification round 1 of 2"),
            "{html}"
        );
        // Round 1: one of two right fails (needs 2); round 2: both right passes.
        let (t, _) = answer(&r, "not toxic").await;
        assert_eq!(t, "gold 3");
        let (t, n) = answer(&r, "toxic").await;
        assert_eq!(t, "gold 4");
        assert_eq!(n["qualification"]["answered"], 1, "{n}");
        let (t, n) = answer(&r, "not toxic").await;
        assert_eq!(t, "gold 5");
        assert_eq!(n["qualification"]["round"], 2, "{n}");
        let (t, _) = answer(&r, "not toxic").await;
        assert_eq!(t, "gold 6");
        let (t, n) = answer(&r, "toxic").await;
        assert_eq!(t, "regular 1", "qualified again: regular items");
        assert!(n["qualification"].is_null());
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert_eq!(dash["gold"][0]["standing"], "regular work", "{dash}");

        // Failing every round ends the rater's work; their pay is kept.
        let p = app.project(policy(), &gold_then_regular(6, 3)).await;
        let r = app
            .ready_rater(&app.invite(p, None, 1).await, json!({}))
            .await;
        for _ in 0..6 {
            let (t, _) = answer(&r, "toxic").await;
            assert!(t.starts_with("gold"), "{t}");
        }
        let (_, n) = r.get("/api/next").await;
        assert_eq!(n["status"], "retired", "{n}");
        let (_, ledger) = r.get("/api/ledger").await;
        assert_eq!(ledger["labelled"], 6);
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert!(
            dash["gold"][0]["standing"]
                .as_str()
                .unwrap()
                .starts_with("out of"),
            "{dash}"
        );
        assert_eq!(dash["gold"][0]["below_threshold"], true);

        // A round that runs out of gold items pauses the rater instead of serving regular ones.
        let p = app.project(policy(), &gold_then_regular(3, 3)).await;
        let r = app
            .ready_rater(&app.invite(p, None, 1).await, json!({}))
            .await;
        answer(&r, "toxic").await;
        answer(&r, "toxic").await;
        let (t, _) = answer(&r, "not toxic").await;
        assert_eq!(t, "gold 3");
        let (_, n) = r.get("/api/next").await;
        assert_eq!(n["status"], "paused", "{n}");
        assert_eq!(n["qualification"]["answered"], 1, "{n}");
    }
}

#[tokio::test]
async fn skips_and_expired_claims_give_the_place_back() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let p = app
            .project(
                spec(json!({ "overlap_per_pool": 1, "questionnaire": [], "pools": [], "claim_minutes": 30 })),
                &items(2, &[]),
            )
            .await;
        let code = app.invite(p, None, 4).await;
        let a = app.ready_rater(&code, json!({})).await;
        let b = app.ready_rater(&code, json!({})).await;
        let c = app.ready_rater(&code, json!({})).await;
        let (_, na) = a.get("/api/next").await;
        let (_, nb) = b.get("/api/next").await;
        assert_ne!(na["item"]["id"], nb["item"]["id"]);
        assert_eq!(
            c.get("/api/next").await.1["status"],
            "done",
            "both places are taken"
        );
        // A skip gives a's place back: c gets the item.
        assert_eq!(
            a.post("/api/skip", json!({ "item_id": na["item"]["id"] }))
                .await
                .0,
            StatusCode::CREATED
        );
        let (_, nc) = c.get("/api/next").await;
        assert_eq!(nc["item"]["id"], na["item"]["id"], "{nc}");
        // Nothing is old enough yet.
        let state = app.state.as_ref().unwrap();
        let now = arbiter_server::db::now_ms();
        assert_eq!(state.release_expired_claims(now).await.unwrap(), 0);
        // 31 minutes later b's and c's open items are handed on.
        assert_eq!(
            state
                .release_expired_claims(now + 31 * 60_000)
                .await
                .unwrap(),
            2
        );
        let d = app.ready_rater(&code, json!({})).await;
        let (_, nd) = d.get("/api/next").await;
        assert_eq!(nd["status"], "item", "{nd}");
        let (s, body) = b
            .post(
                "/api/annotations",
                json!({ "item_id": nb["item"]["id"], "label": "toxic" }),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("30 minutes"),
            "{body}"
        );
        // b is served again from what is free (c's released item), not beyond the overlap.
        let (_, nb2) = b.get("/api/next").await;
        assert_eq!(nb2["status"], "item", "{nb2}");
        assert_ne!(nb2["item"]["id"], nd["item"]["id"]);
        for (r, n) in [(&b, &nb2), (&d, &nd)] {
            let (s, body) = r
                .post(
                    "/api/annotations",
                    json!({ "item_id": n["item"]["id"], "label": "toxic" }),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
        }
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert_eq!(dash["pools"][0]["labels"], 2, "{dash}");
        assert_eq!(dash["pools"][0]["items_complete"], 2, "{dash}");
        // A withdrawal frees labelled and open places alike.
        assert_eq!(d.post("/api/withdraw", json!({})).await.0, StatusCode::OK);
        let (_, nc2) = c.get("/api/next").await;
        assert_eq!(nc2["status"], "item", "d's place is free again: {nc2}");
    }
}
