# The W1 cluster the scripts beside this one measure, sourced by them (not run): a coordinator
# and 2 workers x 1 slot from "$B" (the caller sets it, and ROOT) on a free loopback port and a
# temp dir, stopped and removed when the calling script exits.
#
#   . "$ROOT/bench/scripts/cluster.sh"; start_cluster
#
# Sets W (the temp dir: logs, the database, room for the caller's files), ADDR (host:port) and
# CP, WA, WB (the coordinator's and the two workers' pids); start_cluster returns once both
# workers are connected.
W=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

start_cluster() {
  "$B/tatzelwurm" --bind "$ADDR" --db "$W/db" > "$W/coordinator.log" 2>&1 &
  CP=$!; PIDS+=($CP)
  for _ in $(seq 100); do "$B/actionwurm" --coordinator "$ADDR" worker list > /dev/null 2>&1 && break; sleep 0.05; done
  "$B/workwurm" --coordinator "$ADDR" --slots 1 --name a > "$W/a.log" 2>&1 &
  WA=$!; PIDS+=($WA)
  "$B/workwurm" --coordinator "$ADDR" --slots 1 --name b > "$W/b.log" 2>&1 &
  WB=$!; PIDS+=($WB)
  for _ in $(seq 200); do
    [ "$("$B/actionwurm" --coordinator "$ADDR" worker list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] && return 0
    sleep 0.05
  done
  echo "the two workers did not connect to $ADDR; see the logs in $W" >&2
  return 1
}
