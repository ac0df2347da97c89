#!/usr/bin/env bash
# The Ray scale-out check (arbiter_safety.ray): a local Ray cluster on 127.0.0.1 — a head and
# two workers, one CPU each — grades and scores a few hundred samples with Ray Data and
# runs an eval suite as sharded Ray tasks, and crates/arbiter-py/tests_ray checks each result
# equals the single-process CLI's byte for byte. The cluster is stopped on exit, whatever
# happened.
#
# Run after scripts/test-python.sh, which builds the venv and installs arbiter-safety in it; this
# adds the pinned crates/arbiter-py/requirements-ray.txt to that venv (again when the file
# changes). Same variables as test-python.sh (ARBITER_PY_VENV, ARBITER_CACHE, ARBITER_BIN,
# ARBITER_DATA, ARBITER_REQUIRE_*). Memory is kept small: 80 MB object stores, no dashboard.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ARBITER_CACHE:-$HOME/.cache/arbiter}
VENV=${ARBITER_PY_VENV:-$CACHE/py-venv}
REQ=$ROOT/crates/arbiter-py/requirements-ray.txt
start=$SECONDS

if ! "$VENV/bin/python" -c "import arbiter_safety" 2>/dev/null; then
    echo "test-ray: no arbiter_safety in $VENV; run scripts/test-python.sh first" >&2
    exit 1
fi
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ "$(cat "$VENV/.ray-requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "test-ray: installing $REQ into $VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" >"$VENV/.ray-requirements.sha256"
fi
echo "test-ray: ray ready after $((SECONDS - start)) s" >&2

# shellcheck source=scripts/ray-cluster.sh
source "$ROOT/scripts/ray-cluster.sh"
start_ray_cluster "$VENV" 80
echo "test-ray: cluster up (head + 2 workers on $RAY_ADDRESS) after $((SECONDS - start)) s" >&2

cd "$ROOT/crates/arbiter-py/tests_ray"
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider "$@" .
echo "test-ray: done after $((SECONDS - start)) s" >&2
