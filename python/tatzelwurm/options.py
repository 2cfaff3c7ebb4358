"""Task options: what ``Client.options``, ``@task(...)``, ``Task.options`` and
``Client.schedule`` accept, checked once when a view, task or schedule is made (never per
submit), and turned into the native ``Options`` that submits carry.

Two kinds of option:

- the policy (``retries``, ``backoff``, ``timeout``, ``at_most_once``, ``crash_limit``) and
  ``play``, as before;
- where, when and after what a task runs: ``queue`` (a name, ``"default"`` unless given),
  ``priority`` (-100..100, higher first, first in first out within one), ``delay`` (seconds, a
  :class:`datetime.timedelta`, or a span as the command line writes it: ``"1h30m"``), ``at``
  (an aware :class:`datetime.datetime`, a Unix timestamp in seconds, or RFC 3339 text with an
  offset; a naive datetime is refused rather than guessed) and ``after`` (handles or ids of
  tasks that must complete first).

A queue name, a priority and spans or times written as text are checked by the same Rust rules
the coordinator and the command line use, so a bad one reads the same sentence everywhere, and
is refused here, before the task joins an add that other submits share.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
import warnings
from typing import Any, Dict, Iterable, List, Tuple

from . import _native
from .errors import InvalidRequest

__all__ = [
    "OPTION_NAMES",
    "SCHEDULE_OPTION_NAMES",
    "check_options",
    "check_schedule_options",
    "merge_options",
    "native_options",
    "seconds",
]

#: The policy options and ``play``.
POLICY_NAMES = ("retries", "backoff", "timeout", "at_most_once", "crash_limit", "play")

#: Where, when and after what a task runs.
PLACEMENT_NAMES = ("queue", "priority", "delay", "at", "after")

#: Every option a task accepts.
OPTION_NAMES = POLICY_NAMES + PLACEMENT_NAMES

#: The options of a schedule's tasks: each firing adds a task that is ready at once, so
#: ``delay``, ``at``, ``after`` and ``play`` do not apply.
SCHEDULE_OPTION_NAMES = ("retries", "backoff", "timeout", "at_most_once", "crash_limit", "queue", "priority")

#: The longest delay, in seconds (the command lines' limit too: about 31 years).
MAX_DELAY = 1e9

#: The latest ``at`` a timestamp may name: the end of the year 9999. A larger number is most
#: likely milliseconds passed where seconds were meant.
MAX_TIMESTAMP = 253_402_300_799.0


def check_options(options: Dict[str, Any], *, stacklevel: int = 3) -> Dict[str, Any]:
    """``options`` checked and normalised: seconds as floats, ``at`` as a Unix timestamp,
    ``after`` as a tuple of ids (handles are asked for their ids, which waits until their adds
    are durable). An unknown name or a bad value raises :class:`InvalidRequest`; an ``at`` in
    the past warns that the task runs now (``stacklevel`` as if this function warned: 3 points
    at the caller of its caller)."""
    if "delay" in options and "at" in options:
        raise InvalidRequest(
            "give delay (seconds from now) or at (a moment), not both; the task waits for one"
        )
    checked: Dict[str, Any] = {}
    for key, value in options.items():
        if key not in OPTION_NAMES:
            raise InvalidRequest(
                f"unknown option {key!r}; the options are {', '.join(OPTION_NAMES)}"
            )
        checked[key] = _check(key, value, options.get("play", True), stacklevel + 1)
    return checked


def merge_options(base: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
    """``base`` with the checked ``new`` options laid over it; a new ``delay`` replaces an old
    ``at`` and the other way round (a task waits for one of them)."""
    merged = dict(base)
    if "delay" in new:
        merged.pop("at", None)
    if "at" in new:
        merged.pop("delay", None)
    merged.update(new)
    return merged


def check_schedule_options(options: Dict[str, Any], *, stacklevel: int = 3) -> Dict[str, Any]:
    """The options of a schedule's tasks, checked: the policy, ``queue`` and ``priority``."""
    for key in options:
        if key in ("delay", "at", "after", "play"):
            raise InvalidRequest(
                f"a schedule's tasks are ready as soon as it fires, so the option {key!r} does "
                f"not apply; the options of a schedule are {', '.join(SCHEDULE_OPTION_NAMES)}"
            )
    return check_options(options, stacklevel=stacklevel + 1)


def native_options(options: Dict[str, Any]) -> Any:
    """The native form of checked options (seconds become milliseconds)."""
    backoff = options.get("backoff")
    timeout = options.get("timeout")
    delay = options.get("delay")
    at = options.get("at")
    return _native.Options(
        retries=options.get("retries"),
        backoff_ms=None if backoff is None else int(round(backoff * 1000)),
        timeout_ms=None if timeout is None else max(1, int(round(timeout * 1000))),
        at_most_once=options.get("at_most_once"),
        crash_limit=options.get("crash_limit"),
        play=options.get("play", True),
        queue=options.get("queue"),
        priority=options.get("priority"),
        delay_ms=None if delay is None else int(round(delay * 1000)),
        at_ms=None if at is None else int(round(at * 1000)),
        after=list(options.get("after", ())),
    )


