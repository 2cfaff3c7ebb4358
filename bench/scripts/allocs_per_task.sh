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
. "$ROOT/bench/scripts/cluster.sh"
start_cluster
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
