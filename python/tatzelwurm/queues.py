"""Queues as the coordinator describes them (:class:`QueueInfo`, from ``Client.queues()`` and
the queue controls).

A queue is a named lane of tasks (``options(queue="gpu")``; ``"default"`` unless named), served
only by the workers started with ``workwurm --queue NAME``. Dispatch within a queue is by
priority, then first in first out, and stays least-loaded among the workers that serve it. A
queue can be paused (nothing new is dispatched from it; running tasks go on) and limited (at
most N of its tasks assigned to workers at once, across all workers). Both settings are durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

__all__ = ["QueueInfo", "DEFAULT_QUEUE"]

#: The queue of a task, and of a worker, when none is named.
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class QueueInfo:
    """One queue: its settings, how many of its tasks are in each state, and who serves it."""

    name: str
    #: Whether dispatch from it is paused (``pause_queue``/``resume_queue``).
    paused: bool
    #: At most this many of its tasks are assigned to workers at once; None for no limit.
    limit: Optional[int]
    #: How many of its tasks are in each state: every state of :data:`tatzelwurm.STATES`, in
    #: that order, zero included.
    counts: Dict[str, int]
    #: Names of the connected workers that serve it.
    workers: List[str]

    def count(self, state: str) -> int:
        """How many of its tasks are in ``state`` (0 for a name that is not a state)."""
        return self.counts.get(state, 0)

    @classmethod
    def _from_native(cls, raw: Dict[str, Any]) -> "QueueInfo":
        limit = raw["limit"]
        return cls(
            name=raw["name"],
            paused=raw["paused"],
            limit=limit or None,
            counts=dict(raw["counts"]),
            workers=list(raw["workers"]),
        )
