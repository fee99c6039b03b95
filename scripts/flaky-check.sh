#!/usr/bin/env bash
# Runs tests N times in a row while every core is kept busy by a CPU burner, and prints
# `N passed, M failed` at the end. A test that passes on an idle machine but not here depends
# on timing: a bug in the test or in the code.
#
#   scripts/flaky-check.sh                         # 10 runs of the whole `cargo test`
#   scripts/flaky-check.sh 20                      # 20 runs
#   scripts/flaky-check.sh 3 --test it             # the integration program only
#   scripts/flaky-check.sh 10 --test it ws::       # a subset: the arguments after N go to
#                                                  # `cargo test` (here: the ws module)
#   BURNERS=0 scripts/flaky-check.sh               # no load, for comparison
#
# The burners are plain busy loops at normal priority, one per core (or BURNERS), each bounded
# by `timeout` so that they stop by themselves even if this script is killed; they are also
# stopped when the script exits. Logs of failed runs are kept under target/flaky-check/.
# CI runs `scripts/flaky-check.sh 1 --test it` after the ordinary `cargo test`.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${1:-10}
shift $(( $# > 0 ? 1 : 0 ))
args=("$@")
burners=${BURNERS:-$(nproc)}
# Long enough for the runs, bounded all the same: 15 minutes per run at most.
burn_secs=$(( runs * 900 ))
logs=target/flaky-check
mkdir -p "$logs"

echo "building the tests first (not timed, not under load)"
cargo test --no-run --quiet "${args[@]}" || { echo "the tests do not build"; exit 2; }

pids=()
stop_burners() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done; }
trap stop_burners EXIT
for _ in $(seq 1 "$burners"); do
  timeout "$burn_secs" sh -c 'while :; do :; done' &
  pids+=($!)
done
echo "$burners CPU burners running (bounded at ${burn_secs}s); $runs runs of cargo test ${args[*]}"

passed=0
failed=0
for run in $(seq 1 "$runs"); do
  start=$(date +%s)
  log="$logs/run-$run.log"
  if cargo test "${args[@]}" >"$log" 2>&1; then
    passed=$(( passed + 1 ))
    verdict=passed
    grep -E '^test result:' "$log" | sed 's/^/    /'
    rm -f "$log"
  else
    failed=$(( failed + 1 ))
    verdict="FAILED (log: $log)"
    grep -E '^test .* FAILED$|panicked at' "$log" | head -n 10 | sed 's/^/    /'
  fi
  echo "run $run/$runs: $verdict in $(( $(date +%s) - start ))s, load $(cut -d' ' -f1-3 /proc/loadavg)"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
