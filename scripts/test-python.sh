#!/usr/bin/env bash
# Build the Python package arbiter-safety (crates/arbiter-py) and run its pytest suite.
#
# 1. A venv outside the repository, ${ARBITER_PY_VENV:-${ARBITER_CACHE:-~/.cache/arbiter}/py-venv},
#    with the pinned crates/arbiter-py/requirements-dev.txt (maturin, pytest, pandas, pyarrow,
#    polars, krippendorff, crowd-kit, ...); made again when that file changes.
# 2. `pip install --no-build-isolation ./crates/arbiter-py`: the documented install, built by the
#    venv's pinned maturin (release profile) into $CARGO_TARGET_DIR (default: target/).
# 3. pytest crates/arbiter-py/tests, with any arguments given to this script.
#
# Shared data: $ARBITER_DATA (default ../shared/data); without it the dataset tests skip, and
# fail under ARBITER_REQUIRE_DATA=1. The CLI comparisons use $ARBITER_BIN or
# $CARGO_TARGET_DIR/debug/arbiter (skip without it; fail under ARBITER_REQUIRE_CLI=1).
# ARBITER_PY_FULL=1 runs every crowd-kit comparison live (about half an hour).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ARBITER_CACHE:-$HOME/.cache/arbiter}
VENV=${ARBITER_PY_VENV:-$CACHE/py-venv}
PYTHON=${PYTHON:-python3}
REQ=$ROOT/crates/arbiter-py/requirements-dev.txt

start=$SECONDS
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "test-python: creating $VENV" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" >"$VENV/.requirements.sha256"
fi
echo "test-python: venv ready after $((SECONDS - start)) s" >&2
# The maturin build backend runs `maturin` from PATH.
export PATH="$VENV/bin:$PATH"

"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation --no-deps \
    --force-reinstall "$ROOT/crates/arbiter-py"
echo "test-python: package built and installed after $((SECONDS - start)) s" >&2

# Run from the tests folder so that `import arbiter_safety` is the installed package.
cd "$ROOT/crates/arbiter-py/tests"
"$VENV/bin/python" -c "import arbiter_safety; print('test-python: import arbiter_safety from', arbiter_safety.__file__)"
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider "$@" .
echo "test-python: done after $((SECONDS - start)) s" >&2
