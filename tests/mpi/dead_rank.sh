#!/usr/bin/env bash
# A rank that dies (SIGKILL) in the middle of `mpirun -np 2 dfrun train`:
# the job must stop by itself within 30 s (no hang), with a non-zero exit and
# a message, and the last checkpoint must still load. Also: commands other
# than train refuse to run on several ranks, with a message.
# usage: dead_rank.sh MPIEXEC DFRUN SOURCE_DIR
set -u
mpiexec=$1 dfrun=$2 src=$3
out=$(mktemp -d /tmp/dfrun_dead_rank_XXXXXX)
trap 'rm -rf "$out"' EXIT
[[ ${KEEP:-} ]] && trap - EXIT
fail() { echo "FAIL: $*"; cat "$out/log"; exit 1; }

"$mpiexec" -np 2 --oversubscribe "$dfrun" train "$src/graphs/toy_ring.yaml" --steps 1000000 \
  --out "$out/run" --set train.checkpoint_every=20 >"$out/log" 2>&1 &
job=$!
for _ in $(seq 1 600); do [[ -f $out/run/checkpoint.safetensors ]] && break; sleep 0.1; done
[[ -f $out/run/checkpoint.safetensors ]] || fail "no checkpoint after 60 s"
victim=
for p in $(pgrep -f "train $src/graphs/toy_ring.yaml"); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
done
[[ -n $victim ]] || fail "rank 1 not found"
kill -9 "$victim"
for _ in $(seq 1 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$job" 2>/dev/null; then
  kill -9 "$job"
  fail "the job still runs 30 s after rank 1 died"
fi
wait "$job" && fail "the job exited 0 after a rank died"
grep -qi "signal 9\|killed" "$out/log" || fail "no message about the dead rank"
"$dfrun" sample --run "$out/run" --n 8 --out "$out/s.npy" >>"$out/log" 2>&1 ||
  fail "the last checkpoint does not load"
"$mpiexec" -np 2 --oversubscribe "$dfrun" check "$src/graphs/toy_ring.yaml" >"$out/log" 2>&1 &&
  fail "dfrun check ran on 2 ranks"
grep -q "only 'train' runs across ranks" "$out/log" || fail "no message for check on 2 ranks"
echo "ok: the job stopped after rank 1 died, the last checkpoint loads, check refuses 2 ranks"
