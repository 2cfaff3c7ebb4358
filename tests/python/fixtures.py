"""Tasks that only the end-to-end tests need: they let a test see and steer a slot process.

`examples/tasks.py` holds the tasks a user would run; these ones tell the test their process id,
wait for a signal file, or start a child process, so that a test can kill exactly the right
process or hold a slot busy for exactly as long as it needs.
"""

import os
import subprocess
import sys
import time


def _write_atomically(path, text):
    """Write `text` to `path` so that a reader never sees a half-written file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def pid_then_sleep(pid_file, seconds):
    """Write this slot process's pid to `pid_file`, then sleep: a test kills the slot meanwhile."""
    _write_atomically(pid_file, str(os.getpid()))
    time.sleep(seconds)
    return seconds


def sleep_with_child(pid_file, seconds):
    """Start a child process that sleeps, write its pid to `pid_file` and wait for it.

    A kill of this task must end the child too, which the test checks by that pid.
    """
    child = subprocess.Popen(["sleep", str(seconds)])
    _write_atomically(pid_file, str(child.pid))
    child.wait()
    return seconds


def wait_for_file(path, timeout):
    """Return once `path` exists, polling; raise `TimeoutError` after `timeout` seconds.

    Holds a slot busy until the test says so, without guessing how long that must be.
    """
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)
    return path


def returns_set():
    """Return a set, which is not a JSON value: the task must fail with a clear message."""
    return {1, 2, 3}


def executable_with_venv_module():
    """Import a module that exists only in a test's virtualenv; say which Python ran the task."""
    import tzw_only_in_venv

    return {"executable": sys.executable, "module": tzw_only_in_venv.__file__}


def python_version():
    """Return the version of the Python running this task, as `platform.python_version()`."""
    import platform

    return platform.python_version()
