"""Task handles (``concurrent.futures.Future`` subclasses) and what the coordinator says about
tasks (workers are described in ``workers``, re-exported here).

A handle is resolved by the client's dispatcher thread when the coordinator pushes its task's
completion; nothing polls. Its result stays readable: reading it never consumes anything, and
another process reads the same result by id with ``Client.get``.
"""

from __future__ import annotations

import concurrent.futures as futures
from concurrent.futures import _base as _futures_base
import queue
import threading
import time
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Generator,
    Generic,
    Iterable,
    Iterator,
    List,
    Literal,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from .errors import TaskFailed, TaskKilled, TaskTimedOut, TatzelwurmError
from .serialize import loads_result
from .workers import WorkerInfo

if TYPE_CHECKING:
    from .client import _Core
    from .logs import LogStream

__all__ = [
    "TaskHandle",
    "TaskInfo",
    "TaskError",
    "TaskOutput",
    "WorkerInfo",
    "Changed",
    "Purged",
    "STATES",
    "as_completed",
    "wait",
    "DoneAndNotDone",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "ALL_COMPLETED",
]

R = TypeVar("R")

FIRST_COMPLETED = futures.FIRST_COMPLETED
FIRST_EXCEPTION = futures.FIRST_EXCEPTION
ALL_COMPLETED = futures.ALL_COMPLETED

#: Before Python 3.11 ``concurrent.futures.TimeoutError`` is not the builtin one.
_FUTURES_TIMEOUT = futures.TimeoutError

# A Future's states, as concurrent.futures names them (stable since Python 3.2).
_PENDING = _futures_base.PENDING
_FINISHED = _futures_base.FINISHED
_DONE_STATES = (_futures_base.CANCELLED, _futures_base.CANCELLED_AND_NOTIFIED, _FINISHED)

#: Guards the making of a handle's condition, the resolving of a handle that has none, and the
#: queues of ``as_completed`` (see :class:`TaskHandle`). Held for a few attribute reads and
#: writes at a time.
_LAZY = threading.Lock()


def _future_fields_known() -> bool:
    """Whether ``Future.__init__`` sets exactly the fields a handle sets without calling it
    (true of every CPython from 3.9 on); otherwise handles call it, and pay for its condition."""
    probe = futures.Future()
    return set(vars(probe)) == {
        "_condition",
        "_state",
        "_result",
        "_exception",
        "_waiters",
        "_done_callbacks",
    } and probe._state == _PENDING


_LAZY_CONDITION = _future_fields_known()

#: The fields of a Future a handle makes only when they are needed (see `TaskHandle`).
_LAZY_FIELDS = frozenset(("_condition", "_waiters", "_done_callbacks"))


@dataclass(frozen=True)
class TaskError:
    """Why a task failed, as the worker reported it."""

    #: The exception's type, such as ``ValueError``, or ``SlotCrashed``, ``Timeout``.
    kind: str
    #: The exception's message.
    message: str
    #: The remote traceback as text.
    traceback: str


@dataclass(frozen=True)
class TaskOutput:
    """What a task's latest attempt wrote (the tail of long output)."""

    stdout: str
    stderr: str


