#!/usr/bin/env bash
# Configure and build. Usage: tools/build.sh [build-dir] [extra cmake args...]
#   tools/build.sh build-asan -DDFRUN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
