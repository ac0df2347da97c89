#!/usr/bin/env bash
# Load benchmark of `arbiter reward serve` (issue 21): the server on loopback against the same
# embedded grader offline, at batches of 1, 16 and 64 samples from 8 concurrent clients, then a
# memory run. Reads the RBR gold data under $ARBITER_DATA; writes only under a temp directory.
#
#   scripts/bench/reward_serve.sh [SECONDS_PER_SETTING] [MEMORY_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${ARBITER_DATA:-../shared/data}
seconds=${1:-30}
memory=${2:-300}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build -q --release -p arbiter
cargo build -q --release -p arbiter-reward --example load
./target/release/arbiter rbr fit --features human "$data/rbr_gold/train.jsonl" --out "$work/weights.json" 2>/dev/null
./target/release/examples/load --arbiter target/release/arbiter --weights "$work/weights.json" \
  --data "$data/rbr_gold/train.jsonl" --data "$data/rbr_gold/test.jsonl" \
  --seconds "$seconds" --memory-seconds "$memory"
