#!/usr/bin/env bash
# Builds llama-cpp-python once, portably, into a wheel folder whose name carries the version and the
# build flags, and prints that folder. pip's own wheel cache keys a built wheel by the source archive,
# not by CMAKE_ARGS, so a natively built (crashing) wheel there would be reinstalled silently; a
# folder named after the flags cannot be confused with it. `make setup` installs from this folder.
#
# Why portable: llama.cpp's default build uses -march=native; on Xeons with AVX-512/AMX the
# resulting libggml-cpu.so dies with a general-protection fault on the first generation.
# GGML_NATIVE=OFF builds for AVX2/FMA/F16C, which every x86-64 machine of this kind runs.
set -euo pipefail
PY=${1:?usage: build_engine.sh PYTHON [--rebuild]}
VERSION=$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' "$(dirname "$0")/../constraints.txt")
FLAGS="-DGGML_NATIVE=OFF"
SLUG=$(printf '%s' "$FLAGS" | tr -c 'A-Za-z0-9\n' '_' | tr -s '_')
PYTAG=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
DIR="${TOOLALPACA_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/toolalpaca/wheels}/llama-cpp-python-${VERSION}-${PYTAG}${SLUG}"
[ "${2:-}" = --rebuild ] && rm -rf "$DIR"
if ! ls "$DIR"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION with $FLAGS (once, about 5 minutes on 2 cores) -> $DIR" >&2
  rm -rf "$DIR.tmp" && mkdir -p "$DIR.tmp"
  CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PY" -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$DIR.tmp" "llama-cpp-python==$VERSION" >&2
  rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"   # an interrupted build leaves no half folder behind
fi
echo "$DIR"
