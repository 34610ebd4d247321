#!/usr/bin/env bash
# Build and run the whole test suite. With --asan, also under ASan+UBSan, in
# a portable build without AVX-512 (the GEMM convolution path), and the
# libFuzzer fuzzers of every reader for 15 s each.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh build
ctest --test-dir build --output-on-failure
if [[ "${1:-}" == "--asan" ]]; then
  tools/build.sh build-asan -DDFRUN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDFRUN_NATIVE=ON
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure
  tools/build.sh build-portable -DDFRUN_NATIVE=OFF -DDFRUN_MPI=OFF # also: the build without MPI
  ctest --test-dir build-portable --output-on-failure
  tools/fuzz.sh 15 # every reader under libFuzzer for a bounded time (ASan+UBSan)
fi
