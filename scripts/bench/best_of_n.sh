#!/usr/bin/env bash
# Best-of-N (issue 21, item 3): does the RBR reward fitted on the RBR gold train split pick the
# harmless completion among several for the same request? `arbiter rbr select` on the two
# human-labelled sets with several responses per prompt:
#
# - Do-Not-Answer: 939 prompts × 6 models' responses, human `harmful`. Graded by the built-in
#   heads (heads-default.json, fitted without Do-Not-Answer).
# - HarmBench's classifier validation set: 301 behaviours × 2 completions (each under its own
#   attack prompt, so grouped by behaviour: --group-by category), majority of 3 human labels.
#   Graded by heads fitted like heads-default.json without HarmBench (fit_heads_excluding,
#   written to a temporary directory, never to the repository).
#
# Each set is scored by the reward fitted on the gold train split with the features of the
# grader that grades the set (`rbr fit --features grader`, same heads), so neither the heads nor
# the weights have seen the set scored. Every sample is `response_type = hard_refuse`
# (export_select_sets explains why).
#
# Needs $ARBITER_DATA (default ../shared/data) and the model (scripts/setup-models.sh).
# Usage: scripts/bench/best_of_n.sh [OUT_DIR]   (OUT_DIR keeps the weights, heads, JSON reports
# and picks; default: a temporary directory, removed on exit). Takes a few minutes on 2 cores
# after the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${ARBITER_DATA:-../shared/data}
target=${CARGO_TARGET_DIR:-target}
if [ $# -ge 1 ]; then
    dir=$1
    mkdir -p "$dir"
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi
cargo build --release -q -p arbiter
cargo build --release -q -p arbiter-graders --example export_select_sets --example fit_heads_excluding
bin=$target/release/arbiter
export ARBITER_DATA=$data

"$target/release/examples/export_select_sets" "$dir"
"$target/release/examples/fit_heads_excluding" --exclude harmbench_val \
    --out "$dir/heads-without-harmbench.json"

train=$data/rbr_gold/train.jsonl
"$bin" rbr fit --features grader --out "$dir/weights-default-heads.json" "$train"
"$bin" rbr fit --features grader --heads "$dir/heads-without-harmbench.json" \
    --out "$dir/weights-heads-without-harmbench.json" "$train"

# Grade each set once (grades files), then report as JSON (kept) and as text (printed).
run() {
    local name=$1 heads=$2 weights=$3
    shift 3
    local heads_flag=()
    if [ -n "$heads" ]; then heads_flag=(--heads "$heads"); fi
    "$bin" grade "${heads_flag[@]}" --out "$dir/$name.grades.jsonl" "$dir/$name.jsonl"
    local select=("$bin" rbr select --features "$dir/$name.grades.jsonl" --weights "$weights" "$@")
    "${select[@]}" --format json --out "$dir/$name.picks.jsonl" "$dir/$name.jsonl" > "$dir/$name.json"
    echo
    echo "== $name =="
    "${select[@]}" "$dir/$name.jsonl"
}
run do_not_answer "" "$dir/weights-default-heads.json"
run harmbench_val "$dir/heads-without-harmbench.json" \
    "$dir/weights-heads-without-harmbench.json" --group-by category