def seconds(what: str, value: Any) -> float:
    """A span of seconds given as a number, a :class:`datetime.timedelta` or text as the
    command line reads it (``"30s"``, ``"1h30m"``; ``every`` at least ``"1s"``), as a float
    from 0 to :data:`MAX_DELAY`; :class:`InvalidRequest` naming ``what`` otherwise."""
    if isinstance(value, str):
        parse = _native.parse_every if what == "every" else _native.parse_span
        secs = parse(what, value) / 1000.0
        if secs > MAX_DELAY:
            raise InvalidRequest(f"{what} must be at most {MAX_DELAY:,.0f} seconds, not {value!r}")
        return secs
    if isinstance(value, _dt.timedelta):
        secs = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = float(value)
    else:
        raise InvalidRequest(
            f"{what} must be a number of seconds, a datetime.timedelta or a span such as "
            f"'1h30m', not {value!r}"
        )
    if not math.isfinite(secs) or secs < 0 or secs > MAX_DELAY:
        raise InvalidRequest(
            f"{what} must be from 0 to {MAX_DELAY:,.0f} seconds, not {value!r}"
        )
    return secs


def _check(key: str, value: Any, options_play: Any, stacklevel: int) -> Any:
    if key in ("retries", "crash_limit"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"{key} must be a whole number >= 0, not {value!r}")
        return value
    if key == "backoff":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidRequest(f"backoff must be a number of seconds >= 0, not {value!r}")
        return value
    if key == "timeout":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
        ):
            raise InvalidRequest(f"timeout must be a number of seconds > 0 or None, not {value!r}")
        return value
    if key in ("at_most_once", "play"):
        if not isinstance(value, bool):
            raise InvalidRequest(f"{key} must be True or False, not {value!r}")
        return value
    if key == "queue":
        if not isinstance(value, str):
            raise InvalidRequest(f"queue must be a queue name (a str), not {value!r}")
        _native.check_queue_name(value)
        return value
    if key == "priority":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(
                f"priority must be a whole number from -100 to 100, not {value!r}"
            )
        _native.check_priority(value)
        return value
    if key == "delay":
        return seconds("delay", value)
    if key == "at":
        return _check_at(value, options_play, stacklevel + 1)
    # after
    return _check_after(value)


def _check_at(value: Any, play: Any, stacklevel: int) -> float:
    """``at`` as a Unix timestamp in seconds, warning when it is in the past (in the command
    line's words; ``play`` False: it runs as soon as played)."""
    if isinstance(value, str):
        stamp = _native.parse_time("at", value) / 1000.0
    elif isinstance(value, _dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidRequest(
                f"at={value!r} has no time zone, so the moment it means is unclear; pass an "
                "aware datetime such as datetime.now(timezone.utc) + timedelta(minutes=5), or a "
                "Unix timestamp in seconds"
            )
        stamp = value.timestamp()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = float(value)
    else:
        raise InvalidRequest(
            "at must be an aware datetime, a Unix timestamp in seconds or RFC 3339 text such as "
            f"'2026-12-01T09:00:00Z', not {value!r}"
        )
    if not math.isfinite(stamp) or stamp < 0 or stamp > MAX_TIMESTAMP:
        raise InvalidRequest(
            f"at={value!r} is not a moment from 1970 to 9999; pass a Unix timestamp in seconds "
            "(not milliseconds) or an aware datetime"
        )
    if stamp <= time.time():
        when = "now" if play is not False else "as soon as played"
        warnings.warn(
            f"at={_utc(stamp)} UTC is in the past, so the task runs {when}",
            stacklevel=stacklevel,
        )
    return stamp


def _check_after(value: Any) -> Tuple[int, ...]:
    """``after`` as a tuple of distinct ids, in the order given."""
    from .handle import TaskHandle

    items: Iterable[Any]
    if isinstance(value, (TaskHandle, int)) and not isinstance(value, bool):
        items = (value,)
    elif isinstance(value, (str, bytes)) or not _iterable(value):
        raise InvalidRequest(
            f"after must be task handles or task ids (a list of them, or one), not {value!r}"
        )
    else:
        items = value
    ids: List[int] = []
    for item in items:
        if isinstance(item, TaskHandle):
            ids.append(item.id)
        elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
            ids.append(item)
        else:
            raise InvalidRequest(
                f"after must name tasks by handle or by id (a whole number > 0), not {item!r}"
            )
    unique = tuple(dict.fromkeys(ids))
    if len(unique) > _native.MAX_AFTER:
        raise InvalidRequest(
            f"a task may run after at most {_native.MAX_AFTER} tasks, not {len(unique)}; chain "
            "them through fewer tasks"
        )
    return unique


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _utc(stamp: float) -> str:
    """A moment as the command line prints it: ``YYYY-MM-DD HH:MM:SS`` in UTC, seconds cut."""
    moment = _dt.datetime.fromtimestamp(int(stamp), _dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
