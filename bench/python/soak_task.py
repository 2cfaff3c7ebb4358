"""The task of the `soak` benchmark (bench/src/bin/soak.rs): it leaves a mark of every run.

Each run appends one line, "<task id> <attempt> <seq> <run>", to a side-effect file and returns
the same values with the add's marker. `seq` numbers the logical task (0 to 99,999), `marker`
names the `task add` it came from, and `run` is random per run, so the benchmark can tell runs
apart (an at-least-once task may run twice, which is allowed and counted) from records (a task
stored or completed twice, which is not), and check that each recorded result came from a run
that really happened.
"""

import os


def mark(path, seq, marker):
    """Append "<task id> <attempt> <seq> <run>" to `path` and return what it wrote.

    One `write` on a file opened with O_APPEND: lines of runs in different processes never
    interleave, and a run killed mid-task leaves a whole line or none.
    """
    task = int(os.environ["TATZELWURM_TASK_ID"])
    attempt = int(os.environ["TATZELWURM_ATTEMPT"])
    run = os.urandom(8).hex()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{task} {attempt} {seq} {run}\n".encode())
    finally:
        os.close(fd)
    return {"id": task, "attempt": attempt, "seq": seq, "marker": marker, "run": run}
