"""The task of the soak test (tests/e2e/soak.rs): it leaves a trace of every attempt that runs.

Each run appends one line, "<task id> <attempt> <run>", to a side-effect file and returns the
same three values. `run` is random per run, so the test can tell two runs that were handed the
same attempt number apart (a fencing token given out twice) and check that each recorded result
came from a run that really happened.
"""

import os
import time


def record(path, chunk, seconds):
    """Append "<task id> <attempt> <run>" to `path`, sleep `seconds`, and return the three.

    The line is written with one `write` on a file opened with O_APPEND, so lines of runs in
    different processes never interleave, and a run killed mid-task leaves a whole line or none.
    `chunk` only marks which `task add` the task came from; the test reads it from the task's
    arguments.
    """
    task = int(os.environ["TATZELWURM_TASK_ID"])
    attempt = int(os.environ["TATZELWURM_ATTEMPT"])
    run = os.urandom(8).hex()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{task} {attempt} {run}\n".encode())
    finally:
        os.close(fd)
    time.sleep(seconds)
    return {"id": task, "attempt": attempt, "run": run, "chunk": chunk}
