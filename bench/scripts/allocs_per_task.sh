#!/bin/bash
# Heap allocations per task of the coordinator and of the two workers in a W1 run by the command
# line: what most of the coordinator's per-task CPU beyond the store went to (issue 10).
#
#   bench/scripts/allocs_per_task.sh [BINDIR] [TASKS]
#
# Starts a coordinator and 2 workers x 1 slot from BINDIR (default target/release) on a free
# loopback port and a temp dir, counts libc's malloc, calloc and realloc calls of each (perf
# uprobes, `perf probe -x LIBC malloc` and so on, set up here if missing; needs root or
# perf_event_paranoid <= 1) while TASKS noops (default 10,000) run by `task add --args-file
# --play` and `task wait -a`, and prints them per task. Counting slows the processes; the
# rate is not a figure, the counts are. For where they come from, record the same probes with
# call graphs: `perf record -e probe_libc:malloc --call-graph dwarf -p PID`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-$ROOT/target/release}
N=${2:-10000}
LIBC=$(ldd "$B/tatzelwurm" | awk '/libc.so/ {print $3}')
for fn in malloc calloc realloc; do
  perf probe -l 2>/dev/null | grep -q "probe_libc:$fn " || perf probe -q -x "$LIBC" "$fn" > /dev/null
done
W=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
"$B/tatzelwurm" --bind "$ADDR" --db "$W/db" > "$W/coordinator.log" 2>&1 &
CP=$!; PIDS+=($CP)
for _ in $(seq 100); do "$B/actionwurm" --coordinator "$ADDR" worker list > /dev/null 2>&1 && break; sleep 0.05; done
"$B/workwurm" --coordinator "$ADDR" --slots 1 --name a > "$W/a.log" 2>&1 &
WA=$!; PIDS+=($WA)
"$B/workwurm" --coordinator "$ADDR" --slots 1 --name b > "$W/b.log" 2>&1 &
WB=$!; PIDS+=($WB)
for _ in $(seq 200); do
  [ "$("$B/actionwurm" --coordinator "$ADDR" worker list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] && break
  sleep 0.05
done
python3 -c "import sys
for i in range($N): print('[%d]' % i)" > "$W/args"
EVENTS=probe_libc:malloc,probe_libc:calloc,probe_libc:realloc
perf stat -e "$EVENTS" -p "$CP" -o "$W/coordinator.stat" & S1=$!
perf stat -e "$EVENTS" -p "$WA,$WB" -o "$W/workers.stat" & S2=$!
sleep 0.5
"$B/actionwurm" --coordinator "$ADDR" task add "$ROOT/examples/tasks.py:noop" --args-file "$W/args" --play > /dev/null
"$B/actionwurm" --coordinator "$ADDR" task wait -a > /dev/null
kill -INT $S1 $S2; wait $S1 $S2 || true
for who in coordinator workers; do
  awk -v n="$N" -v who="$who" '/probe_libc/ {gsub(",", "", $1); sub("probe_libc:", "", $2); line = line sprintf(" %s %.1f", $2, $1 / n)}
    END {print who ":" line " per task"}' "$W/$who.stat"
done
