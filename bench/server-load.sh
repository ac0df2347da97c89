#!/usr/bin/env bash
# Load benchmark of the annotation server (issue 6 goal: >= 2,000 annotation submissions/s with
# p99 <= 50 ms on SQLite on a 2-core machine). Not a timed test: run it by hand.
#
# Starts a release build of `arbiter serve` on a fresh SQLite file, prepares raters and served
# items through the API (bench/server_load_setup.py), then drives POST /api/annotations with wrk
# from a separate process (bench/submit.lua) and checks that the server stored exactly the
# submissions it acknowledged. Prints the load average before and after each run: on a shared
# machine, figures taken under load understate the server.
#
# Usage: bench/server-load.sh [RUNS] [SECONDS] [CONNECTIONS]
#   BIN=path/to/arbiter to skip the build; RATERS (default 900; each gets
#   50 served items, so 45,000 submissions are prepared: enough for 10 s at 4,500/s);
#   JOIN_THREADS (default 32): raters joining at once during set-up, a join storm.
# Reports the server's peak resident memory (VmHWM) during the join storm and, reset after it,
# during the submission load.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${3:-64}
RATERS=${RATERS:-900}
ITEMS=${ITEMS:-5000}
THREADS=1
command -v wrk >/dev/null || { echo "server-load: install wrk (apt-get install -y wrk)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release -p arbiter --bin arbiter
  BIN="${CARGO_TARGET_DIR:-target}/release/arbiter"
fi
SERVE=("$BIN" serve)
export ARBITER_ADMIN_TOKEN=bench-admin-token-0123456789
WORK=$(mktemp -d /tmp/arbiter-bench.XXXXXX)
trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for run in $(seq 1 "$RUNS"); do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  rm -f "$WORK"/bench.db*
  "${SERVE[@]}" --db "sqlite:$WORK/bench.db" --addr "127.0.0.1:$PORT" --rate-limit 1000000 >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "run $run: RSS at start: $(awk '/VmRSS/ {print $2, $3}' "/proc/$SERVER/status")"
  SETUP=$(JOIN_THREADS=${JOIN_THREADS:-32} python3 bench/server_load_setup.py "http://127.0.0.1:$PORT" "$ARBITER_ADMIN_TOKEN" "$RATERS" "$ITEMS" "$WORK/work.txt")
  PROJECT=$(echo "$SETUP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["project"])')
  echo "run $run: $SETUP"
  echo "run $run: peak RSS through the join storm: $(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER/status")"
  # Reset the peak so the next reading is the submission load's own.
  echo 5 >"/proc/$SERVER/clear_refs" 2>/dev/null || echo "run $run: (could not reset VmHWM; the next peak includes set-up)"
  echo "run $run: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s bench/submit.lua \
    "http://127.0.0.1:$PORT" -- "$WORK/work.txt" "$THREADS" | tee "$WORK/wrk.txt"
  echo "run $run: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "run $run: peak RSS under the submission load: $(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER/status")"
  ACKED=$(sed -n 's/^acknowledged: //p' "$WORK/wrk.txt")
  STORED=$(curl -fsS -H "authorization: Bearer $ARBITER_ADMIN_TOKEN" \
    "http://127.0.0.1:$PORT/api/projects/$PROJECT/export?format=jsonl" | wc -l)
  # wrk stops counting at the deadline while up to CONNECTIONS submissions are still in
  # flight; the server may store those, so stored is acknowledged plus at most that many.
  echo "run $run: acknowledged $ACKED, stored $STORED (in flight at the deadline: $((STORED - ACKED)))"
  if [ "$STORED" -lt "$ACKED" ] || [ "$STORED" -gt $((ACKED + CONNECTIONS)) ]; then
    echo "run $run: MISMATCH between acknowledged and stored submissions" >&2
    exit 1
  fi
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
done
