"""W1 through the Python client: `noop(x)` tasks end to end, and the `Pool(2)` baseline.

Run by the `w1` benchmark (`cargo run --release -p tatzelwurm-bench --bin w1`), which starts a
fresh coordinator and workers of the release build for each measurement and runs this script
once per mode against it, with the package assembled from `python/tatzelwurm` and the release
build's extension on PYTHONPATH:

    python3 w1_client.py --coordinator ADDR --function FUNC --mode submit_many [--tasks 10000]
    python3 w1_client.py --coordinator ADDR --function FUNC --mode submit
    python3 w1_client.py --mode pool [--processes 2]

`submit_many` submits every task in one call, `submit` makes one call per task from one thread;
both then take every result through `as_completed` and check it. The clock runs from the first
submit to the last result; the submit calls alone are timed too. `pool` is the baseline the
issue compares against: `multiprocessing.Pool(2)` with one `apply_async(noop)` per task (no
queue, nothing durable), its processes started before the clock starts.

Without `--coordinator` it starts its own coordinator and two workers of 1 slot from the
commands beside the running python (a venv where `pip install .` was run) and runs both client
modes and the baseline, as before:

    v/bin/python bench/python/w1_client.py [--tasks 10000]

With `--json` the last line printed is one JSON object with the figures (what `w1` reads).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def client_run(address: str, function: str, n: int, many: bool) -> Dict[str, float]:
    """Submits `n` noops (one `submit_many`, or one `submit` each) and takes every result."""
    import tatzelwurm as tw

    with tw.Client(address) as client:
        started = time.perf_counter()
        if many:
            handles = client.submit_many(function, range(n))
        else:
            submit = client.submit
            handles = [submit(function, x) for x in range(n)]
        submitted = time.perf_counter()
        count = 0
        for _ in tw.as_completed(handles, timeout=600):
            count += 1
        finished = time.perf_counter()
        assert count == n, f"{count} of {n} results"
        wrong = [x for x, h in enumerate(handles) if h.result() != x]
        assert not wrong, f"{len(wrong)} wrong results, such as task of {wrong[0]}"
    return {"submit_seconds": submitted - started, "end_to_end_seconds": finished - started}


def pool_run(n: int, processes: int) -> Dict[str, float]:
    """`multiprocessing.Pool(processes)`, one `apply_async` of `noop` per task."""
    import multiprocessing

    sys.path.insert(0, str(ROOT / "examples"))
    import tasks  # examples/tasks.py, the same noop the workers run

    with multiprocessing.Pool(processes) as pool:
        pool.apply(tasks.noop, (0,))  # the processes are up before the clock starts
        started = time.perf_counter()
        results = [pool.apply_async(tasks.noop, (x,)) for x in range(n)]
        assert [r.get(timeout=600) for r in results] == list(range(n))
        return {"end_to_end_seconds": time.perf_counter() - started}


def show(mode: str, n: int, figures: Dict[str, float]) -> None:
    parts = [f"{mode:<12}"]
    if "submit_seconds" in figures:
        parts.append(f"submit {n / figures['submit_seconds']:>10,.0f} tasks/s")
    parts.append(f"end to end {n / figures['end_to_end_seconds']:>8,.0f} tasks/s")
    print("  " + "   ".join(parts), flush=True)


# -- standalone: a cluster of the venv's own commands -------------------------------------------
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


def standalone(options: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    import tatzelwurm as tw

    root = Path(tempfile.mkdtemp(prefix="tw-w1-client-"))
    procs: List[subprocess.Popen] = []
    figures: Dict[str, Dict[str, float]] = {}
    try:
        coord, address = coordinator(root)
        procs.append(coord)
        for i in range(2):
            worker = [str(BIN / "workwurm"), "--coordinator", address, "--slots", "1"]
            worker += ["--path", str(ROOT / "examples"), "--name", f"w1-{i}"]
            procs.append(start(worker, root / f"worker-{i}.log"))
        with tw.Client(address) as client:
            deadline = time.monotonic() + 30
            while len(client.workers()) < 2:
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not connect within 30 s")
                time.sleep(0.05)
        for mode in ("submit", "submit_many"):
            figures[mode] = client_run(address, "tasks:noop", options.tasks, mode == "submit_many")
            show(mode, options.tasks, figures[mode])
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
    figures["pool"] = pool_run(options.tasks, options.processes)
    show("pool", options.tasks, figures["pool"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--coordinator", help="a running coordinator with its workers")
    parser.add_argument("--function", default="tasks:noop", help="the noop's FUNC")
    parser.add_argument("--mode", choices=("submit", "submit_many", "pool"))
    parser.add_argument("--processes", type=int, default=2, help="processes of the Pool")
    parser.add_argument("--json", action="store_true", help="end with the figures as JSON")
    options = parser.parse_args()
    if options.mode == "pool":
        figures = {"pool": pool_run(options.tasks, options.processes)}
    elif options.mode is not None:
        if options.coordinator is None:
            parser.error("--mode submit and submit_many need --coordinator")
        many = options.mode == "submit_many"
        figures = {options.mode: client_run(options.coordinator, options.function, options.tasks, many)}
    else:
        figures = standalone(options)
    if options.json:
        print(json.dumps(figures))
    else:
        for mode, figure in figures.items():
            if options.mode is not None:
                show(mode, options.tasks, figure)


if __name__ == "__main__":
    main()