@dataclass(frozen=True)
class TaskInfo:
    """Everything the coordinator tells about one task. Times are seconds since the epoch."""

    id: int
    #: One of :data:`STATES`: ``created`` (not played), ``blocked`` (waiting for the tasks in
    #: ``after``), ``scheduled`` (waiting for ``run_at``), ``paused``, ``ready``, ``running``,
    #: ``waiting`` (a retry's backoff), ``completed``, ``failed`` or ``killed``.
    state: str
    function: str
    #: The positional arguments' JSON text.
    args: str
    #: The keyword arguments' JSON text.
    kwargs: str
    #: The result's JSON text, once completed (see :meth:`value`).
    result: Optional[str]
    error: Optional[TaskError]
    worker: Optional[str]
    attempts: int
    failures: int
    crashes: int
    retry_at: Optional[float]
    created_at: float
    started_at: Optional[float]
    finished_at: Optional[float]
    #: Only from ``TaskHandle.info()``/``Client.info``; lists leave it out.
    output: Optional[TaskOutput]
    #: The queue it waits in; only workers serving that queue run it.
    queue: str = "default"
    #: Higher runs first (-100..100); first in, first out within one priority.
    priority: int = 0
    #: Not before this moment (a ``delay`` is turned into a moment when the task is added).
    run_at: Optional[float] = None
    #: Ids of the tasks that must complete before it runs.
    after: Tuple[int, ...] = ()

    @property
    def finished(self) -> bool:
        """Whether the task reached a final state (completed, failed or killed)."""
        return self.state in ("completed", "failed", "killed")

    def value(self) -> Any:
        """The result as a Python value (None when there is none yet)."""
        return None if self.result is None else loads_result(self.result)

    @classmethod
    def _from_native(cls, raw: dict) -> "TaskInfo":
        error = raw["error"]
        output = raw["output"]
        return cls(
            id=raw["id"],
            state=raw["state"],
            function=raw["function"],
            args=raw["args"],
            kwargs=raw["kwargs"],
            result=raw["result"],
            error=None if error is None else TaskError(*error),
            worker=raw["worker"],
            attempts=raw["attempts"],
            failures=raw["failures"],
            crashes=raw["crashes"],
            retry_at=raw["retry_at"],
            created_at=raw["created_at"],
            started_at=raw["started_at"],
            finished_at=raw["finished_at"],
            output=None if output is None else TaskOutput(*output),
            queue=raw["queue"],
            priority=raw["priority"],
            run_at=raw["run_at"],
            after=tuple(raw["after"]),
        )


#: Every task state, in the order of a task's life.
STATES = (
    "created",
    "blocked",
    "scheduled",
    "paused",
    "ready",
    "running",
    "waiting",
    "completed",
    "failed",
    "killed",
)


class Changed(NamedTuple):
    """What a kill, a play or a pause did: ``changed`` moved; ``unchanged`` were in a state the
    command does not apply to, named with that state."""

    changed: List[int]
    unchanged: List[Tuple[int, str]]


class Purged(NamedTuple):
    """What a purge did: ``purged`` finished tasks were removed with their results and output;
    ``unchanged`` are the named tasks it left, with their state (None: already purged)."""

    purged: int
    unchanged: List[Tuple[int, Optional[str]]]


def _failure(info: "TaskInfo | tuple") -> TaskFailed:
    """The error a finished task without a result raises (from a `TaskInfo`, or from the native
    side's `(id, state, result, error, attempts)` of a pushed completion)."""
    if isinstance(info, tuple):
        task_id, state, _, error, attempts = info
        kind, message, trace = error if error is not None else ("", "", "")
    else:
        task_id, state, attempts = info.id, info.state, info.attempts
        kind, message, trace = (
            (info.error.kind, info.error.message, info.error.traceback)
            if info.error
            else ("", "", "")
        )
    if state == "killed":
        return TaskKilled(
            f"task {task_id} was killed before it finished", task_id, kind, message, trace, attempts
        )
    if kind == "Timeout":
        return TaskTimedOut(
            f"task {task_id} timed out: {message}", task_id, kind, message, trace, attempts
        )
    if kind == "DependencyFailed":
        text = f"task {task_id} did not run: {message}"
    elif kind:
        text = f"task {task_id} failed after {attempts} attempt(s) with {kind}: {message}"
    else:
        text = f"task {task_id} failed after {attempts} attempt(s)"
    return TaskFailed(text, task_id, kind, message, trace, attempts)


