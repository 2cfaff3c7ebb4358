"""Small real tasks for tatzelwurm: the demo, the end-to-end tests and the W1 benchmark use them.

Run one with a worker and the CLI, for example:

    actionwurm task add examples/tasks.py:primes --args '[50]' --play
    actionwurm task add examples/tasks.py:word_count --args '["the cat and the hat"]' --play

Every function takes and returns JSON values, because that is what a task's arguments and
result travel as. Nothing here imports anything outside the standard library, so the module runs
in whatever Python the worker was started with.
"""

import os
import sys
import time


def noop(x):
    """Return `x` unchanged: the cheapest task, so a benchmark measures tatzelwurm, not Python."""
    return x


def square(x):
    """Return `x * x`; an easily checked result for tests that run many tasks."""
    return x * x


def primes(n):
    """Return the primes below `n` in increasing order (a sieve of Eratosthenes).

    Real CPU work whose result is easy to check: `primes(20)` is `[2, 3, 5, 7, 11, 13, 17, 19]`.
    """
    if n < 3:
        return []
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    for p in range(2, int(n**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytearray(len(range(p * p, n, p)))
    return [i for i in range(n) if sieve[i]]


def word_count(text):
    """Return how often each word occurs in `text`, lower-cased, punctuation stripped.

    A dict comes back as a JSON object: `word_count("a b a")` is `{"a": 2, "b": 1}`.
    """
    counts = {}
    for raw in text.split():
        word = raw.strip(".,;:!?\"'()[]").lower()
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


def sleep(seconds):
    """Sleep `seconds`, then return them: a task that hangs for a while, to show `task kill`."""
    time.sleep(seconds)
    return seconds


def fail(message):
    """Raise `ValueError(message)`: shows how a failed task keeps its type, message and traceback."""
    raise ValueError(message)


def shout(n_bytes):
    """Print about `n_bytes` to stdout and as many to stderr, each ending with a marker line.

    Shows that a task may print as much as it likes without disturbing its worker: `task show`
    keeps the tail of both streams, and the markers tell that the tail really is the end.
    Returns how many bytes went to each stream.
    """
    written = {}
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        written[name] = _fill(stream, name, n_bytes)
    return written


def _fill(stream, name, n_bytes):
    """Write numbered lines to `stream` until about `n_bytes` are written, then the end marker."""
    written = 0
    line_no = 0
    while written < n_bytes:
        line = f"{name} line {line_no:08d} " + "x" * 60 + "\n"
        stream.write(line)
        written += len(line)
        line_no += 1
    end = f"shout: end of {name}\n"
    stream.write(end)
    stream.flush()
    return written + len(end)


def crash(code):
    """End the interpreter at once with `os._exit(code)`: no exception, no cleanup.

    Shows that a task that kills its own process fails (as `SlotCrashed`) while its worker
    starts a fresh slot and serves on.
    """
    sys.stdout.flush()
    os._exit(code)
