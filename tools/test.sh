#!/usr/bin/env bash
# Build and run the whole test suite; with --asan also under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh build
ctest --test-dir build --output-on-failure
if [[ "${1:-}" == "--asan" ]]; then
  tools/build.sh build-asan -DDFRUN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDFRUN_NATIVE=ON
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure
fi
