"""Fixtures: real coordinators and workers started from the venv's own commands (the ones
beside the python running pytest), on 127.0.0.1 with ports picked by the coordinator, in
temporary directories; every process is killed at teardown and every wait is bounded."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
LISTENING = re.compile(r"listening on (\S+)")


def command(name: str) -> str:
    """The venv's own command `name` (tatzelwurm, workwurm, actionwurm)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run the suite with the python of a venv where "
            "`pip install .` was run"
        )
    return str(path)


def clean_env(**extra: str) -> dict:
    """The environment for a child: no coordinator or token inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TATZELWURM_")}
    env.update(extra)
    return env


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `condition` until it holds; fails the test naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class Process:
    """A started program, its log file, and how to end it."""

    def __init__(self, args: List[str], log: Path, env: dict, stdout_pipe: bool = False) -> None:
        self.args = args
        self.log_path = log
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE if stdout_pipe else self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def read_line_matching(self, pattern: "re.Pattern[str]", timeout: float) -> "re.Match[str]":
        """Reads stdout until a line matches; then drains the rest into the log in a thread."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buffer = b""
        try:
            while time.monotonic() < deadline:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.decode(errors="replace").splitlines():
                    match = pattern.search(line)
                    if match:
                        threading.Thread(target=self._drain, daemon=True).start()
                        return match
        finally:
            sel.close()
        pytest.fail(
            f"{self.args[0]} did not print {pattern.pattern!r} within {timeout} s; "
            f"stdout: {buffer!r}; log: {self.log_path.read_text(errors='replace')[-2000:]}"
        )

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for chunk in iter(lambda: self.proc.stdout.read1(4096), b""):  # type: ignore[union-attr]
            self.log.write(chunk)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL to its whole session (its slots too), and reap it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        self.log.close()


class Cluster:
    """A coordinator and its workers; `address` is where the coordinator listens."""

    def __init__(self, root: Path, token: Optional[str] = None) -> None:
        self.root = root
        self.db = root / "db"
        self.token = token
        self.address = ""
        #: Extra coordinator flags, kept for a restart.
        self.coordinator_args: List[str] = []
        self.coordinator: Optional[Process] = None
        self.workers: List[Process] = []
        self.env = clean_env(**({"TATZELWURM_TOKEN": token} if token else {}))

    def start_coordinator(self, bind: str = "127.0.0.1:0", *extra: str) -> str:
        """Starts the coordinator with `extra` flags (such as `--keep-events 10`), which a
        restart keeps."""
        self.coordinator_args = list(extra)
        self.coordinator = Process(
            [command("tatzelwurm"), "--db", str(self.db), "--bind", bind, *extra],
            self.root / "coordinator.log",
            self.env,
            stdout_pipe=True,
        )
        self.address = self.coordinator.read_line_matching(LISTENING, 20).group(1)
        return self.address

    def kill_coordinator(self) -> None:
        assert self.coordinator is not None
        self.coordinator.kill()

    def restart_coordinator(self) -> None:
        """Starts the coordinator again on the same address, database and flags."""
        self.start_coordinator(self.address, *self.coordinator_args)

    def start_worker(self, slots: int = 1, *extra: str, drain_timeout: float = 0) -> Process:
        """Starts worker `pytest-N` (N counts from 0) with `extra` flags; a drain (SIGTERM,
        `drain_worker`) lets its running tasks finish for up to `drain_timeout` seconds."""
        index = len(self.workers)
        worker = Process(
            [
                command("workwurm"),
                "--coordinator",
                self.address,
                "--slots",
                str(slots),
                "--path",
                str(HERE),
                "--name",
                f"pytest-{index}",
                "--drain-timeout",
                str(drain_timeout),
                *extra,
            ],
            self.root / f"worker-{index}.log",
            self.env,
        )
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, client, count: int, timeout: float = 20) -> None:
        wait_until(lambda: len(client.workers()) >= count, timeout, f"{count} workers")

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(grace=2)
        if self.coordinator is not None:
            self.coordinator.stop(grace=2)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.root.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


@pytest.fixture(autouse=True)
def _no_inherited_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TATZELWURM_COORDINATOR", raising=False)
    monkeypatch.delenv("TATZELWURM_TOKEN", raising=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A coordinator and two workers of one slot each, shared by a test module."""
    import tatzelwurm as tw

    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start_coordinator()
        c.start_worker(1)
        c.start_worker(1)
        with tw.Client(c.address) as probe:
            c.wait_for_workers(probe, 2)
        yield c
    finally:
        c.stop()


@pytest.fixture
def fresh_cluster(tmp_path: Path):
    """A cluster of one test's own, which the test may kill and restart."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def client(cluster: Cluster):
    """A client of the shared cluster, closed after the test."""
    import tatzelwurm as tw

    with tw.Client(cluster.address) as c:
        yield c
