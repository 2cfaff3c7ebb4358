"""The Python side of the demo: submit tasks with the client library and read their results.

Run by examples/demo.sh with the demo's venv python, once a coordinator and two workers are up
(TATZELWURM_COORDINATOR names the coordinator). The task functions live in examples/tasks.py,
which the workers import as `tasks` (they were started with `--path examples`).
"""

import time

import tatzelwurm as tw


def main() -> None:
    with tw.Client() as client:
        # One submit per task: each returns a handle at once; the adds travel in batches.
        started = time.perf_counter()
        handles = [client.submit("tasks:square", n) for n in range(1, 11)]
        for handle in tw.as_completed(handles, timeout=60):
            print(f"task {handle.id}: square -> {handle.result()}")
        print(f"10 squares in {time.perf_counter() - started:.2f} s")

        # map keeps the order of its inputs and a bounded number of tasks in flight.
        print("primes below 30, 40, 50:", list(client.map("tasks:primes", [30, 40, 50], window=2)))

        # Policies are options on a view of the same connection, never the task's own kwargs.
        slow = client.options(timeout=1).submit("tasks:sleep", 5)
        try:
            slow.result(timeout=30)
        except tw.TaskTimedOut as err:
            print(f"task {slow.id} timed out as asked: {err}")

        failing = client.submit("tasks:fail", "this task fails on purpose")
        try:
            failing.result(timeout=30)
        except tw.TaskFailed as err:
            print(f"task {err.task_id} failed remotely with {err.remote_type}: {err.remote_message}")

        # A handle by id, as any other process (or this one after a restart) would get it.
        again = client.get(handles[0].id)
        print(f"task {again.id} read again by id: {again.result(timeout=10)}")


if __name__ == "__main__":
    main()
