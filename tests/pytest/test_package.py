"""Scenario 1: the venv's commands, `import tatzelwurm`, and tasks running in the venv's own
python (a package only the venv has, `sys.executable`, a multiprocessing pool)."""

from __future__ import annotations

import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import tatzelwurm as tw

from conftest import BIN, Cluster, clean_env, command


@pytest.mark.parametrize("name", ["tatzelwurm", "workwurm", "actionwurm"])
def test_commands_answer_help(name: str) -> None:
    """Each of the venv's three commands runs the Rust program: --help exits 0 and says so."""
    done = subprocess.run(
        [command(name), "--help"], capture_output=True, text=True, timeout=30, env=clean_env()
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout or "usage" in done.stdout.lower()


def test_bad_flag_is_one_sentence() -> None:
    """A flag the command does not know is refused in one sentence with exit 2, no traceback."""
    done = subprocess.run(
        [command("actionwurm"), "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_import_and_typed() -> None:
    """The package imports from the venv and ships py.typed."""
    assert Path(tw.__file__).parent.joinpath("py.typed").exists()
    assert tw.Client and tw.AsyncClient and tw.task


@pytest.fixture
def venv_only_module():
    """A module that exists only in this venv's site-packages."""
    site = Path(sysconfig.get_paths()["purelib"])
    path = site / "twvenvonly.py"
    path.write_text("VALUE = 'only in the venv'\n")
    try:
        yield path
    finally:
        path.unlink()


def test_tasks_run_in_the_venv(client: tw.Client, venv_only_module: Path) -> None:
    """A task imports a package only the venv has, sees the venv's python as sys.executable,
    and can run a multiprocessing pool (fork and spawn)."""
    assert client.submit("pt_tasks:venv_only").result(timeout=30) == "only in the venv"
    env = client.submit("pt_tasks:environment").result(timeout=30)
    assert Path(env["executable"]).parent == BIN, env
    assert env["prefix"] == sys.prefix
    expected = sum(n * n for n in range(20))
    assert client.submit("pt_tasks:pool_squares", 20).result(timeout=60) == expected
    assert client.submit("pt_tasks:pool_squares", 20, "spawn").result(timeout=60) == expected


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_coordinator_command_stops_cleanly_on_signal(tmp_path: Path, sig: int) -> None:
    """ctrl-c or SIGTERM stops the venv's `tatzelwurm` as it stops the binary: exit 0, no
    Python traceback or KeyboardInterrupt."""
    c = Cluster(tmp_path)
    try:
        c.start_coordinator()
        assert c.coordinator is not None
        # The coordinator sets up its handlers just after it prints the address.
        time.sleep(0.3)
        c.coordinator.signal(sig)
        code = c.coordinator.proc.wait(15)
        log = c.coordinator.log_path.read_text(errors="replace")
        assert code == 0, log
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    finally:
        c.stop()


def test_worker_command_drains_on_sigint(tmp_path: Path) -> None:
    """ctrl-c stops the venv's `workwurm` cleanly too, with no Python traceback."""
    c = Cluster(tmp_path)
    try:
        c.start_coordinator()
        worker = c.start_worker(1)
        with tw.Client(c.address) as client:
            c.wait_for_workers(client, 1)
        worker.signal(signal.SIGINT)
        code = worker.proc.wait(15)
        log = worker.log_path.read_text(errors="replace")
        assert code == 0, log
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    finally:
        c.stop()
