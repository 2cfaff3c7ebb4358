"""Schedules: named recipes that add an ordinary task every so many seconds or at the times of
a cron line (:class:`ScheduleInfo`, and the checks of ``Client.schedule``'s trigger).

Each firing adds a ``ready`` task that runs like any other; ``ScheduleInfo.last`` names the
latest ones. Schedules are durable: firings missed while the coordinator was down run once when
it starts, not once per missed time. A cron line has five fields (minute, hour, day of month,
month, day of week) and is read in UTC unless ``tz`` names a time zone (``Europe/Berlin``);
the coordinator parses it, so its errors read the same from Python and from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .errors import InvalidRequest
from .options import seconds

__all__ = ["ScheduleInfo"]


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule: its trigger, the task each firing adds, and what it has done. Times are
    seconds since the epoch."""

    name: str
    #: Seconds between firings (counted from when it was added), or None for a cron schedule.
    every: Optional[float]
    #: The cron line, or None for an ``every`` schedule.
    cron: Optional[str]
    #: The time zone the cron line is read in; None for UTC.
    tz: Optional[str]
    #: The function each firing runs, with its arguments' JSON text.
    function: str
    args: str
    kwargs: str
    #: The queue and priority of the tasks it adds.
    queue: str
    priority: int
    #: The policy of the tasks it adds.
    retries: int
    backoff: float
    timeout: Optional[float]
    at_most_once: bool
    crash_limit: int
    #: Whether it is paused (``pause_schedule``): a paused schedule does not fire.
    paused: bool
    created_at: float
    #: When it fires next; None while paused, or for a cron line with no time left.
    next_at: Optional[float]
    #: How many tasks it has added.
    fired: int
    #: Its latest tasks with when each was added, newest first (at most 10).
    last: List[Tuple[int, float]]

    @property
    def last_ids(self) -> List[int]:
        """The ids of its latest tasks, newest first; ``client.get(id)`` gives a handle."""
        return [task_id for task_id, _ in self.last]

    @classmethod
    def _from_native(cls, raw: Dict[str, Any]) -> "ScheduleInfo":
        every_ms = raw["every_ms"]
        timeout_ms = raw["timeout_ms"]
        return cls(
            name=raw["name"],
            every=None if every_ms is None else every_ms / 1000.0,
            cron=raw["cron"],
            tz=raw["tz"],
            function=raw["function"],
            args=raw["args"],
            kwargs=raw["kwargs"],
            queue=raw["queue"],
            priority=raw["priority"],
            retries=raw["retries"],
            backoff=raw["backoff_ms"] / 1000.0,
            timeout=None if timeout_ms is None else timeout_ms / 1000.0,
            at_most_once=raw["at_most_once"],
            crash_limit=raw["crash_limit"],
            paused=raw["paused"],
            created_at=raw["created_at"],
            next_at=raw["next_at"],
            fired=raw["fired"],
            last=[(task_id, at) for task_id, at in raw["last"]],
        )


def trigger(every: Any, cron: Any, tz: Any) -> Tuple[Optional[int], Optional[str], Optional[str]]:
    """``(every_ms, cron, tz)`` checked: exactly one of ``every`` (seconds or a timedelta) and
    ``cron`` (a five-field line), and ``tz`` only with ``cron``. The coordinator checks the rest
    (at least 1 s between firings, the cron line's fields, the time zone's name)."""
    if (every is None) == (cron is None):
        raise InvalidRequest(
            "give every (seconds between firings, such as every=30) or cron (a line such as "
            "cron='*/5 * * * *'), exactly one of them"
        )
    if tz is not None:
        if cron is None:
            raise InvalidRequest(
                "tz applies to cron lines only; an every schedule counts seconds, not clock times"
            )
        if not isinstance(tz, str):
            raise InvalidRequest(f"tz must be a time zone name such as 'Europe/Berlin', not {tz!r}")
    if cron is not None:
        if not isinstance(cron, str):
            raise InvalidRequest(f"cron must be a cron line such as '*/5 * * * *', not {cron!r}")
        return None, cron, tz
    return int(round(seconds("every", every) * 1000)), None, None
