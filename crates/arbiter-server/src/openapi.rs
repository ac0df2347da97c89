//! The OpenAPI 3 description of the JSON API, served at `/api/openapi.json`.
//!
//! Written by hand next to the routes it describes; a test checks every API route is listed.

use axum::Json;
use serde_json::{Value, json};

/// Paths and methods of the document; the test suite compares them with the router.
pub(crate) const OPERATIONS: &[(&str, &str, &str, &str)] = &[
    // (path, method, security, summary)
    (
        "/healthz",
        "get",
        "none",
        "Liveness: 200 when the database answers",
    ),
    ("/api/openapi.json", "get", "none", "This document"),
    (
        "/api/projects",
        "post",
        "admin",
        "Create a project from a ProjectSpec",
    ),
    ("/api/projects", "get", "admin", "List projects"),
    (
        "/api/projects/{id}",
        "get",
        "admin",
        "A project with its spec, instructions and pools",
    ),
    (
        "/api/projects/{id}/instructions",
        "post",
        "admin",
        "Publish a new instructions version",
    ),
    (
        "/api/projects/{id}/items",
        "post",
        "admin",
        "Import items (body JSONL or CSV; ?format=jsonl|csv&file=NAME); errors name file and line",
    ),
    (
        "/api/projects/{id}/invitations",
        "post",
        "admin",
        "Create an invitation code, optionally for a pool",
    ),
    (
        "/api/projects/{id}/invitations",
        "get",
        "admin",
        "List invitations: uses, limit, expiry, revoked (never the secret)",
    ),
    (
        "/api/projects/{id}/invitations/{inv}/revoke",
        "post",
        "admin",
        "Revoke an invitation: its code stops working at once",
    ),
    (
        "/api/projects/{id}/raters/{pseudonym}/erase",
        "post",
        "admin",
        "Erase a rater on request (every row, the rater row included); pay earned stays owed as an anonymous ledger line",
    ),
    (
        "/api/projects/{id}/pools",
        "post",
        "admin",
        "Add a pool (by invitation, or chosen by a questionnaire answer); existing items need its overlap too",
    ),
    (
        "/api/projects/{id}/dashboard",
        "get",
        "admin",
        "Progress per pool, agreement, dividing items, per-pool predictability from the other pools, gold quality, pay ledger",
    ),
    (
        "/api/projects/{id}/demographics",
        "get",
        "admin",
        "Questionnaire answers as group counts of at least k",
    ),
    (
        "/api/projects/{id}/export",
        "get",
        "admin",
        "Labels with pseudonymous rater ids, withdrawn raters excluded (?format=jsonl|csv|parquet; Parquet: application/vnd.apache.parquet, the same columns, Snappy-compressed)",
    ),
    (
        "/api/projects/{id}/datasheet",
        "get",
        "admin",
        "CrowdWorkSheets datasheet (?format=md|html)",
    ),
    (
        "/api/join",
        "post",
        "none",
        "Redeem an invitation code; sets the session cookie",
    ),
    (
        "/api/me",
        "get",
        "rater",
        "The caller's status, consent text and questionnaire",
    ),
    ("/api/consent", "post", "rater", "Give informed consent"),
    (
        "/api/questionnaire",
        "post",
        "rater",
        "Answer (or, with no answers, decline) the identity questionnaire",
    ),
    (
        "/api/next",
        "get",
        "rater",
        "The next item (status \"item\", with \"qualification\" during a gold re-qualification round), or status break / daily_cap / done / paused (no gold item left for a round) / retired (out of rounds); ?prefetch=N (2..50) returns up to N items (status \"items\") within the exposure caps and the pool's overlap",
    ),
    (
        "/api/annotations",
        "post",
        "rater",
        "Submit a label for a served item; 201 only after it is durable",
    ),
    (
        "/api/skip",
        "post",
        "rater",
        "Skip a served item without penalty",
    ),
    ("/api/ledger", "get", "rater", "The caller's own pay ledger"),
    (
        "/api/withdraw",
        "post",
        "rater",
        "Withdraw: erase the caller's data; answers the reference under which earned pay stays owed",
    ),
    (
        "/api/withdraw-with-code",
        "post",
        "none",
        "Withdraw with the code shown at consent, signed in or not; wrong codes count against the client's address",
    ),
    ("/api/logout", "post", "rater", "End the session"),
];

