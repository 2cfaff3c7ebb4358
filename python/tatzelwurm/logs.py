"""A task's output as it is written: :class:`LogChunk` and the iterators
``TaskHandle.logs(follow=True)`` and ``AsyncClient.follow_logs`` return.

Without following, ``logs()`` gives a :class:`~tatzelwurm.TaskOutput`: the kept output of a
finished task, or what a running task has written so far (``info().output`` has a running
task's output only once it finished). Following, the chunks come as the task writes them (a
line reaches the reader within about half a second) until the task finishes; the stream then
ends, with the task's final state in ``state``. A retry's new attempt starts a new stream of
chunks: each chunk names its attempt.

A followed task's stream cannot be resumed after a dropped connection (the coordinator keeps no
offsets into it): the iterator then raises :class:`CoordinatorUnavailable`; read the whole
output with ``logs()`` once the coordinator is back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .handle import TaskOutput
from .stream import AsyncStream, Stream

if TYPE_CHECKING:
    from .client import _Core

__all__ = ["LogChunk", "LogStream", "AsyncLogStream"]


@dataclass(frozen=True)
class LogChunk:
    """A piece of what one attempt of a task wrote, in the order it was written."""

    #: The attempt that wrote it (1 for the first).
    attempt: int
    #: ``"stdout"`` or ``"stderr"``.
    stream: str
    #: What was written.
    text: str


class _LogReading:
    """What both faces of a log stream add to a plain stream: the task's state at the end."""

    _native: Any

    def _convert(self, raw: Any) -> LogChunk:
        attempt, stream, text = raw
        return LogChunk(attempt, stream, text)

    @property
    def state(self) -> Optional[str]:
        """The task's state when its stream ended (finished, unless the stream was not
        following); None while the stream goes on."""
        state: Optional[str] = self._native.state
        return state


class LogStream(_LogReading, Stream[LogChunk]):
    """The chunks ``TaskHandle.logs(follow=True)`` yields until the task finishes."""

    def __init__(self, native: Any, core: "_Core") -> None:
        Stream.__init__(self, native, core)

    def output(self) -> TaskOutput:
        """Reads the stream to its end and joins what the latest attempt wrote."""
        return join_chunks(list(self))


class AsyncLogStream(_LogReading, AsyncStream[LogChunk]):
    """The chunks ``AsyncClient.follow_logs`` yields (``async for``) until the task finishes."""

    def __init__(self, native: Any, core: "_Core") -> None:
        AsyncStream.__init__(self, native, core)

    async def output(self) -> TaskOutput:
        """Reads the stream to its end and joins what the latest attempt wrote."""
        return join_chunks([chunk async for chunk in self])


def join_chunks(chunks: List[LogChunk]) -> TaskOutput:
    """The text of the latest attempt among ``chunks``, per stream, as :class:`TaskOutput`
    (what ``info().output`` says of a finished task)."""
    if not chunks:
        return TaskOutput("", "")
    latest = max(chunk.attempt for chunk in chunks)
    parts: Dict[str, List[str]] = {"stdout": [], "stderr": []}
    for chunk in chunks:
        if chunk.attempt == latest:
            parts.setdefault(chunk.stream, []).append(chunk.text)
    return TaskOutput("".join(parts["stdout"]), "".join(parts["stderr"]))
