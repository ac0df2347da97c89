//! Per-pool overlap under concurrent fetching: a pool never gets more raters on an item than
//! `overlap_per_pool`, however many of its raters ask for work at the same moment.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::*;

/// GET `/api/next` for every rater at once; returns each rater's response.
async fn fetch_all(app: &TestApp, raters: &[(String, String)]) -> Vec<Value> {
    let mut set = JoinSet::new();
    for (i, (cookie, _)) in raters.iter().enumerate() {
        let client = app.client.clone();
        let url = app.url("/api/next");
        let cookie = format!("arbiter_session={cookie}");
        set.spawn(async move {
            let res = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("next");
            assert_eq!(res.status(), StatusCode::OK);
            (i, res.json::<Value>().await.expect("json"))
        });
    }
    let mut out = vec![Value::Null; raters.len()];
    while let Some(r) = set.join_next().await {
        let (i, v) = r.expect("task");
        out[i] = v;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_never_exceed_the_pool_overlap() {
    for db in databases().await {
        let app = spawn_app(&db).await;
        let overlap = 2;
        let n_items = 4;
        let p = app
            .project(
                spec(json!({ "overlap_per_pool": overlap, "questionnaire": [], "pools": [] })),
                &items(n_items, &[]),
            )
            .await;
        let code = app.invite(p, None, 12).await;
        let mut raters = Vec::new();
        for _ in 0..12 {
            let r = app.ready_rater(&code, json!({})).await;
            raters.push((r.cookie.clone(), r.csrf.clone()));
        }
        // Rounds of everyone fetching at once, then everyone answering what they got.
        let mut served: BTreeMap<i64, usize> = BTreeMap::new();
        for _round in 0..n_items {
            let got = fetch_all(&app, &raters).await;
            let mut submits = JoinSet::new();
            for ((cookie, csrf), next) in raters.iter().zip(&got) {
                if next["status"] != "item" {
                    assert_eq!(next["status"], "done", "{next}");
                    continue;
                }
                let id = next["item"]["id"].as_i64().expect("id");
                *served.entry(id).or_default() += 1;
                let req = app
                    .client
                    .post(app.url("/api/annotations"))
                    .header("cookie", format!("arbiter_session={cookie}"))
                    .header("x-csrf-token", csrf)
                    .json(&json!({ "item_id": id, "label": "toxic" }));
                submits.spawn(async move { req.send().await.expect("submit").status() });
            }
            while let Some(s) = submits.join_next().await {
                assert_eq!(s.expect("task"), StatusCode::CREATED);
            }
        }
        assert!(
            served.values().all(|n| *n <= overlap as usize),
            "an item was served to more raters of the pool than its overlap of {overlap}: {served:?}"
        );
        assert_eq!(
            served.values().sum::<usize>(),
            n_items * overlap as usize,
            "every item reaches its overlap: {served:?}"
        );
        let (_, dash) = app.admin_get(&format!("/api/projects/{p}/dashboard")).await;
        assert_eq!(
            dash["pools"][0]["labels"],
            n_items * overlap as usize,
            "{dash}"
        );
        assert_eq!(dash["pools"][0]["items_complete"], n_items, "{dash}");
    }
}
