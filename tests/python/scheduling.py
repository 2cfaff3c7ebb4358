"""Tasks for the end-to-end tests of scheduling and control (issue 11).

They leave traces a test can read without trusting the coordinator's own clock: the order in
which tasks ran (`append_label`), the moments a task started and ended (`span`), and markers
that say an `async def` task is running, so that the tests of priorities, concurrency limits
and async slots check what really happened in the slots.
"""

import asyncio
import os
import time


def append_label(path, label):
    """Append `label` and a newline to `path` and return it: the file lists the run order.

    One short `write` on a file opened for appending lands whole even when two slots write at
    once, so the lines never interleave.
    """
    with open(path, "a") as f:
        f.write(f"{label}\n")
    return label


def span(path, label, seconds):
    """Sleep `seconds` and append "LABEL START END" (wall-clock seconds) to `path`.

    The spans of the tasks of one queue show how many of them ran at the same time.
    """
    start = time.time()
    time.sleep(seconds)
    end = time.time()
    with open(path, "a") as f:
        f.write(f"{label} {start!r} {end!r}\n")
    return label


def _write_atomically(path, text):
    """Write `text` to `path` so that a reader never sees a half-written file."""
    tmp = f"{path}.{os.getpid()}.{id(text)}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


async def async_gate(marker, gate, timeout):
    """Write this slot's pid to `marker`, then wait (asynchronously) for the file `gate`.

    While it waits its slot's event loop is free, so a slot with `--async-concurrency N` runs
    N of these at once: the markers tell the test how many have started, and in which process.
    Raises `TimeoutError` when the gate has not appeared after `timeout` seconds.
    """
    _write_atomically(marker, str(os.getpid()))
    deadline = time.monotonic() + timeout
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} did not appear within {timeout} s")
        await asyncio.sleep(0.02)
    return os.getpid()


async def async_sleep(seconds):
    """Await `asyncio.sleep(seconds)` and return `seconds`: ten of them on one slot with
    `--async-concurrency 10` take about `seconds`, not ten times as long."""
    await asyncio.sleep(seconds)
    return seconds
