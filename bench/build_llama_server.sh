#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the llama.cpp sources vendored in the
# llama-cpp-python sdist, so that the benchmark compares Ember with the very
# same llama.cpp revision that Ember links against.
#
# Everything goes into a cache folder outside the repository:
#   ${EMBER_BENCH_CACHE:-$HOME/.cache/ember-bench}
#
# Idempotent: if the binary already exists it is reused and nothing is done.
# Prints the path of the binary on its last line of stdout.
#
# Environment:
#   EMBER_BENCH_CACHE     cache folder (default ~/.cache/ember-bench)
#   LLAMA_CPP_PY_VERSION  sdist version (default 0.3.36, the one Ember pins)
#   PIP                   pip command (default: python -m pip of the current python)
#   JOBS                  parallel build jobs (default 2)
set -euo pipefail

VERSION="${LLAMA_CPP_PY_VERSION:-0.3.36}"
CACHE="${EMBER_BENCH_CACHE:-$HOME/.cache/ember-bench}"
JOBS="${JOBS:-2}"
PIP="${PIP:-python3 -m pip}"

SRC_ROOT="$CACHE/src"
SDIST_DIR="$CACHE/sdist"
BUILD_DIR="$CACHE/build-llama-server-$VERSION"
BIN="$CACHE/bin/llama-server-$VERSION"

if [[ -x "$BIN" ]]; then
    echo "llama-server already built: $BIN" >&2
    echo "$BIN"
    exit 0
fi

mkdir -p "$SDIST_DIR" "$SRC_ROOT" "$CACHE/bin"

# 1. The sdist (reused when already downloaded).
SDIST="$(ls "$SDIST_DIR"/llama_cpp_python-"$VERSION".tar.gz "$SDIST_DIR"/llama-cpp-python-"$VERSION".tar.gz 2>/dev/null | head -n1 || true)"
if [[ -z "$SDIST" ]]; then
    echo "downloading llama-cpp-python==$VERSION sdist into $SDIST_DIR" >&2
    $PIP download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SDIST_DIR" >&2
    SDIST="$(ls "$SDIST_DIR"/llama_cpp_python-"$VERSION".tar.gz "$SDIST_DIR"/llama-cpp-python-"$VERSION".tar.gz 2>/dev/null | head -n1 || true)"
fi
if [[ -z "$SDIST" ]]; then
    echo "error: sdist for llama-cpp-python==$VERSION not found in $SDIST_DIR" >&2
    exit 1
fi

# 2. Unpack (once).
SRC="$SRC_ROOT/$(basename "$SDIST" .tar.gz)"
if [[ ! -f "$SRC/vendor/llama.cpp/CMakeLists.txt" ]]; then
    echo "unpacking $SDIST" >&2
    tar -xzf "$SDIST" -C "$SRC_ROOT"
fi
LLAMA_SRC="$SRC/vendor/llama.cpp"
if [[ ! -f "$LLAMA_SRC/CMakeLists.txt" ]]; then
    echo "error: $LLAMA_SRC/CMakeLists.txt missing (unexpected sdist layout)" >&2
    exit 1
fi

# 3. Configure and build only the llama-server target.
GEN=()
if command -v ninja >/dev/null 2>&1; then
    GEN=(-G Ninja)
fi
echo "configuring $LLAMA_SRC -> $BUILD_DIR" >&2
cmake -S "$LLAMA_SRC" -B "$BUILD_DIR" "${GEN[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF >&2

echo "building llama-server with -j$JOBS (takes several minutes)" >&2
start=$(date +%s)
cmake --build "$BUILD_DIR" --config Release --target llama-server -j "$JOBS" >&2
echo "build took $(( $(date +%s) - start )) s" >&2

BUILT="$(find "$BUILD_DIR" -type f -name llama-server -perm -u+x | head -n1)"
if [[ -z "$BUILT" ]]; then
    echo "error: llama-server binary not found under $BUILD_DIR" >&2
    exit 1
fi
cp "$BUILT" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
