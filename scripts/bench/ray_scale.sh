#!/usr/bin/env bash
# Ray scale-out benchmark (not a timed test; run by hand): wall time of
# `arbiter_safety.ray.grade_parquet` on N samples (default 20,000) with 1 and 2 grader actors
# on a local cluster (a head and two workers on 127.0.0.1, one CPU each), and the same
# samples graded in one process without Ray. Prints the load average around each run: on a
# shared machine, figures taken under load understate both.
#
# Each actor's grader uses every core its process may run on, so on a 2-core machine two
# actors share the same two cores: the ratio shows Ray's overhead, not a speed-up. On a real
# cluster each actor gets a node (or `num_cpus` cores) of its own.
#
# Usage: scripts/bench/ray_scale.sh [N]. Uses the venv of scripts/test-ray.sh
# (ARBITER_PY_VENV, default ${ARBITER_CACHE:-~/.cache/arbiter}/py-venv) with arbiter-safety
# installed (a release build: `pip install ./crates/arbiter-py`) and requirements-ray.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${ARBITER_PY_VENV:-${ARBITER_CACHE:-$HOME/.cache/arbiter}/py-venv}
"$VENV/bin/python" -c "import arbiter_safety, ray" || {
    echo "ray_scale: $VENV needs arbiter_safety and ray (scripts/test-python.sh, then scripts/test-ray.sh)" >&2
    exit 1
}
# shellcheck source=scripts/ray-cluster.sh
source "$ROOT/scripts/ray-cluster.sh"
start_ray_cluster "$VENV" 200
echo "ray_scale: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$VENV/bin/python" "$ROOT/scripts/bench/ray_scale.py" "${1:-20000}"
