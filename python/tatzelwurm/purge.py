"""What ``Client.purge`` takes, checked before anything is sent: which finished tasks to remove
(ids, or those that finished before a moment, in some finished states).

Only finished tasks (``completed``, ``failed``, ``killed``) are ever removed, with their results
and output; a task that is not finished is left and named in the answer. A purged id is then
reported as purged (:class:`TaskPurged`), never as unknown, by ``get``, ``info`` and ``logs``.
The coordinator can also purge by age on its own: ``tatzelwurm --keep-finished 7d``.
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any, List, Sequence, Union

from .errors import InvalidRequest
from .options import seconds

__all__ = ["FINISHED_STATES", "before_ms", "finished_states"]

#: The states a purge removes tasks in.
FINISHED_STATES = ("completed", "failed", "killed")


def before_ms(value: Any) -> int:
    """``finished_before`` as milliseconds since the epoch: an aware ``datetime`` is that
    moment; seconds, a ``timedelta`` or a span such as ``"7d"`` are an age, counted back from
    now. :class:`InvalidRequest` for anything else (a naive ``datetime`` too: its moment is
    unclear)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidRequest(
                f"finished_before={value!r} has no time zone, so the moment it means is "
                "unclear; pass an aware datetime, or an age such as timedelta(days=7) or '7d'"
            )
        moment = value.timestamp()
    else:
        try:
            age = seconds("finished_before", value)
        except InvalidRequest:
            raise InvalidRequest(
                "finished_before must be an age (seconds, a datetime.timedelta or a span such "
                f"as '7d') or an aware datetime, not {value!r}"
            ) from None
        moment = time.time() - age
    return max(0, int(moment * 1000))


def finished_states(states: Union[None, str, Sequence[str]]) -> List[str]:
    """``states`` as a list of finished state names (empty: every finished state);
    :class:`InvalidRequest` for a state a purge does not remove."""
    if states is None:
        return []
    names = [states] if isinstance(states, str) else list(states)
    for name in names:
        if name not in FINISHED_STATES:
            raise InvalidRequest(
                f"a purge removes only finished tasks, so states must be among "
                f"{', '.join(FINISHED_STATES)}, not {name!r}"
            )
    return names
