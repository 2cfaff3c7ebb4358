"""tatzelwurm: a persistent task queue for Python.

A Rust coordinator keeps the tasks (durably), Rust workers run them in slots of your own Python,
and this package submits and waits for them::

    import tatzelwurm as tw

    with tw.Client() as client:            # $TATZELWURM_COORDINATOR or 127.0.0.1:5677
        handles = [client.submit("pkg.mod:fn", n) for n in range(10)]
        for h in tw.as_completed(handles, timeout=60):
            print(h.id, h.result())

Tasks can wait in named queues, by priority, until a moment, or for other tasks::

    first = client.submit("pkg.mod:extract", 1)
    later = client.options(queue="reports", priority=10, delay=60, after=[first])
    later.submit("pkg.mod:report", 1)
    client.schedule("nightly", "pkg.mod:cleanup", cron="0 3 * * *", tz="Europe/Berlin")

Package layout: ``client`` (:class:`Client`, the dispatcher thread), ``aio``
(:class:`AsyncClient`), ``handle`` (:class:`TaskHandle`, :class:`TaskInfo`, ``as_completed``,
``wait``), ``task`` (``@task``, function names), ``options`` (task options: policy, queue,
priority, delay, at, after), ``queues`` (:class:`QueueInfo`), ``schedules``
(:class:`ScheduleInfo`), ``serialize`` (JSON arguments), ``errors``,
``slot`` (the worker's slot loop, run as ``python -m tatzelwurm.slot``), ``_native`` (the Rust
extension: the connection, the pipeline, and the three commands).
"""

from __future__ import annotations

from .aio import AsyncClient
from .client import DEFAULT_ADDRESS, Client, default_client
from .errors import (
    CoordinatorRefused,
    CoordinatorUnavailable,
    InvalidRequest,
    RequestTooLarge,
    SerializationError,
    TaskFailed,
    TaskKilled,
    ScheduleExists,
    TaskTimedOut,
    TatzelwurmError,
    UnknownQueue,
    UnknownSchedule,
    UnknownTask,
)
from .handle import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    STATES,
    Changed,
    TaskError,
    TaskHandle,
    TaskInfo,
    TaskOutput,
    WorkerInfo,
    as_completed,
    wait,
)
from .queues import DEFAULT_QUEUE, QueueInfo
from .schedules import ScheduleInfo
from .task import Task, function_name, task

__version__ = "0.1.0"

__all__ = [
    "ALL_COMPLETED",
    "AsyncClient",
    "Changed",
    "Client",
    "CoordinatorRefused",
    "CoordinatorUnavailable",
    "DEFAULT_ADDRESS",
    "DEFAULT_QUEUE",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "InvalidRequest",
    "QueueInfo",
    "RequestTooLarge",
    "STATES",
    "ScheduleExists",
    "ScheduleInfo",
    "SerializationError",
    "Task",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskInfo",
    "TaskKilled",
    "TaskOutput",
    "TaskTimedOut",
    "TatzelwurmError",
    "UnknownQueue",
    "UnknownSchedule",
    "UnknownTask",
    "WorkerInfo",
    "as_completed",
    "default_client",
    "function_name",
    "task",
    "wait",
]
