"""The dashboard of `tatzelwurm --http ADDR` in a real headless Chromium (Debian's `chromium`),
driven by the `playwright` package: the page loads and goes live, shows a task an actioner
adds, follows it to `completed` without a reload, shows a failure with its traceback and a
task's detail, and asks for the token when the coordinator has one. A screenshot of the page
is saved in the test's tmp dir and its path printed.

`.ci/run` installs chromium (apt) and playwright (pip, into the test venv) when they are
missing; the browser is never downloaded by playwright."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Iterator, Optional, Tuple

import pytest

from conftest import Process, clean_env, command

CHROMIUM = "/usr/bin/chromium"
# The flags this machine's Chromium needs as root in a closed network (see the machine notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dash-s3cret"
TIMEOUT_MS = 30_000

# The tasks of these tests, written to the test's tmp dir so that the worker imports them
# without the package: one that waits for a file (so the test sees it running), one that fails.
TASKS = '''
import os, time

def gated(path):
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate " + path + " was never opened")
        time.sleep(0.02)
    print("the gate opened")
    return "opened"

def broken(message):
    raise ValueError(message)
'''

# Skipped only when pytest is run by hand on a machine without Chromium; under .ci/run (which
# installs it and sets TATZELWURM_NEED_CHROMIUM) a missing browser is a failure, so the page is
# never left untested quietly.
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not os.environ.get("TATZELWURM_NEED_CHROMIUM"),
    reason=f"{CHROMIUM} is not installed (apt-get install -y chromium; .ci/run installs it)",
)


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        pytest.fail(
            "the `playwright` package is missing: pip install playwright into this venv "
            "(.ci/run does); the browser itself is Debian's chromium, never downloaded"
        )
    return start()


class HttpCluster:
    """A coordinator with `--http 127.0.0.1:0` and one worker, in a tmp dir."""

    def __init__(self, root: Path, token: Optional[str] = None) -> None:
        self.root = root
        self.env = clean_env(**({"TATZELWURM_TOKEN": token} if token else {}))
        (root / "dash_tasks.py").write_text(TASKS)
        self.coordinator = Process(
            [command("tatzelwurm"), "--db", str(root / "db"), "--bind", "127.0.0.1:0",
             "--http", "127.0.0.1:0"],
            root / "coordinator.log",
            self.env,
            stdout_pipe=True,
        )
        self.address, http = self._addresses(timeout=20)
        self.base = f"http://{http}"
        self.worker = Process(
            [command("workwurm"), "--coordinator", self.address, "--slots", "1",
             "--path", str(root), "--name", "dash-w", "--drain-timeout", "0"],
            root / "worker.log",
            self.env,
        )

    def _addresses(self, timeout: float) -> Tuple[str, str]:
        """The protocol and HTTP addresses the coordinator prints on stdout."""
        lines: "queue.Queue[str]" = queue.Queue()
        stdout = self.coordinator.proc.stdout
        assert stdout is not None

        def read() -> None:
            for raw in iter(stdout.readline, b""):
                lines.put(raw.decode(errors="replace"))
                try:
                    self.coordinator.log.write(raw)
                except ValueError:  # the log was closed at teardown
                    return

        threading.Thread(target=read, daemon=True).start()
        found = {}
        try:
            while len(found) < 2:
                line = lines.get(timeout=timeout)
                match = re.match(r"(http )?listening on (\S+)", line)
                if match:
                    found["http" if match.group(1) else "tw"] = match.group(2)
        except queue.Empty:
            pytest.fail(f"the coordinator did not print both addresses within {timeout} s: "
                        f"{found}; log: {self.logs()}")
        return found["tw"], found["http"]

    def actionwurm(self, *args: str) -> str:
        """Runs the CLI against this coordinator and returns its stdout."""
        done = subprocess.run(
            [command("actionwurm"), "--coordinator", self.address, *args],
            env=self.env, capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 0, f"actionwurm {args}: {done.stderr}"
        return done.stdout

    def add(self, function: str, args: str) -> int:
        """Adds one played task with the CLI and returns its id."""
        out = self.actionwurm("task", "add", f"dash_tasks:{function}", "--args", args, "--play")
        return int(out.strip().splitlines()[0])

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.root.glob("*.log"))
        )

    def stop(self) -> None:
        self.worker.stop(grace=2)
        self.coordinator.stop(grace=2)


@pytest.fixture
def http_cluster(tmp_path: Path) -> Iterator[HttpCluster]:
    c = HttpCluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_follows_a_task_live(
    http_cluster: HttpCluster, browser, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The page goes live, shows the worker, shows a task an actioner adds as it runs and
    then completed without a reload, counts it in its queue, shows a failed task with its
    traceback, and shows a task's detail with its result and output."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(http_cluster.base + "/")
    page.wait_for_selector('#live[data-state="live"]', timeout=TIMEOUT_MS)
    page.wait_for_selector('#workers tr[data-worker="dash-w"]', timeout=TIMEOUT_MS)

    gate = tmp_path / "gate"
    task = http_cluster.add("gated", f'["{gate}"]')
    row = f'#activity tr[data-task="{task}"]'
    page.wait_for_selector(f'{row}[data-state="running"]', timeout=TIMEOUT_MS)
    gate.write_text("open")
    page.wait_for_selector(f'{row}[data-state="completed"]', timeout=TIMEOUT_MS)
    page.wait_for_function(
        """() => {
             const cell = document.querySelector('#queues tr[data-queue="default"] td[data-state="completed"]');
             return cell && cell.textContent === "1";
           }""",
        timeout=TIMEOUT_MS,
    )

    failed = http_cluster.add("broken", '["no good input"]')
    failure = f'#failures li[data-task="{failed}"]'
    page.wait_for_selector(f"{failure} pre", timeout=TIMEOUT_MS)
    text = page.inner_text(failure)
    assert "ValueError" in text and "no good input" in text, text
    assert "Traceback" in page.inner_text(f"{failure} pre")

    page.click(f'{row} a[data-task="{task}"]')
    page.wait_for_selector("#detail-state.state-completed", timeout=TIMEOUT_MS)
    assert '"opened"' in page.inner_text("#detail")
    assert "the gate opened" in page.inner_text("#detail-stdout")

    page.wait_for_function(
        """() => {
             const cell = document.querySelector('#queues tr[data-queue="default"] td[data-state="failed"]');
             return cell && cell.textContent === "1";
           }""",
        timeout=TIMEOUT_MS,
    )
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    with capsys.disabled():  # shown in a quiet CI run too
        print(f"\ndashboard screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    assert errors == [], f"the page's script failed: {errors}"


def test_dashboard_asks_for_the_token(tmp_path: Path, browser) -> None:
    """With a token set, the page asks for it, and once given goes live and shows the
    coordinator's worker."""
    c = HttpCluster(tmp_path, token=TOKEN)
    try:
        page = browser.new_page()
        page.goto(c.base + "/")
        page.wait_for_selector("#token-dialog[open]", timeout=TIMEOUT_MS)
        assert "requires a token" in page.inner_text("#token-message")
        page.fill("#token", TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_selector('#live[data-state="live"]', timeout=TIMEOUT_MS)
        page.wait_for_selector('#workers tr[data-worker="dash-w"]', timeout=TIMEOUT_MS)
    finally:
        c.stop()
