#!/bin/bash
# CPU per task of each process in a W1 run: where the 2 cores go.
#
#   bench/scripts/cpu_per_task.sh [BINDIR] [TASKS] [MODE]
#
# Starts a coordinator and 2 workers x 1 slot from BINDIR (default target/release) on a free
# loopback port and a temp dir, runs TASKS (default 100,000) noops through MODE (cli: `task add
# --args-file --play` then `task wait -a`; submit_many or submit: bench/python/w1_client.py with
# the package in $TATZELWURM_PACKAGE, a directory holding `tatzelwurm/` with its _native.abi3.so),
# and prints the rate and the microseconds of CPU per task of the coordinator, the two workwurm
# processes, their slot processes (each from /proc/PID/task/*/schedstat, in ns) and the client
# (user + system from time(1), its start included). The rate is
# only a hint: a run of 100,000 is long enough for the CPU figures, which are what this is for.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-$ROOT/target/release}
N=${2:-100000}
MODE=${3:-cli}
. "$ROOT/bench/scripts/cluster.sh"
start_cluster
# CPU time of a process in ns, its threads' together (schedstat counts ns; /proc/PID/stat's ticks
# are 10 ms, too coarse for a run of 10,000 tasks).
ticks() { local t=0 ns; for f in /proc/"$1"/task/*/schedstat; do { read -r ns _ < "$f"; } 2>/dev/null && t=$((t + ns)); done; echo $t; }
SLOTS="$(pgrep -P $WA) $(pgrep -P $WB)"
sum_slots() { local t=0; for p in $SLOTS; do t=$((t + $(ticks "$p"))); done; echo $t; }
C0=$(ticks $CP); A0=$(( $(ticks $WA) + $(ticks $WB) )); S0=$(sum_slots)
T0=$(date +%s.%N)
if [ "$MODE" = cli ]; then
  python3 -c "import sys
for i in range($N): print('[%d]' % i)" > "$W/args"
  /usr/bin/time -f "%U %S" -o "$W/client1" "$B/actionwurm" --coordinator "$ADDR" task add "$ROOT/examples/tasks.py:noop" --args-file "$W/args" --play > /dev/null
  /usr/bin/time -f "%U %S" -o "$W/client2" "$B/actionwurm" --coordinator "$ADDR" task wait -a > /dev/null
else
  PYTHONPATH=${TATZELWURM_PACKAGE:?set TATZELWURM_PACKAGE to a directory holding tatzelwurm/} \
    /usr/bin/time -f "%U %S" -o "$W/client1" python3 "$ROOT/bench/python/w1_client.py" \
    --coordinator "$ADDR" --function "$ROOT/examples/tasks.py:noop" --mode "$MODE" --tasks "$N" --json > /dev/null
  echo "0 0" > "$W/client2"
fi
T1=$(date +%s.%N)
C1=$(ticks $CP); A1=$(( $(ticks $WA) + $(ticks $WB) )); S1=$(sum_slots)
python3 - "$N" "$T0" "$T1" "$((C1-C0))" "$((A1-A0))" "$((S1-S0))" "$W/client1" "$W/client2" "$MODE" <<'PY'
import sys
n, t0, t1 = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
coord, workers, slots = (int(x) / 1e3 / n for x in sys.argv[4:7])
client = sum(sum(map(float, open(f).read().split())) for f in sys.argv[7:9]) * 1e6 / n
total = coord + workers + slots + client
print(f"{sys.argv[9]}: {n} noops in {t1 - t0:.2f} s ({n / (t1 - t0):,.0f} tasks/s, client start included); "
      f"µs of CPU per task: coordinator {coord:.1f}, workwurm {workers:.1f}, slots {slots:.1f}, "
      f"client {client:.1f}, total {total:.1f} (100,000 tasks/s on 2 cores allows 20)")
PY
