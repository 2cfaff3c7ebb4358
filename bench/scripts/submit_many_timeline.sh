#!/bin/bash
# When things happen in one W1 run through `submit_many`: the clock starts at the call, and the
# coordinator's own times of each task (created, finished) are read back afterwards.
#
#   TATZELWURM_PACKAGE=DIR bench/scripts/submit_many_timeline.sh [BINDIR] [TASKS]
#
# Starts a coordinator and 2 workers x 1 slot from BINDIR (default target/release) on a free
# loopback port and a temp dir; the client (the package in $TATZELWURM_PACKAGE, a directory
# holding `tatzelwurm/` with its _native.abi3.so) warms up with 20 noops, then submits TASKS
# noops (default 10,000) in one `submit_many` and takes them through `as_completed`. Prints,
# in ms from the call: when `submit_many` returned, the first and last task the coordinator
# created, the last one it finished, and when `as_completed` ended; then how many tasks
# finished in each 10 ms. Times are the coordinator's milliseconds and this host's clock.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-$ROOT/target/release}
N=${2:-10000}
PKG=${TATZELWURM_PACKAGE:?set TATZELWURM_PACKAGE to a directory holding tatzelwurm/}
. "$ROOT/bench/scripts/cluster.sh"
start_cluster
PYTHONPATH=$PKG python3 - "$ADDR" "$N" "$B/actionwurm" "$ROOT/examples/tasks.py:noop" <<'PY'
import collections, json, subprocess, sys, time
import tatzelwurm as tw
address, n, actionwurm, function = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with tw.Client(address) as client:
    for _ in tw.as_completed(client.submit_many(function, range(20)), timeout=60):
        pass
    t0 = time.time()
    handles = client.submit_many(function, range(n))
    returned = time.time()
    for _ in tw.as_completed(handles, timeout=600):
        pass
    done = time.time()
    first_id = handles[0].id
listing = subprocess.run(
    [actionwurm, "--coordinator", address, "task", "list", "--limit", "0", "--json"],
    capture_output=True, text=True, check=True,
).stdout
tasks = [t for t in json.loads(listing) if t["id"] >= first_id]
assert len(tasks) == n, f"{len(tasks)} of {n} tasks listed"
ms = lambda at: int(round((at - t0) * 1000))
created = sorted(ms(t["created_at"]) for t in tasks)
finished = sorted(ms(t["finished_at"]) for t in tasks)
print(f"submit_many returned +{ms(returned)} ms; first created +{created[0]}, last created "
      f"+{created[-1]}; last finished +{finished[-1]}; as_completed done +{ms(done)}")
per = collections.Counter(f // 10 for f in finished)
print("finished per 10 ms: " + " ".join(f"{k * 10}:{per[k]}" for k in sorted(per)))
PY
