"""Tasks that only the end-to-end tests need: they let a test see and steer a slot process.

`examples/tasks.py` holds the tasks a user would run; these ones tell the test their process id,
wait for a signal file, or start a child process, so that a test can kill exactly the right
process or hold a slot busy for exactly as long as it needs.
"""

import os
import signal
import subprocess
import sys
import time


def _write_atomically(path, text):
    """Write `text` to `path` so that a reader never sees a half-written file.

    The temporary name is per process: two tasks may write the same path at once.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def pid_then_sleep(pid_file, seconds):
    """Write this slot process's pid to `pid_file`, then sleep: a test kills the slot meanwhile."""
    _write_atomically(pid_file, str(os.getpid()))
    time.sleep(seconds)
    return seconds


def print_then_sleep(text, marker, seconds):
    """Print `text` to stdout and stderr, write the file `marker`, then sleep.

    The marker tells a test that the text is printed, so that it may kill the task then.
    """
    print(text, flush=True)
    print(text, file=sys.stderr, flush=True)
    _write_atomically(marker, "printed")
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


def _attempt():
    """This attempt's number, which the worker puts in the environment of the running task."""
    return int(os.environ["TATZELWURM_ATTEMPT"])


def attempt_after_gate(gate, timeout):
    """Wait for the file `gate`, then mark this attempt done and return its number.

    Before returning it writes `<gate>.done.<attempt>`, so that a test knows the attempt's
    result exists (in a worker it may have paused) before it lets that worker go on.
    """
    attempt = _attempt()
    wait_for_file(gate, timeout)
    _write_atomically(f"{gate}.done.{attempt}", str(attempt))
    return attempt


def fail_first(log_path, failures):
    """Append the start time of this attempt to `log_path`; raise on the first `failures` ones.

    The file counts the attempts whatever the worker tells the task, and its times let a test
    measure the gaps between retries. Returns the number of the attempt that succeeded.
    """
    with open(log_path, "a") as f:
        f.write(f"{time.time()}\n")
    with open(log_path) as f:
        attempt = len(f.read().splitlines())
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return attempt


def kill_my_worker():
    """SIGKILL the worker running this task (the slot's parent), then wait to die with it."""
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(60)


def record_attempt(path, x):
    """Append "TASK_ID ATTEMPT" to `path` (the task's side effect) and return x and the attempt.

    A test compares the file with the table: every task ran at least once, and the result that
    was recorded comes from an attempt that really ran.
    """
    task = os.environ["TATZELWURM_TASK_ID"]
    attempt = _attempt()
    with open(path, "a") as f:
        f.write(f"{task} {attempt}\n")
    return {"x": x, "attempt": attempt}


def start_child_and_return(pid_file):
    """Start `sleep 1000`, write its pid to `pid_file` and return it without waiting for it.

    The worker ends such a leftover when the task ends, unless it runs with --keep-children.
    """
    child = subprocess.Popen(["sleep", "1000"])
    _write_atomically(pid_file, str(child.pid))
    return child.pid


def c_printf(text):
    """Prints `text` through libc's printf, without a newline and without fflush: what C code
    leaves in libc's stdout buffer (the slot makes that stream unbuffered, so none is left)."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.printf(b"%s", text.encode())
