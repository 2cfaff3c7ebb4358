"""The synchronous client: one connection to the coordinator shared by every thread.

Threads:
- the caller's threads submit: a submit encodes its arguments (plain values in the extension,
  others with one ``json.dumps``: see ``serialize``), makes a handle and hands the task to the
  native pipeline, which queues it without waiting for the network (it blocks, with the GIL
  released, only while the send window is full); ``submit_many`` hands the extension all its
  items at once;
- the native side (a tokio runtime owned by the extension) sends everything queued as one add
  frame while earlier frames are in flight, and reconnects with backoff when the connection
  drops, re-sending unacknowledged adds under their keys and re-registering watches;
- one dispatcher thread per client pulls batches of events from the native side (the GIL
  released while it waits) and resolves handles: ``Added`` gives them their ids, ``Finished``
  (pushed by the coordinator, never polled) their results; the extension applies each batch
  to the handles in bulk (pyext/src/dispatch.rs), and Python resolves only what is left
  (failures, handles someone blocks on, refused adds);
- an event stream or a followed task's output is read by the thread that iterates it; a
  following one has a connection of its own (so closing it ends it on the coordinator, and a
  flood of events never delays the pipeline's answers). ``close()`` ends them all.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import deque
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Literal,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from . import _native
from .errors import InvalidRequest, SerializationError, TatzelwurmError, _native_error
from .events import EventStream
from .handle import (
    Changed,
    Purged,
    TaskHandle,
    TaskInfo,
    TaskOutput,
    _FINISHED,
    _LAZY,
    _PENDING,
    as_completed,
    wait,
)
from .logs import LogStream
from .options import check_options, check_schedule_options, merge_options, native_options
from .purge import before_ms, finished_states
from .queues import QueueInfo
from .schedules import ScheduleInfo, trigger
from .serialize import dumps_arguments, encode_item
from .task import Task, function_name
from .workers import WorkerInfo

if TYPE_CHECKING:
    import datetime

__all__ = ["Client", "default_client", "DEFAULT_ADDRESS"]

log = logging.getLogger("tatzelwurm")

R = TypeVar("R")

#: Where a client connects when neither an address nor ``TATZELWURM_COORDINATOR`` is given.
DEFAULT_ADDRESS = "127.0.0.1:5677"

#: A function to run: its import name, a function object, or an ``@task`` function.
Function = Union[str, Callable[..., Any], Task]

_EVENT_ADDED, _EVENT_ADD_FAILED, _EVENT_FINISHED, _EVENT_DISCONNECTED, _EVENT_RECONNECTED = range(5)


class _Core:
    """What every view of one client shares: the native connection, the handles waiting for
    their ids (by ticket) and for their completions (by task id), and the dispatcher thread."""

    def __init__(
        self,
        address: Optional[str],
        window: int,
        name: str,
        id_timeout: float,
        tls: Optional[bool] = None,
        tls_ca: Optional[str] = None,
    ) -> None:
        self.native = _native.Core.connect(address, name, window, tls, tls_ca)
        self.address: str = self.native.address
        self.window = window
        self.id_timeout = id_timeout
        self.lock = threading.Lock()
        #: Handles whose add is not acknowledged yet, by the pipeline's ticket.
        self.by_ticket: Dict[int, TaskHandle[Any]] = {}
        #: Handles waiting for their task to finish, by task id.
        self.by_id: Dict[int, TaskHandle[Any]] = {}
        #: Completions that came before the ``Added`` of their own add.
        self.early: Dict[int, tuple] = {}
        self.closed = False
        #: Event and output streams not yet closed, closed with the client.
        self.streams: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self.dispatcher = threading.Thread(
            target=self._dispatch, name=f"tatzelwurm-dispatcher {self.address}", daemon=True
        )
        self.dispatcher.start()
        _live.add(self)

    # -- submitting -------------------------------------------------------------------------
    def submit(self, function: str, args_json: str, kwargs_json: str, options: Any) -> TaskHandle[Any]:
        if options.waits_for_tasks:
            return self.add_now(function, [args_json], [kwargs_json], options)[0]
        handle: TaskHandle = TaskHandle(self)
        with self.lock:
            ticket = self.native.submit(function, args_json, kwargs_json, options)
            self.by_ticket[ticket] = handle
        return handle

    def try_submit(
        self, function: str, args_json: str, kwargs_json: str, options: Any
    ) -> Optional[TaskHandle[Any]]:
        if options.waits_for_tasks:
            return None  # its add is a request of its own: the caller waits in `submit`
        handle: TaskHandle = TaskHandle(self)
        with self.lock:
            ticket = self.native.try_submit(function, args_json, kwargs_json, options)
            if ticket is None:
                return None
            self.by_ticket[ticket] = handle
        return handle

    def submit_many(
        self,
        function: str,
        items: Iterable[Any],
        kwargs: Optional[Iterable[Dict[str, Any]]],
        options: Any,
    ) -> List[TaskHandle[Any]]:
        if not isinstance(items, (list, tuple)):
            items = list(items)
        kwargs_list = None if kwargs is None else list(kwargs)
        if kwargs_list is not None and len(kwargs_list) < len(items):
            raise ValueError(
                f"submit_many got {len(kwargs_list)} kwargs dicts for {len(items)} items; "
                "give one dict per item"
            )
        if not items:
            return []
        if options.waits_for_tasks:
            kws = kwargs_list if kwargs_list is not None else [None] * len(items)
            texts = [encode_item(i, item, kw) for i, (item, kw) in enumerate(zip(items, kws))]
            return self.add_now(function, [a for a, _ in texts], [k for _, k in texts], options)
        # Encoded and queued by the extension (Python's encoder only for values it does not
        # write), before the handles exist: a refused item raises here and sends nothing.
        with self.lock:
            first = self.native.submit_many(function, items, kwargs_list, options, encode_item)
            handles: List[TaskHandle[Any]] = [TaskHandle(self) for _ in items]
            self.by_ticket.update(zip(range(first, first + len(handles)), handles))
        return handles

    def add_now(
        self, function: str, args: List[str], kwargs: List[str], options: Any
    ) -> List[TaskHandle[Any]]:
        """Adds tasks that run ``after`` others in a request of their own, then watches them.

        An ``after`` id that does not exist fails the whole add with :class:`UnknownTask`: sent
        alone, it fails only these tasks (raised here, with the coordinator's sentence) and not
        the other submits a pipelined frame would carry with them. A chain waits for each
        link's id anyway, so the round trip costs a chain little.
        """
        ids = self.native.add(function, args, kwargs, options)
        handles: List[TaskHandle[Any]] = []
        fresh: List[int] = []
        with self.lock:
            for task_id in ids:
                handle = self.by_id.get(task_id)
                if handle is None:
                    handle = self.by_id[task_id] = TaskHandle(self, task_id)
                    fresh.append(task_id)
                handles.append(handle)
        try:
            # Registered first: a completion pushed right after the watch finds its handle.
            self.native.watch(fresh)
        except BaseException:
            with self.lock:
                for task_id in fresh:
                    self.by_id.pop(task_id, None)
            raise
        return handles

    def watch(self, task_id: int) -> TaskHandle[Any]:
        with self.lock:
            handle = self.by_id.get(task_id)
            if handle is not None:
                return handle
            handle = TaskHandle(self, task_id)
            self.by_id[task_id] = handle
        try:
            self.native.watch([task_id])
        except BaseException:
            with self.lock:
                if self.by_id.get(task_id) is handle:
                    del self.by_id[task_id]
            raise
        return handle

    # -- requests -------------------------------------------------------------------------
    def info(self, task_id: int) -> TaskInfo:
        return TaskInfo._from_native(self.native.show(task_id))

    def kill(self, ids: Optional[List[int]]) -> Changed:
        changed, unchanged = self.native.kill(ids)
        return Changed(changed, unchanged)

    def play(self, ids: Optional[List[int]]) -> Changed:
        changed, unchanged = self.native.play(ids)
        return Changed(changed, unchanged)

    def pause(self, ids: Optional[List[int]]) -> Changed:
        changed, unchanged = self.native.pause(ids)
        return Changed(changed, unchanged)

    def logs(self, task_id: int, follow: bool) -> "Union[TaskOutput, LogStream]":
        native = self.native.logs(task_id, follow)
        stream = _started(LogStream(native, self), native)
        return stream if follow else stream.output()

    def flush(self, timeout: Optional[float]) -> None:
        if not self.native.flush(timeout):
            raise TimeoutError(
                f"the coordinator at {self.address} did not acknowledge every add within "
                f"{timeout} s"
            )

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in list(self.streams):
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - the connection below closes anyway
                pass
        self.native.close()
        if threading.current_thread() is not self.dispatcher:
            self.dispatcher.join(5)
        with self.lock:
            waiting = list(self.by_ticket.values()) + list(self.by_id.values())
            self.by_ticket.clear()
            self.by_id.clear()
        for handle in waiting:
            if not handle.done():
                ident = handle._task_id
                what = f"task {ident}" if ident is not None else "a task not yet added"
                handle.set_exception(
                    TatzelwurmError(
                        f"the client was closed before {what} finished; read it with "
                        "Client().get(id) from a new client"
                    )
                )
        _live.discard(self)

    # -- the dispatcher thread ------------------------------------------------------------
    def _dispatch(self) -> None:
        native = self.native
        while True:
            try:
                events = native.next_events(4096, 0.25)
            except BaseException as err:  # noqa: BLE001 - a dispatcher must not die silently
                log.error("tatzelwurm dispatcher stopped: %s", err)
                return
            if events is None:
                return
            if len(events):
                try:
                    self._apply(events)
                except Exception:  # noqa: BLE001 - one bad batch must not stop the others
                    log.exception("tatzelwurm dispatcher could not apply a batch of events")

    def _apply(self, events: Any) -> None:
        """Applies one `_native.Events` batch: ids and results reach their handles in the
        extension (see pyext/src/dispatch.rs); what it hands back is resolved here."""
        failed: List[Tuple[TaskHandle[Any], BaseException]] = []
        with self.lock:
            slow, notes = events.take(self.by_ticket, self.by_id, self.early)
            for event in notes:
                kind = event[0]
                if kind == _EVENT_ADD_FAILED:
                    _, first, count, class_name, message = event
                    error = _native_error(class_name, message)
                    take = self.by_ticket.pop
                    for ticket in range(first, first + count):
                        handle = take(ticket, None)
                        if handle is not None:
                            failed.append((handle, error))
                elif kind == _EVENT_DISCONNECTED:
                    log.warning("%s", event[1])
                elif kind == _EVENT_RECONNECTED:
                    log.info("reconnected to the coordinator at %s", self.address)
            if self.early and not self.by_ticket:
                self.early.clear()
        # Outside the lock: resolving runs the handles' callbacks.
        for handle, refusal in failed:
            handle._set_add_error(refusal)
        for handle, value in events.finish(_LAZY, _PENDING, _FINISHED):
            handle._finish_late(value)
        for handle, raw in slow:
            handle._finish(raw)


#: Cores not yet closed, so that an exiting interpreter flushes and closes them.
_live: "weakref.WeakSet[_Core]" = weakref.WeakSet()


class _Forked:
    """Stands in for the native connection of a client made before a fork, in the child: the
    connection's threads stayed in the parent, so every use says what to do instead of
    hanging. (A new client in the child works.)"""

    def __init__(self, address: str) -> None:
        self._message = (
            f"this client of {address} was made in the parent process before a fork; make a "
            "new tatzelwurm.Client in the child"
        )

    def __getattr__(self, name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            if name in ("close", "next_events"):
                return None
            raise TatzelwurmError(self._message)

        return refuse


def _after_fork_in_child() -> None:
    global _default
    for core in list(_live):
        core.native = _Forked(core.address)  # type: ignore[assignment]
        core.closed = True
        core.streams = weakref.WeakSet()
        core.lock = threading.Lock()
        core.by_ticket.clear()
        core.by_id.clear()
    _live.clear()
    _default = None
    global _default_lock
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_all() -> None:
    for core in list(_live):
        try:
            core.native.flush(5.0)
            core.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Client:
    """A connection to the coordinator, shared by every thread that uses it.

    ``address`` is ``host:port``; without it, ``$TATZELWURM_COORDINATOR``, else
    ``127.0.0.1:5677``. The token comes from ``$TATZELWURM_TOKEN``. Raises
    :class:`CoordinatorUnavailable` within 2 s when nothing answers there.

    ``tls=True`` talks TLS to a coordinator started with ``--tls-cert``/``--tls-key``, checking
    its certificate against the system's roots, or only against the CA certificate in the PEM
    file ``tls_ca`` (which implies ``tls``). Without either, ``$TATZELWURM_TLS=1`` and
    ``$TATZELWURM_TLS_CA`` decide, as for the command line; ``tls=False`` turns TLS off whatever
    they say.

    ``window`` bounds the tasks submitted but not yet acknowledged: a submit blocks (releasing
    the GIL) while it is full. ``id_timeout`` bounds how long ``handle.id`` waits for the
    acknowledgement. Use it as a context manager: leaving it flushes and closes.
    """

    def __init__(
        self,
        address: Optional[str] = None,
        *,
        window: int = 50_000,
        name: Optional[str] = None,
        id_timeout: float = 60.0,
        tls: Optional[bool] = None,
        tls_ca: "Union[None, str, os.PathLike[str]]" = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if tls is not None and not isinstance(tls, bool):
            raise InvalidRequest(
                f"tls must be True, False or None (from the environment), not {tls!r}"
            )
        if tls is False and tls_ca is not None:
            raise InvalidRequest(
                "tls_ca names a CA to trust for TLS, so it cannot go with tls=False"
            )
        client_name = name or f"python:{os.getpid()}"
        ca = None if tls_ca is None else os.fspath(tls_ca)
        self._core = _Core(address, window, client_name, id_timeout, tls, ca)
        self._options: Dict[str, Any] = {}
        self._native_opts = native_options({})
        self._task_opts: Dict[Task, Any] = {}

    @property
    def address(self) -> str:
        """The coordinator's address, ``host:port``."""
        return self._core.address

    # -- views ----------------------------------------------------------------------------
    def options(
        self,
        *,
        retries: Optional[int] = None,
        backoff: Optional[float] = None,
        timeout: Optional[float] = None,
        at_most_once: Optional[bool] = None,
        crash_limit: Optional[int] = None,
        play: Optional[bool] = None,
        queue: Optional[str] = None,
        priority: Optional[int] = None,
        delay: "Union[None, float, str, datetime.timedelta]" = None,
        at: "Union[None, float, str, datetime.datetime]" = None,
        after: "Union[None, int, TaskHandle[Any], Iterable[Union[int, TaskHandle[Any]]]]" = None,
    ) -> "Client":
        """A view of this client on the same connection whose submits carry these options.

        The policy: ``retries``: further attempts after a failure; ``backoff``: seconds before
        the first retry (doubling, with jitter); ``timeout``: seconds an attempt may run;
        ``at_most_once``: never start it twice (a lost worker fails it); ``crash_limit``:
        attempts that may be lost with their worker; ``play``: start at once (True, the
        default) or ``created``, waiting for :meth:`play`.

        Where, when and after what: ``queue``: the queue it waits in (``"default"``), run only
        by workers serving it; ``priority``: -100 to 100 (0), higher first, first in first out
        within one; ``delay``: seconds, a ``timedelta`` or a span as the command line writes it
        (``"1h30m"``) from when it is added before it may run, ``scheduled`` until then;
        ``at``: the moment it may run, an aware ``datetime``, a Unix timestamp in seconds or RFC
        3339 text (``"2026-12-01T09:00:00Z"``); a naive datetime is refused (its moment is
        unclear), a moment in the past warns and runs now; ``after``: handles or ids of tasks that must complete
        first, ``blocked`` until then; if one fails or is killed, this task fails with
        ``DependencyFailed``. A submit with ``after`` is sent at once on its own, so an id that
        does not exist raises :class:`UnknownTask` from ``submit``. A handle in ``after`` is
        asked for its id, which waits until its add is durable.

        Bad values raise :class:`InvalidRequest` here, with the sentence the command line
        prints. The task's own keyword arguments are never read as options.
        """
        given = {
            "retries": retries,
            "backoff": backoff,
            "timeout": timeout,
            "at_most_once": at_most_once,
            "crash_limit": crash_limit,
            "play": play,
            "queue": queue,
            "priority": priority,
            "delay": delay,
            "at": at,
            "after": after,
        }
        return self._view({k: v for k, v in given.items() if v is not None}, stacklevel=3)

    def _view(self, given: Dict[str, Any], stacklevel: int) -> "Client":
        """A view with ``given`` options over this one's (``stacklevel`` for a warning about an
        ``at`` in the past, as if this method warned)."""
        merged = merge_options(self._options, check_options(given, stacklevel=stacklevel + 1))
        view = Client.__new__(Client)
        view._core = self._core
        view._options = merged
        view._native_opts = native_options(merged)
        view._task_opts = {}
        return view

    def _resolve(self, function: Function) -> Tuple[str, Any]:
        if type(function) is str:
            return function, self._native_opts
        if isinstance(function, Task):
            if not function.task_options:
                return function.name, self._native_opts
            opts = self._task_opts.get(function)
            if opts is None:
                merged = merge_options(function.task_options, self._options)
                opts = self._task_opts[function] = native_options(merged)
            return function.name, opts
        return function_name(function), self._native_opts

    # -- submitting -----------------------------------------------------------------------
    def submit(self, function: Function, /, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Submits one task and returns its handle at once (the add travels with others in the
        next frame). ``function`` is ``"package.module:function"``, ``"/abs/file.py:function"``,
        a module-level function or an ``@task`` function. Arguments must be JSON
        (:class:`SerializationError` otherwise, and nothing is sent)."""
        name, opts = self._resolve(function)
        args_json, kwargs_json = dumps_arguments(args, kwargs)
        return self._core.submit(name, args_json, kwargs_json, opts)

    def submit_many(
        self,
        function: Function,
        items: Iterable[Any],
        *,
        kwargs: Optional[Iterable[Dict[str, Any]]] = None,
    ) -> List[TaskHandle[Any]]:
        """Submits one task per item in one frame (as few as the window allows) and returns
        their handles in order. A tuple item is the positional arguments, any other item the one
        argument; ``kwargs`` (one dict per item) gives keyword arguments."""
        name, opts = self._resolve(function)
        return self._core.submit_many(name, items, kwargs, opts)

    def map(
        self,
        function: Function,
        *iterables: Iterable[Any],
        window: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> Iterator[Any]:
        """Runs ``function`` on each item (zipped across ``iterables``) and yields the results
        in input order. Lazy and bounded: at most ``window`` tasks (default 10,000) are
        submitted and not yet yielded. A failed task raises its :class:`TaskFailed` where its
        result would be; ``timeout`` bounds each wait."""
        limit = window if window is not None else min(10_000, self._core.window)
        if limit < 1:
            raise ValueError("window must be at least 1")
        submit = self.submit

        def results() -> Iterator[Any]:
            pending: Deque[TaskHandle[Any]] = deque()
            for items in zip(*iterables):
                pending.append(submit(function, *items))
                if len(pending) >= limit:
                    yield pending.popleft().result(timeout)
            while pending:
                yield pending.popleft().result(timeout)

        return results()

    def flush(self, timeout: Optional[float] = None) -> None:
        """Returns once everything submitted so far is durable (acknowledged by the
        coordinator); :class:`TimeoutError` after ``timeout`` seconds."""
        self._core.flush(timeout)

    # -- reading and steering -------------------------------------------------------------
    def get(self, task_id: int) -> TaskHandle[Any]:
        """A handle on an existing task, from any process and after any restart; its result is
        pushed when the task finishes (at once if it has). :class:`UnknownTask` at once for an
        id that never existed."""
        return self._core.watch(int(task_id))

    def info(self, task_id: int) -> TaskInfo:
        """Everything the coordinator tells about one task, with its output."""
        return self._core.info(int(task_id))

    def list(
        self,
        state: Union[None, str, Sequence[str]] = None,
        limit: Optional[int] = None,
        after: Optional[int] = None,
        queue: Optional[str] = None,
    ) -> List[TaskInfo]:
        """Tasks in ``state`` (a state name or several; all when None) with ids above ``after``,
        in id order, at most ``limit`` of them (all when None), of ``queue`` only when given,
        without their output. The coordinator answers long listings in pages; ``after`` the
        last id of one listing gives the next."""
        if state is None:
            states: List[str] = []
        elif isinstance(state, str):
            states = [state]
        else:
            states = list(state)
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 (or None for all), not {limit}")
        raw = self._core.native.list(states, limit or 0, after, queue)
        return [TaskInfo._from_native(r) for r in raw]

    def workers(self) -> List[WorkerInfo]:
        """The connected workers, with what their slots use (``usage``: memory, CPU) as each
        last said."""
        return [WorkerInfo._from_native(w) for w in self._core.native.workers()]

    def drain_worker(self, name: Union[str, int]) -> List[WorkerInfo]:
        """Drains the workers of this name (or connection id), as SIGTERM on their host does:
        they get nothing new, finish what they hold, and exit. Returns them (``draining``
        set); :class:`UnknownWorker` when no connected worker has that name."""
        return [WorkerInfo._from_native(w) for w in self._core.native.drain_worker(str(name))]

    # -- events, output, retention --------------------------------------------------------
    def events(
        self,
        since: "Union[None, int, Literal['now']]" = None,
        follow: bool = False,
        task: "Union[None, int, TaskHandle[Any]]" = None,
        queue: Optional[str] = None,
    ) -> EventStream:
        """The event log as an iterator of :class:`Event`, in increasing ``seq``.

        ``since``: start after this sequence number (the last one you saw: nothing is missed,
        nothing seen twice), or ``"now"`` for only events still to come; None starts at the
        oldest event kept. ``follow``: after the events there are, wait for new ones until the
        iterator is closed (``close()``, a ``with`` block, ctrl-c, or this client's
        ``close()``). ``task`` or ``queue``: only the events of that task, or of that queue's
        tasks.

        A following iterator has a connection of its own, made (and the request sent) before
        this returns, so :class:`CoordinatorUnavailable` is raised here; it comes back by itself
        after a drop or a coordinator restart and goes on after the last event it yielded.
        With ``since="now"`` this returns once the coordinator has subscribed the iterator, so
        every event of what you do next (a submit right after, say) reaches it.

        The coordinator's refusals come from the first read: :class:`EventsGone` when ``since``
        is older than the oldest event kept; a reader that falls far behind is dropped with
        :class:`EventsLagged` (its ``last_seq`` says where to go on)."""
        native = self._core.native.events(*_event_query(since, follow, task, queue))
        return _started(EventStream(native, self._core), native)

    @overload
    def logs(
        self, task: "Union[int, TaskHandle[Any]]", follow: Literal[False] = False
    ) -> TaskOutput: ...

    @overload
    def logs(self, task: "Union[int, TaskHandle[Any]]", follow: Literal[True]) -> LogStream: ...

    def logs(
        self, task: "Union[int, TaskHandle[Any]]", follow: bool = False
    ) -> "Union[TaskOutput, LogStream]":
        """A task's output, as :meth:`TaskHandle.logs` gives it (without ``follow``: the text
        so far; with it, an iterator of chunks until the task finishes)."""
        task_id = task.id if isinstance(task, TaskHandle) else int(task)
        return self._core.logs(task_id, bool(follow))

    def purge(
        self,
        *tasks: Union[int, TaskHandle[Any]],
        finished_before: Any = None,
        states: Union[None, str, Sequence[str]] = None,
    ) -> Purged:
        """Removes finished tasks with their results and output, durably: these tasks (handles
        or ids), or every task that finished before ``finished_before`` (an age: seconds, a
        ``timedelta`` or a span such as ``"7d"``; or an aware ``datetime``), in one of
        ``states`` (``completed``, ``failed``, ``killed``; all three when None).

        Tasks that are not finished are left, and named in ``unchanged`` with their state
        (None for one purged before). An id never handed out raises :class:`UnknownTask` and
        purges nothing; a purged id later raises :class:`TaskPurged`.
        """
        if tasks and finished_before is not None:
            raise InvalidRequest("purge: give tasks or finished_before, not both")
        if finished_before is None:
            if states is not None:
                raise InvalidRequest(
                    "purge: states goes with finished_before; named tasks are purged whatever "
                    "their finished state"
                )
            if not tasks:
                raise InvalidRequest(
                    "purge: name the tasks (handles or ids), or give finished_before"
                )
            ids = [t.id if isinstance(t, TaskHandle) else int(t) for t in tasks]
            purged, unchanged = self._core.native.purge_ids(ids)
        else:
            purged, unchanged = self._core.native.purge_before(
                before_ms(finished_before), finished_states(states)
            )
        return Purged(purged, unchanged)

    def kill(self, *tasks: Union[int, TaskHandle[Any]], all: bool = False) -> Changed:
        """Ends these tasks (handles or ids) if they are not finished, or every unfinished task
        with ``all=True``. Their handles then raise :class:`TaskKilled`."""
        return self._core.kill(_ids(tasks, all, "kill"))

    def play(self, *tasks: Union[int, TaskHandle[Any]], all: bool = False) -> Changed:
        """Moves these ``created`` (submitted with ``play=False``) or ``paused`` tasks on, or
        every such task with ``all=True``: to ``blocked`` while a task they run after has not
        completed, else to ``scheduled`` while their start time is ahead, else to ``ready``."""
        return self._core.play(_ids(tasks, all, "play"))

    def pause(self, *tasks: Union[int, TaskHandle[Any]], all: bool = False) -> Changed:
        """Holds these ``created``, ``ready`` or ``scheduled`` tasks as ``paused`` until
        :meth:`play`, or every such task with ``all=True``; a scheduled task keeps its start
        time. Running tasks are not paused (``unchanged`` names them with their state)."""
        return self._core.pause(_ids(tasks, all, "pause"))

    # -- queues ---------------------------------------------------------------------------
    def queues(self) -> List[QueueInfo]:
        """Every queue that has tasks, settings or workers, by name, with how many of its tasks
        are in each state and which workers serve it."""
        return [QueueInfo._from_native(q) for q in self._core.native.queues()]

    def pause_queue(self, name: str) -> QueueInfo:
        """Dispatches nothing new from queue ``name`` until :meth:`resume_queue`; its running
        tasks go on. Durable. :class:`UnknownQueue` for a queue nothing names."""
        return QueueInfo._from_native(self._core.native.change_queue(name, "pause", 0))

    def resume_queue(self, name: str) -> QueueInfo:
        """Dispatches from queue ``name`` again. :class:`UnknownQueue` for a queue nothing
        names."""
        return QueueInfo._from_native(self._core.native.change_queue(name, "resume", 0))

    def limit_queue(self, name: str, limit: Optional[int]) -> QueueInfo:
        """Lets at most ``limit`` tasks of queue ``name`` be assigned to workers at once, across
        all workers (for work that shares a scarce resource); 0 or None removes the limit.
        Durable. :class:`UnknownQueue` for a queue nothing names."""
        if limit is None:
            limit = 0
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit < 2**32:
            raise InvalidRequest(
                f"a queue's limit must be a whole number of tasks >= 0 (0 or None removes it), "
                f"not {limit!r}"
            )
        return QueueInfo._from_native(self._core.native.change_queue(name, "limit", limit))

    # -- schedules ------------------------------------------------------------------------
    def schedule(
        self,
        name: str,
        function: Function,
        *,
        every: "Union[None, float, str, datetime.timedelta]" = None,
        cron: Optional[str] = None,
        tz: Optional[str] = None,
        args: Sequence[Any] = (),
        kwargs: Optional[Dict[str, Any]] = None,
        **options: Any,
    ) -> ScheduleInfo:
        """Adds schedule ``name``: every ``every`` seconds (at least 1; or a ``timedelta``, or a
        span such as ``"5m"``), or at the times of the five-field ``cron`` line (read in UTC, or in time zone ``tz``
        such as ``"Europe/Berlin"``), it adds a task calling ``function(*args, **kwargs)``.

        ``options`` are the task options a schedule's tasks can have: ``retries``, ``backoff``,
        ``timeout``, ``at_most_once``, ``crash_limit``, ``queue``, ``priority`` (over this
        view's and the ``@task``'s own). Durable: firings missed while the coordinator was down
        run once when it starts. :class:`ScheduleExists` if the name is taken; a bad cron line
        or time zone raises :class:`InvalidRequest` naming the field at fault.
        """
        every_ms, cron_line, zone = trigger(every, cron, tz)
        own = check_schedule_options(options)
        if isinstance(function, Task):
            inherited = merge_options(function.task_options, self._options)
        else:
            inherited = dict(self._options)
        inherited.pop("play", None)
        for key in ("delay", "at", "after"):
            if inherited.get(key):
                raise InvalidRequest(
                    f"this client view (or task) carries the option {key!r}, which a schedule's "
                    "tasks cannot have; make the schedule from a client without it"
                )
            inherited.pop(key, None)
        merged = merge_options(inherited, own)
        args_json, kwargs_json = dumps_arguments(tuple(args), kwargs)
        raw = self._core.native.add_schedule(
            name,
            every_ms,
            cron_line,
            zone,
            function_name(function),
            args_json,
            kwargs_json,
            native_options(merged),
        )
        return ScheduleInfo._from_native(raw)

    def schedules(self) -> List[ScheduleInfo]:
        """Every schedule, by name."""
        return [ScheduleInfo._from_native(r) for r in self._core.native.schedules(None)]

    def schedule_info(self, name: str) -> ScheduleInfo:
        """Schedule ``name``, with its latest tasks; :class:`UnknownSchedule` if there is none."""
        return ScheduleInfo._from_native(self._core.native.schedules(name)[0])

    def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stops schedule ``name`` firing until :meth:`resume_schedule`. Durable."""
        return ScheduleInfo._from_native(self._core.native.change_schedule(name, "pause"))

    def resume_schedule(self, name: str) -> ScheduleInfo:
        """Lets schedule ``name`` fire again, from its next time after now (missed times are
        not made up)."""
        return ScheduleInfo._from_native(self._core.native.change_schedule(name, "resume"))

    def remove_schedule(self, name: str) -> ScheduleInfo:
        """Forgets schedule ``name`` and returns it as it was; the tasks it added stay."""
        return ScheduleInfo._from_native(self._core.native.change_schedule(name, "remove"))

    def as_completed(
        self, handles: Iterable[TaskHandle[Any]], timeout: Optional[float] = None
    ) -> Iterator[TaskHandle[Any]]:
        """The same as :func:`tatzelwurm.as_completed`."""
        return as_completed(handles, timeout)

    def wait(self, handles: Iterable[TaskHandle[Any]], timeout: Optional[float] = None) -> Any:
        """The same as :func:`tatzelwurm.wait`."""
        return wait(handles, timeout)

    # -- closing --------------------------------------------------------------------------
    def close(self) -> None:
        """Closes the connection (of every view of this client). Handles still waiting raise
        an error saying so; the tasks themselves go on."""
        self._core.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()

    def __repr__(self) -> str:
        return f"<tatzelwurm.Client {self.address}{' ' + repr(self._options) if self._options else ''}>"


S = TypeVar("S", EventStream, LogStream)


def _started(stream: S, native: Any) -> S:
    """``stream`` once its start is over (a following one's own connection made and its
    request sent), waiting with the GIL released; a failed start (or a ctrl-c meanwhile)
    closes it and raises."""
    try:
        native.ready()
    except BaseException:
        stream.close()
        raise
    return stream


def _event_query(
    since: Any, follow: Any, task: Any, queue: Optional[str]
) -> Tuple[Optional[int], bool, Optional[int], Optional[str]]:
    """The native form of an events request, checked: ``since`` as a number (-1 for
    ``"now"``), the task as an id."""
    if since == "now":
        since = -1
    elif since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise InvalidRequest(
            f"since must be a sequence number >= 0, 'now' or None (the oldest kept), not {since!r}"
        )
    if queue is not None:
        _native.check_queue_name(queue)
    task_id = None if task is None else (task.id if isinstance(task, TaskHandle) else int(task))
    return since, bool(follow), task_id, queue


def _ids(tasks: Sequence[Union[int, TaskHandle[Any]]], all: bool, verb: str) -> Optional[List[int]]:
    if all:
        if tasks:
            raise ValueError(f"{verb}: give tasks or all=True, not both")
        return None
    if not tasks:
        raise ValueError(f"{verb}: name the tasks (handles or ids), or pass all=True")
    return [t.id if isinstance(t, TaskHandle) else int(t) for t in tasks]


_default: Optional[Client] = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The client ``@task`` functions submit through: made on first use from
    ``$TATZELWURM_COORDINATOR`` (or 127.0.0.1:5677)."""
    global _default
    with _default_lock:
        if _default is None or _default._core.closed:
            _default = Client()
        return _default
