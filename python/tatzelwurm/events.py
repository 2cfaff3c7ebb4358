"""The event log as Python reads it: :class:`Event` and the iterators ``Client.events`` and
``AsyncClient.events`` return.

Every state change of a task, every worker joining, draining or leaving, and every purge is an
event with a sequence number (``seq``) that increases by one per event and is never reused,
across coordinator restarts too. The coordinator tells an event only once it is durable, so a
reader that keeps the last ``seq`` it saw and follows again with ``since=that_seq`` misses
nothing and sees nothing twice. A following iterator rides a connection of its own, which comes
back by itself after a drop or a coordinator restart and goes on after the last event it
yielded.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Tuple

from .errors import EventsLagged
from .stream import AsyncStream, Stream

if TYPE_CHECKING:
    from .client import _Core

__all__ = ["Event", "EventStream", "AsyncEventStream", "EVENT_KINDS"]

#: What an event can be about: a task changed state, a worker joined, drained or left,
#: finished tasks were purged.
EVENT_KINDS = ("task", "worker", "purged")


@dataclass(frozen=True)
class Event:
    """One thing that happened. Fields that do not apply to its ``kind`` are None."""

    #: Its place in the log: 1 for the first event ever, one more for each next.
    seq: int
    #: When it happened, by the coordinator's clock, in UTC.
    at: _dt.datetime
    #: ``"task"``, ``"worker"`` or ``"purged"``.
    kind: str
    #: The task (``task`` events).
    task: Optional[int] = None
    #: The task's queue (``task`` events).
    queue: Optional[str] = None
    #: The state the task is in now, one of :data:`tatzelwurm.STATES` (``task`` events).
    state: Optional[str] = None
    #: The task's latest attempt, 0 before its first (``task`` events).
    attempt: Optional[int] = None
    #: The worker's name: the one running (or that ran) the attempt for ``task`` events, the
    #: one that changed for ``worker`` events.
    worker: Optional[str] = None
    #: For a failed task: the error's kind (``ValueError``, ``Timeout``, ``MemoryLimit``, ...).
    error: Optional[str] = None
    #: How many finished tasks were purged (``purged`` events).
    count: Optional[int] = None
    #: The worker's connection id (``worker`` events).
    worker_id: Optional[int] = None
    #: ``"joined"``, ``"draining"`` or ``"left"`` (``worker`` events).
    change: Optional[str] = None

    @classmethod
    def _from_native(cls, raw: Tuple[Any, ...]) -> "Event":
        seq, at, kind, task, queue, state, attempt, worker, error, count, worker_id, change = raw
        return cls(
            seq,
            _dt.datetime.fromtimestamp(at, _dt.timezone.utc),
            kind,
            task,
            queue,
            state,
            attempt,
            worker,
            error,
            count,
            worker_id,
            change,
        )

    def __str__(self) -> str:
        when = self.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if self.kind == "task":
            what = f"task {self.task} {self.state} (queue {self.queue}, attempt {self.attempt}"
            what += f", worker {self.worker})" if self.worker else ")"
            if self.error:
                what += f" {self.error}"
        elif self.kind == "worker":
            what = f"worker {self.worker} ({self.worker_id}) {self.change}"
        else:
            what = f"purged {self.count} finished task(s)"
        return f"{self.seq} {when} {what}"


class _EventReading:
    """What both faces of the event stream add to a plain stream: ``last_seq``."""

    #: The sequence number of the last event yielded (None before the first): pass it as
    #: ``since`` to go on from there.
    last_seq: Optional[int] = None

    def _convert(self, raw: Any) -> Event:
        return Event._from_native(raw)

    def _yielded(self, item: Event) -> None:
        self.last_seq = item.seq

    def _failed(self, error: BaseException) -> BaseException:
        if isinstance(error, EventsLagged):
            error.last_seq = self.last_seq
        return error


class EventStream(_EventReading, Stream[Event]):
    """The events ``Client.events`` yields, in increasing ``seq``. Without ``follow`` it ends
    after the last event kept; with it, it waits for new ones until closed (``close()``, a
    ``with`` block, the client's ``close``). A reader that falls far behind is dropped by the
    coordinator: :class:`EventsLagged`, whose ``last_seq`` says where to go on."""

    def __init__(self, native: Any, core: "_Core") -> None:
        Stream.__init__(self, native, core)


class AsyncEventStream(_EventReading, AsyncStream[Event]):
    """The events ``AsyncClient.events`` yields (``async for``), as :class:`EventStream`."""

    def __init__(self, native: Any, core: "_Core") -> None:
        AsyncStream.__init__(self, native, core)