fn operation(security: &str, summary: &str, method: &str, path: &str) -> Value {
    let mut op = json!({
        "summary": summary,
        "responses": {
            "200": { "description": "OK" },
            "201": { "description": "Created" },
            "400": { "description": "Invalid input", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
            "401": { "description": "Not authenticated" },
            "403": { "description": "Wrong role, other rater's resource, or missing CSRF token" },
            "404": { "description": "Not found" },
            "409": { "description": "Conflicts with stored state" },
            "429": { "description": "Rate limited" },
        }
    });
    op["security"] = match security {
        "admin" => json!([{ "adminBearer": [] }, { "session": [], "csrf": [] }]),
        "rater" if method == "get" => json!([{ "session": [] }]),
        "rater" => json!([{ "session": [], "csrf": [] }]),
        _ => json!([]),
    };
    let mut parameters = Vec::new();
    if path.contains("{id}") {
        parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }));
    }
    if path.contains("{inv}") {
        parameters.push(json!({ "name": "inv", "in": "path", "required": true, "schema": { "type": "integer" }, "description": "the invitation id (the part of the code before the dash)" }));
    }
    if path.contains("{pseudonym}") {
        parameters.push(json!({ "name": "pseudonym", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    if !parameters.is_empty() {
        op["parameters"] = json!(parameters);
    }
    let body = match (method, path) {
        ("post", "/api/projects") => Some(json!({ "$ref": "#/components/schemas/ProjectSpec" })),
        ("post", "/api/annotations") => Some(json!({
            "type": "object", "required": ["item_id", "label"],
            "properties": { "item_id": { "type": "integer" }, "label": { "description": "a label string, or an array of labels for multi-label schemas" }, "rationale": { "type": "string" } }
        })),
        ("post", "/api/skip") => Some(
            json!({ "type": "object", "required": ["item_id"], "properties": { "item_id": { "type": "integer" } } }),
        ),
        ("post", "/api/join") | ("post", "/api/withdraw-with-code") => Some(
            json!({ "type": "object", "required": ["code"], "properties": { "code": { "type": "string" } } }),
        ),
        ("post", "/api/consent") => Some(
            json!({ "type": "object", "required": ["agree"], "properties": { "agree": { "type": "boolean" } } }),
        ),
        ("post", "/api/questionnaire") => Some(
            json!({ "type": "object", "properties": { "answers": { "type": "object", "additionalProperties": { "type": "string" } } } }),
        ),
        ("post", "/api/projects/{id}/instructions") => Some(
            json!({ "type": "object", "required": ["text"], "properties": { "text": { "type": "string" } } }),
        ),
        ("post", "/api/projects/{id}/pools") => {
            Some(json!({ "$ref": "#/components/schemas/PoolSpec" }))
        }
        ("post", "/api/projects/{id}/invitations") => Some(
            json!({ "type": "object", "properties": { "pool": { "type": "string" }, "max_uses": { "type": "integer", "minimum": 1, "maximum": 1000 }, "expires_in_days": { "type": "integer", "minimum": 1, "maximum": 365, "default": 14 } } }),
        ),
        _ => None,
    };
    if let Some(schema) = body {
        op["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    if path.ends_with("/items") {
        op["requestBody"] = json!({ "required": true, "content": {
            "application/x-ndjson": { "schema": { "type": "string" } },
            "text/csv": { "schema": { "type": "string" } }
        } });
    }
    op
}

/// The document.
pub(crate) fn spec() -> Value {
    let mut paths = serde_json::Map::new();
    for (path, method, security, summary) in OPERATIONS {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation(security, summary, method, path);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Arbiter annotation server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Projects, rater pools, consent, wellbeing caps, pay ledger, agreement and datasheets."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminBearer": { "type": "http", "scheme": "bearer", "description": "ARBITER_ADMIN_TOKEN" },
                "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE },
                "csrf": { "type": "apiKey", "in": "header", "name": crate::auth::CSRF_HEADER }
            },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "string" } } },
                "PoolSpec": { "type": "object", "required": ["name"], "properties": {
                    "name": { "type": "string" },
                    "rule": { "type": "object", "required": ["question", "answer"], "properties": { "question": { "type": "string" }, "answer": { "type": "string" } } } } },
                "ProjectSpec": {
                    "type": "object",
                    "required": ["name", "instructions", "label_schema", "consent_text", "session_cap", "daily_cap", "pay_standard_per_hour", "pay_per_item", "overlap_per_pool"],
                    "properties": {
                        "name": { "type": "string" },
                        "instructions": { "type": "string" },
                        "label_schema": { "type": "object", "required": ["kind", "labels"], "properties": {
                            "kind": { "type": "string", "enum": ["nominal", "ordinal", "multi_label"] },
                            "labels": { "type": "array", "items": { "type": "string" } } } },
                        "rationale": { "type": "string", "enum": ["off", "optional", "required"] },
                        "consent_text": { "type": "string" },
                        "content_warning": { "type": "string" },
                        "session_cap": { "type": "integer", "minimum": 1 },
                        "daily_cap": { "type": "integer", "minimum": 1 },
                        "break_minutes": { "type": "integer", "minimum": 0 },
                        "pay_standard_per_hour": { "type": "number" },
                        "pay_per_item": { "type": "number" },
                        "currency": { "type": "string" },
                        "pay_standard_source": { "type": "string" },
                        "overlap_per_pool": { "type": "integer", "minimum": 1 },
                        "k_min": { "type": "integer", "minimum": 5 },
                        "gold_min_accuracy": { "type": "number", "description": "share correct on gold items; below it (after gold_min_answers answers) a rater is re-qualified" },
                        "gold_min_answers": { "type": "integer", "minimum": 1, "default": 3 },
                        "requalify_items": { "type": "integer", "minimum": 0, "default": 3, "description": "gold items per qualification round; 0 only flags the rater" },
                        "requalify_attempts": { "type": "integer", "minimum": 1, "default": 2 },
                        "claim_minutes": { "type": "integer", "minimum": 1, "default": 60, "description": "an unanswered served item keeps its place in the pool's overlap this long" },
                        "questionnaire": { "type": "array", "items": { "type": "object", "properties": {
                            "id": { "type": "string" }, "text": { "type": "string" }, "options": { "type": "array", "items": { "type": "string" } } } } },
                        "pools": { "type": "array", "items": { "type": "object", "properties": {
                            "name": { "type": "string" },
                            "rule": { "type": "object", "properties": { "question": { "type": "string" }, "answer": { "type": "string" } } } } } },
                        "datasheet_notes": { "type": "object", "additionalProperties": { "type": "string" } }
                    }
                }
            }
        }
    })
}

pub(crate) async fn document() -> Json<Value> {
    Json(spec())
}
