"""Tasks of the pytest suite; the workers import this module as `pt_tasks` (they are started
with `--path tests/pytest`), and the tests submit them by that name or as function objects."""

import multiprocessing
import os
import sys
import time

import tatzelwurm as tw


def noop(x):
    """Returns its argument: W1's task."""
    return x


def add(x, y):
    """x + y."""
    return x + y


def square(n):
    """n * n."""
    return n * n


def sleep(seconds, tag=None):
    """Sleeps, then returns how long."""
    time.sleep(seconds)
    return seconds


def fail(message):
    """Raises ValueError(message)."""
    raise ValueError(message)


def return_set():
    """Returns something that is not JSON."""
    return {1, 2, 3}


def options_echo(timeout=None, retries=None, **rest):
    """Returns the keyword arguments it received, named like options but its own."""
    return {"timeout": timeout, "retries": retries, "rest": rest}


def environment():
    """The interpreter that runs the task."""
    return {"executable": sys.executable, "prefix": sys.prefix}


def venv_only():
    """Imports a module that exists only in the test venv."""
    import twvenvonly  # noqa: F401 - installed into the venv by the test

    return twvenvonly.VALUE


def pool_squares(n, method=None):
    """Sums squares in a multiprocessing pool started inside the task."""
    context = multiprocessing.get_context(method) if method else multiprocessing
    with context.Pool(2) as pool:
        return sum(pool.map(square, range(n)))


def pid():
    """The slot's process id."""
    return os.getpid()


@tw.task(retries=2, timeout=5)
def tadd(x, y):
    """A decorated task: x + y."""
    return x + y


@tw.task
def techo(timeout=None, retries=None):
    """A decorated task whose own keyword arguments are named like options."""
    return {"timeout": timeout, "retries": retries}


def chatty(lines, pause, tag="line"):
    """Prints `lines` lines to stdout, `pause` seconds apart, and one to stderr at the end."""
    for i in range(lines):
        print(f"{tag} {i}", flush=True)
        time.sleep(pause)
    print(f"{tag} done", file=sys.stderr, flush=True)
    return lines


def print_then_sleep(text, seconds):
    """Prints `text`, then sleeps: a running task with output so far."""
    print(text, flush=True)
    time.sleep(seconds)
    return seconds


def print_and_fail_once(marker):
    """Prints which attempt this is; fails the first time (when file `marker` is missing)."""
    first = not os.path.exists(marker)
    print("first attempt" if first else "second attempt", flush=True)
    if first:
        with open(marker, "w") as f:
            f.write("seen")
        raise ValueError("first attempt fails")
    return "ok"