class TaskHandle(futures.Future, Generic[R]):  # type: ignore[type-arg]
    """A submitted task: a :class:`concurrent.futures.Future` that resolves when the task
    finishes, so ``concurrent.futures.as_completed``/``wait`` and ``asyncio.wrap_future`` work on
    it, and ``await handle`` gives its result inside a coroutine.

    Its result is the task's return value; a task that failed raises :class:`TaskFailed`
    (:class:`TaskKilled`, :class:`TaskTimedOut`). ``cancel()`` does not stop a task (it returns
    False); use :meth:`kill`.
    """

    # __slots__ would save little: Future has a __dict__ anyway.
    #
    # A handle makes its future's condition, with the waiter and callback lists that go with
    # it, only when something needs them: a thread that blocks in result() before the task
    # finished, a done callback (asyncio.wrap_future), or the standard library's
    # as_completed/wait. Future.__init__ makes a threading.Condition for every future, which
    # cost more than everything else a submit does in Python (~7 us of ~23 us of the client's
    # CPU per task in W1); the two lists were two more objects for the cyclic garbage
    # collector to walk per live handle (its collections were ~2 of the client's ~8 us per
    # task with 100,000 handles alive). A handle that finishes with none of them (`_lazy`) is
    # resolved under `_LAZY`, which is also what makes them: whoever comes second sees the
    # other's work. `tatzelwurm.as_completed` needs none of them (its queue).
    #
    # The dispatcher gives handles their ids and results in bulk, in the extension
    # (pyext/src/dispatch.rs), writing `_task_id`, `_state`, `_result`, `_final_state` and
    # `_queues` under `_LAZY` as `_resolve` does here: a change to these fields changes that
    # file too.

    def __init__(self, core: "_Core", task_id: Optional[int] = None) -> None:
        if _LAZY_CONDITION:
            self._state = _PENDING
            self._result = None
            self._exception = None
            #: No condition, waiters or callbacks yet (see `__getattr__`); written under `_LAZY`.
            self._lazy = True
        else:
            super().__init__()
            self._lazy = False
        #: The `as_completed` queue waiting for this handle, or a list of them when several
        #: are (see `_resolve`); one queue is kept without a list, to spare an object per
        #: handle.
        self._queues: Any = None
        self._core = core
        self._task_id = task_id
        self._add_error: Optional[BaseException] = None
        self._id_event: Optional[threading.Event] = None
        #: The state it finished in, from the pushed completion that resolved it.
        self._final_state: Optional[str] = None

    # -- the id ---------------------------------------------------------------------------
    @property
    def id(self) -> int:
        """The task's id; blocks until the add is durable (raises the add's error if it was
        refused, or :class:`TimeoutError` after the client's ``id_timeout``)."""
        task_id = self._task_id
        if task_id is not None:
            return task_id
        # The future's own condition must not be notified for the id: that would wake result()
        # waiters early. An event is made only for a handle whose id is awaited.
        with self._condition:
            if self._task_id is None and self._add_error is None and self._id_event is None:
                self._id_event = threading.Event()
            event = self._id_event
        # _set_id stores the id before it looks for the event, so reading the id again after
        # making the event cannot miss both.
        if self._task_id is not None:
            return self._task_id
        if event is not None and not event.wait(self._core.id_timeout):
            raise TimeoutError(
                "the coordinator has not acknowledged this task's add yet; check that it is running"
            )
        if self._task_id is None:
            assert self._add_error is not None
            raise self._add_error
        return self._task_id

    def _set_id(self, task_id: int) -> None:
        # No lock (the dispatcher calls this for every task): the id is stored first, and
        # `id` checks it again after making its event.
        self._task_id = task_id
        event = self._id_event
        if event is not None:
            event.set()

    def _set_add_error(self, error: BaseException) -> None:
        with self._condition:
            self._add_error = error
            event = self._id_event
        if event is not None:
            event.set()
        self.set_exception(error)

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes a handle does not have: its condition, waiters and
        # callbacks, until one of them is needed; then all three are made together.
        if name not in _LAZY_FIELDS:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        with _LAZY:
            if self._lazy:
                self._waiters = []
                self._done_callbacks = []
                self._condition = threading.Condition()
                self._lazy = False
        return object.__getattribute__(self, name)

    def _finish(self, raw: tuple) -> None:
        """Resolves the handle from a pushed completion, `(id, state, result, error,
        attempts)`."""
        if self.done():
            return
        self._final_state = raw[1]
        if raw[1] == "completed":
            try:
                value = loads_result(raw[2] or "null")
            except ValueError as err:
                self._resolve(None, TatzelwurmError(f"task {raw[0]}'s result is not JSON: {err}"))
                return
            self._resolve(value, None)
        else:
            self._resolve(None, _failure(raw))

    def _finish_late(self, value: Any) -> None:
        """Resolves the handle with a completed task's decoded result, the Future's way: the
        dispatcher's bulk resolution (pyext/src/dispatch.rs) found that the handle got a
        condition in the meantime."""
        if self.done():
            return
        self._final_state = "completed"
        self._resolve(value, None)

    def set_result(self, result: Any) -> None:
        """Resolves the handle with ``result`` (for the client; as ``Future.set_result``)."""
        self._resolve(result, None)

    def set_exception(self, exception: Optional[BaseException]) -> None:
        """Resolves the handle with ``exception`` (for the client; as ``Future.set_exception``)."""
        self._resolve(None, exception)

    def _resolve(self, value: Any, error: Optional[BaseException]) -> None:
        """Finishes the future with `value` or `error`, then tells the `as_completed` calls
        waiting for it. Without a condition nothing else can be waiting or registered (each of
        those makes the condition first), so setting the fields under `_LAZY` is all it takes;
        with one, Future's own set_result/set_exception wake its waiters and callbacks.
        Raises ``InvalidStateError`` if the handle is finished already, as Future does."""
        with _LAZY:
            quick = self._lazy
            if quick:
                if self._state in _DONE_STATES:
                    raise futures.InvalidStateError(f"{self._state}: {self!r}")
                if error is None:
                    self._result = value
                else:
                    self._exception = error
                self._state = _FINISHED
                queues, self._queues = self._queues, None
        if not quick:
            if error is None:
                super().set_result(value)
            else:
                super().set_exception(error)
            with _LAZY:
                queues, self._queues = self._queues, None
        if queues is not None:
            for arrived in queues if type(queues) is list else (queues,):
                arrived.put((self,))

    def _forget(self, arrived: "queue.SimpleQueue[Any]") -> None:
        """Stops putting this handle into `arrived`. The caller holds `_LAZY`."""
        queues = self._queues
        if queues is arrived:
            self._queues = None
        elif type(queues) is list and arrived in queues:
            queues.remove(arrived)

    # -- futures API, with the builtin TimeoutError ----------------------------------------
    def done(self) -> bool:
        """Whether the task finished (or the client gave up on it). No lock: the state is one
        attribute, written last when the handle is resolved."""
        return self._state in _DONE_STATES

    def result(self, timeout: Optional[float] = None) -> R:
        """The task's return value, waiting up to ``timeout`` seconds (builtin
        :class:`TimeoutError` when it runs out)."""
        if self._state == _FINISHED:
            # Resolved: its fields were written before the state; no condition needed.
            if self._exception is not None:
                raise self._exception
            return self._result  # type: ignore[no-any-return]
        try:
            return super().result(timeout)
        except _FUTURES_TIMEOUT:
            raise TimeoutError(
                f"task {self._task_id if self._task_id is not None else '(not yet added)'} "
                f"did not finish within {timeout} s"
            ) from None

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The task's error (None if it completed), waiting up to ``timeout`` seconds."""
        if self._state == _FINISHED:
            return self._exception
        try:
            return super().exception(timeout)
        except _FUTURES_TIMEOUT:
            raise TimeoutError(f"task did not finish within {timeout} s") from None

    def cancel(self) -> bool:
        """Returns False: a submitted task is not cancelled by its handle; use :meth:`kill`."""
        return False

    def __await__(self) -> Generator[Any, None, R]:
        """``await handle`` gives the result without blocking the event loop."""
        import asyncio  # here, not at the top: a program without asyncio does not load it

        return asyncio.wrap_future(self).__await__()

    # -- asking the coordinator ------------------------------------------------------------
    def state(self) -> str:
        """The task's state now, one of :data:`STATES` (``created``, ``blocked``,
        ``scheduled``, ``paused``, ``ready``, ``running``, ``waiting``, ``completed``,
        ``failed`` or ``killed``)."""
        if self._final_state is not None:
            return self._final_state
        return self.info().state

    def info(self) -> TaskInfo:
        """Everything the coordinator tells about the task, with its output."""
        return self._core.info(self.id)

    @overload
    def logs(self, follow: Literal[False] = False) -> TaskOutput: ...

    @overload
    def logs(self, follow: Literal[True]) -> "LogStream": ...

    def logs(self, follow: bool = False) -> "Union[TaskOutput, LogStream]":
        """The task's output. Without ``follow``: a :class:`TaskOutput`, the kept output of a
        finished task or what a running task has written so far. With ``follow=True``: a
        :class:`~tatzelwurm.LogStream` of :class:`~tatzelwurm.LogChunk` as the task writes them,
        ending when it finishes (its ``state`` then says how); close it (or use ``with``) to
        stop early. :class:`TaskPurged` for a purged task."""
        return self._core.logs(self.id, follow)

    def kill(self) -> Changed:
        """Ends the task if it is not finished; its handle then raises :class:`TaskKilled`."""
        return self._core.kill([self.id])

    def pause(self) -> Changed:
        """Holds the task (``created``, ``ready`` or ``scheduled``) as ``paused`` until
        :meth:`play`; a scheduled one keeps its start time."""
        return self._core.pause([self.id])

    def play(self) -> Changed:
        """Moves a ``created`` or ``paused`` task on: ``blocked`` while a task it runs after
        has not completed, else ``scheduled`` until its start time, else ``ready``."""
        return self._core.play([self.id])

    def __repr__(self) -> str:
        ident = self._task_id if self._task_id is not None else "?"
        if self.done():
            state = self._final_state or "failed"
        else:
            state = "pending"
        return f"<TaskHandle {ident} {state}>"


