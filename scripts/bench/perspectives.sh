#!/usr/bin/env bash
# The perspective models on every shared-task set (not a timed test; run by hand): `arbiter
# perspectives eval` on LeWiDi 2023's four sets (official splits) and MultiPICo, each report
# written to OUT/<set>/ (report.md, report.html, report.json), then one table of the headline
# figures beside the floors and published numbers of annotation.md section 10.
#
# Usage: scripts/bench/perspectives.sh [OUT] (default /tmp/arbiter-perspectives). Needs the
# shared data ($ARBITER_DATA) and the embedded model (scripts/setup-models.sh). Builds the
# release binary unless ARBITER_BIN names one. About half an hour on 2 cores, MD-Agreement the longest; embeddings are
# cached, so a second run spends its time training.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/arbiter-perspectives}
export ARBITER_DATA=${ARBITER_DATA:-$ROOT/../shared/data}
# ARBITER_BIN picks a binary already built (the dev profile optimises the model crates too).
if [ -z "${ARBITER_BIN:-}" ]; then
    cargo build --release -q -p arbiter --manifest-path "$ROOT/Cargo.toml"
fi
BIN=${ARBITER_BIN:-$ROOT/target/release/arbiter}
mkdir -p "$OUT"
run() {
    local name=$1
    shift
    echo "perspectives: $name (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    local start=$(date +%s)
    "$BIN" perspectives eval "$@" --format json --out "$OUT/$name" > "$OUT/$name.json"
    echo "perspectives: $name took $(( $(date +%s) - start )) s" >&2
}
run HS-Brexit --dataset lewidi:HS-Brexit --pool group --identity group
run ArMIS --dataset lewidi:ArMIS --pool group --identity group
run ConvAbuse --dataset lewidi:ConvAbuse
run MD-Agreement --dataset lewidi:MD-Agreement
run MultiPICo --dataset multipico --pool Gender --identity Gender --identity Age --identity Nationality
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
# Floors computed from the shared test files and published per-annotator macro-F1
# (text-only / multi-task / annotator-token; Sarumi et al. NAACL 2024), annotation.md §10.
floors = {"HS-Brexit": (0.388, 68.6, 71.7, 77.6), "ArMIS": (0.684, 61.7, 56.6, 62.1),
          "ConvAbuse": (0.453, 85.9, 82.3, 88.5), "MD-Agreement": (0.653, 73.0, 75.7, 77.7)}
def est(e):
    ci = e.get("ci")
    return f"{e['value']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
print("| set | model | soft CE | micro-F1 | per-annotator macro-F1 (mean / worst) | per-annotator error |")
print("|---|---|---|---|---|---|")
for name in ["HS-Brexit", "ArMIS", "ConvAbuse", "MD-Agreement", "MultiPICo"]:
    d = json.loads((out / f"{name}.json").read_text())
    b = d["baselines"]
    print(f"| {name} | training prior | {b['prior_ce']:.4f} | {b.get('majority_f1') or float('nan'):.4f} | {b.get('most_frequent_macro_f1') or float('nan'):.4f} | {b['most_frequent_error_rate']:.4f} (own most frequent {b['annotator_most_frequent_error_rate']:.4f}) |")
    for m in d["models"]:
        f = m["per_annotator_macro_f1"]
        mean = f"{f['mean']:.4f}" if f["mean"] is not None else "–"
        worst = f"{f['worst']:.4f}" if f["worst"] is not None else "–"
        mf = est(m["micro_f1"]) if m["micro_f1"] else "–"
        print(f"| {name} | {m['model']} | {est(m['soft_ce'])} | {mf} | {mean} / {worst} | {est(m['per_annotator_error_rate'])} |")
    if name in floors:
        fl = floors[name]
        print(f"| {name} | floor / published | prior floor {fl[0]} | | text-only {fl[1]}, multi-task {fl[2]}, annotator-token {fl[3]} | |")
    else:
        print(f"| {name} | published | Manhattan: uniform 0.619, dev prior 0.519 (ours {d['manhattan']:.4f}) | | | most frequent 0.316, best 0.289 |")
PY
