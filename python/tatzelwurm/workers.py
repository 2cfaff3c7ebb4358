"""Workers as the coordinator describes them (``Client.workers()``, ``Client.drain_worker``):
:class:`WorkerInfo`, with what each worker's slots use (:class:`WorkerUsage`,
:class:`SlotUsage`) as the worker last measured it (every few heartbeats)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ["WorkerInfo", "WorkerUsage", "SlotUsage"]


@dataclass(frozen=True)
class SlotUsage:
    """What one slot process uses."""

    #: Its process id (0 while it is being replaced).
    pid: int
    #: Its resident memory, in bytes.
    rss: int
    #: Its CPU use since the previous measurement, in cores (1.0: one core busy all the time).
    cpu: float
    #: How many tasks it runs now.
    running: int


@dataclass(frozen=True)
class WorkerUsage:
    """What a worker's slots use, as the worker measured it."""

    #: When it was measured (by the worker's clock), in seconds since the epoch.
    at: float
    #: One per slot, in slot order.
    slots: List[SlotUsage]
    #: ``workwurm --max-memory``, in bytes; None when there is no limit.
    max_memory: Optional[int]
    #: Slots replaced because they passed ``max_memory`` after a task, since the worker started.
    memory_replaced: int
    #: Tasks failed (``MemoryLimit``) because their slot passed ``max_memory`` while they ran.
    memory_killed: int

    @property
    def rss(self) -> int:
        """The resident memory of all its slots, in bytes."""
        return sum(slot.rss for slot in self.slots)

    @property
    def cpu(self) -> float:
        """The CPU use of all its slots, in cores."""
        return sum(slot.cpu for slot in self.slots)

    @classmethod
    def _from_native(cls, raw: Dict[str, Any]) -> "WorkerUsage":
        return cls(
            at=raw["at"],
            slots=[
                SlotUsage(pid, rss, permille / 1000.0, running)
                for pid, rss, permille, running in raw["slots"]
            ],
            max_memory=raw["max_memory"],
            memory_replaced=raw["memory_replaced"],
            memory_killed=raw["memory_killed"],
        )


@dataclass(frozen=True)
class WorkerInfo:
    """One connected worker."""

    id: int
    name: str
    address: str
    slots: int
    running: int
    done: int
    python: str
    connected_at: float
    draining: bool
    held_off_until: Optional[float] = None
    """Set while the coordinator holds this worker off (it kept dropping its connection):
    when it gets tasks again, in seconds since the epoch."""
    queues: List[str] = field(default_factory=list)
    """The queues it serves (``workwurm --queue``)."""
    async_concurrency: int = 1
    """How many ``async def`` tasks one of its slots runs at once."""
    queued: int = 0
    """Of ``running``, the tasks handed to it ahead of a free slot that no slot has started."""
    usage: Optional[WorkerUsage] = None
    """What its slots use (memory, CPU), as it last said; None until it has said."""

    @property
    def uptime(self) -> float:
        """Seconds since it connected (by this machine's clock)."""
        return max(0.0, time.time() - self.connected_at)

    @classmethod
    def _from_native(cls, raw: Dict[str, Any]) -> "WorkerInfo":
        fields = dict(raw)
        usage = fields.pop("usage", None)
        return cls(**fields, usage=None if usage is None else WorkerUsage._from_native(usage))
