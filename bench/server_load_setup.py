#!/usr/bin/env python3
"""Prepares work for bench/submit.lua: a project, raters who joined, consented and declined the
questionnaire, and items served to them (GET /api/next?prefetch=50, which records the exposures
and claims the overlap places). Writes one line per served item: COOKIE CSRF ITEM_ID.

Standard library only. Usage:
    server_load_setup.py URL ADMIN_TOKEN RATERS ITEMS OUT_FILE
"""
import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

url, token, n_raters, n_items, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


def call(method, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers or {})
    if body is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as res:
        return res.headers, json.loads(res.read() or b"null")


admin = {"authorization": "Bearer " + token}
spec = {
    "name": "load benchmark",
    "instructions": "Label each comment.",
    "label_schema": {"kind": "nominal", "labels": ["toxic", "not toxic"]},
    "consent_text": "Benchmark data only.",
    "session_cap": 1000000,
    "daily_cap": 1000000,
    "pay_standard_per_hour": 15.0,
    "pay_per_item": 0.1,
    "overlap_per_pool": 20,
    # Each rater holds its 50 served items at once (the default cap is 10).
    "max_open_claims": 50,
}
_, created = call("POST", "/api/projects", spec, admin)
project = created["id"]
items = "".join(json.dumps({"id": f"i{i}", "text": f"comment number {i}"}) + "\n" for i in range(n_items))
call("POST", f"/api/projects/{project}/items?format=jsonl&file=bench.jsonl", headers=admin, raw=items.encode())
_, inv = call("POST", f"/api/projects/{project}/invitations", {"max_uses": n_raters}, admin)
code = inv["code"]


def rater(_):
    headers, joined = call("POST", "/api/join", {"code": code})
    cookie = headers["set-cookie"].split(";")[0].split("=", 1)[1]
    h = {"cookie": "arbiter_session=" + cookie, "x-csrf-token": joined["csrf"]}
    call("POST", "/api/consent", {"agree": True}, h)
    call("POST", "/api/questionnaire", {"answers": {}}, h)
    _, batch = call("GET", "/api/next?prefetch=50", headers=h)
    return [(cookie, joined["csrf"], it["id"]) for it in batch.get("items", [])]


with ThreadPoolExecutor(int(os.environ.get("JOIN_THREADS", "4"))) as pool:
    work = [t for ts in pool.map(rater, range(n_raters)) for t in ts]
# Interleave raters so concurrent requests come from different raters.
work.sort(key=lambda t: (t[2], t[0]))
with open(out, "w") as f:
    for cookie, csrf, item in work:
        f.write(f"{cookie} {csrf} {item}\n")
print(json.dumps({"project": project, "raters": n_raters, "submissions_prepared": len(work)}))
