"""W1 through the Python client: 10,000 `noop(x)` tasks on 2 workers x 1 slot.

One `submit` call per task from one Python thread, then `as_completed`; then the same run with
one `submit_many`. Prints the submit rate (submit calls only) and the end-to-end rate (first
submit to last result). Starts its own coordinator and workers from the commands beside the
python running it (a venv where `pip install .` was run), on 127.0.0.1 with a free port:

    v/bin/python bench/python/w1_client.py [--tasks 10000] [--workers 2] [--slots 1]

Targets (issue 8): submit >= 50,000 tasks/s; end to end as fast as the coordinator allows (the
command line's W1 is 2,400-2,600 tasks/s on the 2-core machine). The same invocation runs the
baseline the peers were measured against: `multiprocessing.Pool(2)` with one `apply_async` per
task (no queue, nothing durable), because this machine is too noisy to compare across runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import tatzelwurm as tw

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def start(args: List[str], log: Path, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TATZELWURM_")}
    return subprocess.Popen(
        args, stderr=open(log, "ab"), stdin=subprocess.DEVNULL, env=env, start_new_session=True, **kw
    )


def coordinator(root: Path) -> "tuple[subprocess.Popen, str]":
    proc = start(
        [str(BIN / "tatzelwurm"), "--db", str(root / "db"), "--bind", "127.0.0.1:0"],
        root / "coordinator.log",
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        found = re.search(r"listening on (\S+)", line)
        if found:
            return proc, found.group(1)
        if not line:
            break
    raise SystemExit(f"the coordinator did not start; see {root / 'coordinator.log'}")


def run(client: tw.Client, n: int, many: bool) -> "tuple[float, float]":
    started = time.perf_counter()
    if many:
        handles = client.submit_many("tasks:noop", range(n))
    else:
        submit = client.submit
        handles = [submit("tasks:noop", x) for x in range(n)]
    submitted = time.perf_counter()
    count = 0
    for handle in tw.as_completed(handles, timeout=600):
        count += 1
    finished = time.perf_counter()
    assert count == n
    assert all(h.result() == x for x, h in enumerate(handles)), "a wrong result"
    return n / (submitted - started), n / (finished - started)


def pool_baseline(n: int, processes: int) -> float:
    """`multiprocessing.Pool(processes)`, one `apply_async` of `noop` per task: tasks/s."""
    import multiprocessing

    sys.path.insert(0, str(ROOT / "examples"))
    import tasks  # examples/tasks.py, the same noop the workers run

    with multiprocessing.Pool(processes) as pool:
        pool.apply(tasks.noop, (0,))  # the processes are up before the clock starts
        started = time.perf_counter()
        results = [pool.apply_async(tasks.noop, (x,)) for x in range(n)]
        assert [r.get(timeout=600) for r in results] == list(range(n))
        return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1)
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tw-w1-client-"))
    procs: List[subprocess.Popen] = []
    try:
        coord, address = coordinator(root)
        procs.append(coord)
        for i in range(options.workers):
            procs.append(
                start(
                    [
                        str(BIN / "workwurm"),
                        "--coordinator",
                        address,
                        "--slots",
                        str(options.slots),
                        "--path",
                        str(ROOT / "examples"),
                        "--name",
                        f"w1-{i}",
                    ],
                    root / f"worker-{i}.log",
                )
            )
        with tw.Client(address) as client:
            deadline = time.monotonic() + 30
            while len(client.workers()) < options.workers:
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not connect within 30 s")
                time.sleep(0.05)
            print(
                f"W1 via the Python client: {options.tasks} noop tasks, "
                f"{options.workers} workers x {options.slots} slot(s)"
            )
            for many in (False, True):
                submit_rate, end_to_end = run(client, options.tasks, many)
                how = "submit_many" if many else "submit   "
                print(
                    f"  {how}: submit {submit_rate:>10,.0f} tasks/s   "
                    f"end to end {end_to_end:>8,.0f} tasks/s"
                )
        processes = options.workers * options.slots
        print(
            f"  baseline, multiprocessing.Pool({processes}), one apply_async per task: "
            f"{pool_baseline(options.tasks, processes):>8,.0f} tasks/s"
        )
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
