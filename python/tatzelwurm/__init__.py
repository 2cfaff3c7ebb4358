"""tatzelwurm: a persistent task queue for Python.

A Rust coordinator keeps the tasks (durably), Rust workers run them in slots of your own Python,
and this package submits and waits for them::

    import tatzelwurm as tw

    with tw.Client() as client:            # $TATZELWURM_COORDINATOR or 127.0.0.1:5677
        handles = [client.submit("pkg.mod:fn", n) for n in range(10)]
        for h in tw.as_completed(handles, timeout=60):
            print(h.id, h.result())

Package layout: ``client`` (:class:`Client`, the dispatcher thread), ``aio``
(:class:`AsyncClient`), ``handle`` (:class:`TaskHandle`, :class:`TaskInfo`, ``as_completed``,
``wait``), ``task`` (``@task``, function names), ``serialize`` (JSON arguments), ``errors``,
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
    TaskTimedOut,
    TatzelwurmError,
    UnknownTask,
)
from .handle import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    Changed,
    TaskError,
    TaskHandle,
    TaskInfo,
    TaskOutput,
    WorkerInfo,
    as_completed,
    wait,
)
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
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "InvalidRequest",
    "RequestTooLarge",
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
    "UnknownTask",
    "WorkerInfo",
    "as_completed",
    "default_client",
    "function_name",
    "task",
    "wait",
]