def as_completed(
    handles: Iterable["futures.Future[Any]"], timeout: Optional[float] = None
) -> Iterator[Any]:
    """Yields each handle once, as it finishes; raises the builtin :class:`TimeoutError` when
    ``timeout`` seconds pass first. Sends no request: completions are pushed."""
    fs = set(handles)
    if _LAZY_CONDITION and all(isinstance(f, TaskHandle) for f in fs):
        yield from _handles_as_completed(fs, timeout)
        return
    try:
        yield from futures.as_completed(fs, timeout)
    except _FUTURES_TIMEOUT:
        raise TimeoutError(
            f"not every task finished within {timeout} s; the rest are still running"
        ) from None


def _handles_as_completed(
    handles: "Set[TaskHandle[Any]]", timeout: Optional[float]
) -> Iterator["TaskHandle[Any]"]:
    """`as_completed` of task handles only: each pending handle puts itself into one queue
    when it finishes, so that no handle needs a condition, and the dispatcher puts each batch
    of handles it resolved as one list (`_native.Events.finish`), so a completion costs a
    share of one ``put`` and one ``get`` (the standard library's version locks every future's
    condition to install and remove a waiter, and wakes an event per completion)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    arrived: "queue.SimpleQueue[Sequence[TaskHandle[Any]]]" = queue.SimpleQueue()
    finished: List[TaskHandle[Any]] = []
    pending = 0
    with _LAZY:
        for handle in handles:
            if handle._state in _DONE_STATES:
                finished.append(handle)
                continue
            queues = handle._queues
            if queues is None:
                handle._queues = arrived
            elif type(queues) is list:
                queues.append(arrived)
            else:
                handle._queues = [queues, arrived]
            pending += 1
    try:
        yield from finished
        get = arrived.get
        while pending:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise queue.Empty
            batch = get(timeout=wait)
            pending -= len(batch)
            yield from batch
    except queue.Empty:
        raise TimeoutError(
            f"not every task finished within {timeout} s; the rest are still running"
        ) from None
    finally:
        if pending:
            with _LAZY:
                for handle in handles:
                    handle._forget(arrived)


class DoneAndNotDone(NamedTuple):
    """What :func:`wait` returns."""

    done: Set[Any]
    not_done: Set[Any]


def wait(
    handles: Iterable["futures.Future[Any]"],
    timeout: Optional[float] = None,
    return_when: str = ALL_COMPLETED,
) -> DoneAndNotDone:
    """Waits as ``concurrent.futures.wait`` does (``return_when``: FIRST_COMPLETED,
    FIRST_EXCEPTION or ALL_COMPLETED) and returns ``(done, not_done)``."""
    done, not_done = futures.wait(handles, timeout, return_when)
    return DoneAndNotDone(done, not_done)
