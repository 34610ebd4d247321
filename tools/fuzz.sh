#!/usr/bin/env bash
# Fuzz every reader with libFuzzer (clang, ASan+UBSan) for a bounded time.
# Usage: tools/fuzz.sh [seconds per target, default 20] [targets...]
# New interesting inputs go to build-fuzz/corpus/<target> (seeded from
# tests/fuzz/corpus); a crash is written to tests/fuzz/crashes/<target>/, which
# every test build replays, and the script fails. Prints executions and
# coverage (libFuzzer's cov/ft) per target.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(yaml safetensors npy idx args)
command -v clang >/dev/null || { echo "fuzz: clang is needed (tools/setup.sh installs it)"; exit 1; }
CC=clang tools/build.sh build-fuzz -DDFRUN_FUZZ=ON -DDFRUN_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDFRUN_NATIVE=ON >/dev/null
status=0
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t crashes=tests/fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log=build-fuzz/fuzz_$t.log
  quiet=()
  [[ $t == args ]] && quiet=(-close_fd_mask=3) # the parser prints usage text
  saved=("$crashes"/*)
  if [[ -e ${saved[0]} ]] && ! ASAN_OPTIONS=detect_leaks=1 build-fuzz/fuzz_"$t" \
      ${quiet[@]+"${quiet[@]}"} "${saved[@]}" >"$log" 2>&1; then # the crashes found so far
    status=1
    echo "fuzz $t: a saved crash fails again (see $log)"
    continue
  fi
  if ASAN_OPTIONS=detect_leaks=1 DFRUN_THREADS=1 build-fuzz/fuzz_"$t" ${quiet[@]+"${quiet[@]}"} -max_total_time="$secs" \
      -timeout=10 -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$crashes/" "$corpus" \
      >"$log" 2>&1; then
    :
  else
    status=1
    echo "fuzz $t: FAILED (see $log; the input is in $crashes/)"
  fi
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  echo "fuzz $t: ${last:-no progress line}"
done
exit $status
