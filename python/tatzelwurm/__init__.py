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

and be watched and cleaned up::

    for event in client.events(since=last_seq, follow=True):   # every state change, durable
        print(event.seq, event.kind, event.task, event.state)
    for chunk in handle.logs(follow=True):                      # output as it is written
        print(chunk.text, end="")
    client.purge(finished_before="7d")                          # finished tasks, with results

Package layout: ``client`` (:class:`Client`, the dispatcher thread), ``aio``
(:class:`AsyncClient`), ``handle`` (:class:`TaskHandle`, :class:`TaskInfo`, ``as_completed``,
``wait``), ``workers`` (:class:`WorkerInfo` with its slots' :class:`WorkerUsage`), ``task``
(``@task``, function names), ``options`` (task options: policy, queue, priority, delay, at,
after), ``queues`` (:class:`QueueInfo`), ``schedules`` (:class:`ScheduleInfo`), ``events``
(:class:`Event` and the event log's iterators), ``logs`` (:class:`LogChunk`, a task's output as
it is written), ``stream`` (what those iterators share: ctrl-c, close), ``purge`` (what a purge
takes), ``serialize`` (JSON arguments), ``errors``,
``slot`` (the worker's slot loop, run as ``python -m tatzelwurm.slot``), ``_native`` (the Rust
extension: the connection, the pipeline, and the three commands).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import DEFAULT_ADDRESS, Client, default_client
from .errors import (
    CoordinatorRefused,
    CoordinatorUnavailable,
    EventsGone,
    EventsLagged,
    InvalidRequest,
    RequestTooLarge,
    SerializationError,
    TaskFailed,
    TaskKilled,
    ScheduleExists,
    TaskPurged,
    TaskTimedOut,
    TatzelwurmError,
    UnknownQueue,
    UnknownSchedule,
    UnknownTask,
    UnknownWorker,
)
from .events import EVENT_KINDS, AsyncEventStream, Event, EventStream
from .handle import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    STATES,
    Changed,
    Purged,
    TaskError,
    TaskHandle,
    TaskInfo,
    TaskOutput,
    as_completed,
    wait,
)
from .logs import AsyncLogStream, LogChunk, LogStream
from .queues import DEFAULT_QUEUE, QueueInfo
from .schedules import ScheduleInfo
from .task import Task, function_name, task
from .workers import SlotUsage, WorkerInfo, WorkerUsage

if TYPE_CHECKING:
    from .aio import AsyncClient

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `AsyncClient` is imported on first use: `aio` imports asyncio (with ssl and more), which
    # was half of the package's import time, paid by every program and every worker slot that
    # imports tatzelwurm without using asyncio.
    if name == "AsyncClient":
        from .aio import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'tatzelwurm' has no attribute '{name}'")

__all__ = [
    "ALL_COMPLETED",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncLogStream",
    "Changed",
    "Client",
    "CoordinatorRefused",
    "CoordinatorUnavailable",
    "DEFAULT_ADDRESS",
    "DEFAULT_QUEUE",
    "EVENT_KINDS",
    "Event",
    "EventStream",
    "EventsGone",
    "EventsLagged",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "InvalidRequest",
    "LogChunk",
    "LogStream",
    "Purged",
    "QueueInfo",
    "RequestTooLarge",
    "STATES",
    "ScheduleExists",
    "ScheduleInfo",
    "SerializationError",
    "SlotUsage",
    "Task",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskInfo",
    "TaskKilled",
    "TaskOutput",
    "TaskPurged",
    "TaskTimedOut",
    "TatzelwurmError",
    "UnknownQueue",
    "UnknownSchedule",
    "UnknownTask",
    "UnknownWorker",
    "WorkerInfo",
    "WorkerUsage",
    "as_completed",
    "default_client",
    "function_name",
    "task",
    "wait",
]
