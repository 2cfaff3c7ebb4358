"""The asyncio client: the same methods as :class:`Client`, as coroutines.

A submit awaits only when the send window is full (then a thread waits for room, so the event
loop never blocks), or when it runs ``after`` other tasks (its add is a request of its own);
requests run in the loop's default executor with the GIL released inside.
Handles are the same :class:`TaskHandle` objects: ``await handle`` gives the result.

The event log (``events``) and a task's followed output (``follow_logs``) are async iterators,
each read in a thread of its own (so a long follow never holds the default executor).
"""

from __future__ import annotations

import asyncio
import functools
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    TypeVar,
    Union,
)
from collections import deque

from .client import Client, Function, _event_query
from .events import AsyncEventStream
from .handle import Changed, Purged, TaskHandle, TaskInfo, TaskOutput
from .logs import AsyncLogStream
from .workers import WorkerInfo
from .queues import QueueInfo
from .schedules import ScheduleInfo
from .serialize import dumps_arguments

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """A coroutine face of :class:`Client`: ``async with AsyncClient() as ac: h = await
    ac.submit(fn, 1, 2); print(await h)``.

    The arguments are those of :class:`Client`. The connection is made by ``async with`` or
    ``await AsyncClient.connect(...)``, off the event loop.
    """

    def __init__(
        self,
        address: Optional[str] = None,
        *,
        window: int = 50_000,
        name: Optional[str] = None,
        id_timeout: float = 60.0,
        tls: Optional[bool] = None,
        tls_ca: Any = None,
        _client: Optional[Client] = None,
    ) -> None:
        self._settings: Dict[str, Any] = dict(
            address=address,
            window=window,
            name=name,
            id_timeout=id_timeout,
            tls=tls,
            tls_ca=tls_ca,
        )
        self._client: Optional[Client] = _client

    @classmethod
    async def connect(
        cls,
        address: Optional[str] = None,
        *,
        window: int = 50_000,
        name: Optional[str] = None,
        id_timeout: float = 60.0,
        tls: Optional[bool] = None,
        tls_ca: Any = None,
    ) -> "AsyncClient":
        """A connected client (:class:`CoordinatorUnavailable` within 2 s if nothing answers)."""
        ac = cls(
            address, window=window, name=name, id_timeout=id_timeout, tls=tls, tls_ca=tls_ca
        )
        await ac._connect()
        return ac

    async def _connect(self) -> None:
        if self._client is None:
            settings = self._settings
            self._client = await _run(
                functools.partial(
                    Client,
                    settings["address"],
                    window=settings["window"],
                    name=settings["name"],
                    id_timeout=settings["id_timeout"],
                    tls=settings["tls"],
                    tls_ca=settings["tls_ca"],
                )
            )

    @property
    def client(self) -> Client:
        """The synchronous client underneath (same connection)."""
        if self._client is None:
            raise RuntimeError("the AsyncClient is not connected; use `async with` or connect()")
        return self._client

    @property
    def address(self) -> str:
        """The coordinator's address."""
        return self.client.address

    def options(self, **options: Any) -> "AsyncClient":
        """A view on the same connection whose submits carry these options (see
        :meth:`Client.options`: the policy, ``play``, ``queue``, ``priority``, ``delay``,
        ``at``, ``after``). Handles in ``after`` are asked for their ids, which blocks until
        their adds are durable: await them first (``await ac.flush()``) inside a busy loop."""
        given = {k: v for k, v in options.items() if v is not None}
        return AsyncClient(_client=self.client._view(given, stacklevel=3))

    async def submit(self, function: Function, /, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Submits one task; awaits only while the send window is full."""
        client = self.client
        name, opts = client._resolve(function)
        args_json, kwargs_json = dumps_arguments(args, kwargs)
        core = client._core
        handle = core.try_submit(name, args_json, kwargs_json, opts)
        if handle is None:
            handle = await _run(functools.partial(core.submit, name, args_json, kwargs_json, opts))
        return handle

    async def submit_many(
        self,
        function: Function,
        items: Iterable[Any],
        *,
        kwargs: Optional[Iterable[Dict[str, Any]]] = None,
    ) -> List[TaskHandle[Any]]:
        """See :meth:`Client.submit_many`."""
        items = list(items)
        return await _run(functools.partial(self.client.submit_many, function, items, kwargs=kwargs))

    async def map(
        self,
        function: Function,
        *iterables: Iterable[Any],
        window: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> AsyncIterator[Any]:
        """Yields the results in input order, at most ``window`` tasks in flight."""
        limit = window if window is not None else min(10_000, self.client._core.window)
        pending: Deque[TaskHandle[Any]] = deque()
        for items in zip(*iterables):
            pending.append(await self.submit(function, *items))
            if len(pending) >= limit:
                yield await asyncio.wait_for(asyncio.wrap_future(pending.popleft()), timeout)
        while pending:
            yield await asyncio.wait_for(asyncio.wrap_future(pending.popleft()), timeout)

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Returns once everything submitted so far is durable."""
        await _run(functools.partial(self.client.flush, timeout))

    async def get(self, task_id: int) -> TaskHandle[Any]:
        """A handle on an existing task; :class:`UnknownTask` for an id that never existed."""
        return await _run(functools.partial(self.client.get, task_id))

    async def info(self, task_id: int) -> TaskInfo:
        """Everything the coordinator tells about one task, with its output."""
        return await _run(functools.partial(self.client.info, task_id))

    async def list(
        self,
        state: Union[None, str, Sequence[str]] = None,
        limit: Optional[int] = None,
        after: Optional[int] = None,
        queue: Optional[str] = None,
    ) -> List[TaskInfo]:
        """See :meth:`Client.list`."""
        return await _run(functools.partial(self.client.list, state, limit, after, queue))

    async def workers(self) -> List[WorkerInfo]:
        """The connected workers."""
        return await _run(self.client.workers)

    async def drain_worker(self, name: Union[str, int]) -> List[WorkerInfo]:
        """See :meth:`Client.drain_worker`."""
        return await _run(functools.partial(self.client.drain_worker, name))

    def events(
        self,
        since: Union[None, int, str] = None,
        follow: bool = False,
        task: Union[None, int, TaskHandle[Any]] = None,
        queue: Optional[str] = None,
    ) -> AsyncEventStream:
        """The event log as an async iterator (``async for event in ac.events(...)``); the
        arguments are those of :meth:`Client.events`. ``async with ac.events(...) as events``
        waits until a following stream's connection is made and its request sent (so
        ``since="now"`` means from there), and closes it at the end; without it, the first
        read waits for that, and ``aclose()`` stops it early. Cancelling a read loses no
        event."""
        client = self.client
        native = client._core.native.events(*_event_query(since, follow, task, queue))
        return AsyncEventStream(native, client._core)

    async def logs(self, task: Union[int, TaskHandle[Any]]) -> TaskOutput:
        """A task's output so far (all of it once finished), as :meth:`TaskHandle.logs`."""
        return await _run(functools.partial(self.client.logs, task))

    def follow_logs(self, task: Union[int, TaskHandle[Any]]) -> AsyncLogStream:
        """A task's output as an async iterator of :class:`LogChunk`, as it is written, until
        the task finishes (the stream's ``state`` then says how). A handle is asked for its id,
        which waits until its add is durable: await ``flush()`` first inside a busy loop."""
        client = self.client
        task_id = task.id if isinstance(task, TaskHandle) else int(task)
        return AsyncLogStream(client._core.native.logs(task_id, True), client._core)

    async def purge(
        self,
        *tasks: Union[int, TaskHandle[Any]],
        finished_before: Any = None,
        states: Union[None, str, Sequence[str]] = None,
    ) -> Purged:
        """See :meth:`Client.purge`."""
        return await _run(
            functools.partial(
                self.client.purge, *tasks, finished_before=finished_before, states=states
            )
        )

    async def kill(self, *tasks: Union[int, TaskHandle[Any]], all: bool = False) -> Changed:
        """See :meth:`Client.kill`."""
        return await _run(functools.partial(self.client.kill, *tasks, all=all))

    async def play(self, *tasks: Union[int, TaskHandle[Any]], all: bool = False) -> Changed:
        """See :meth:`Client.play`."""
        return await _run(functools.partial(self.client.play, *tasks, all=all))

    async def pause(self, *tasks: Union[int, TaskHandle[Any]], all: bool = False) -> Changed:
        """See :meth:`Client.pause`."""
        return await _run(functools.partial(self.client.pause, *tasks, all=all))

    async def queues(self) -> List[QueueInfo]:
        """See :meth:`Client.queues`."""
        return await _run(self.client.queues)

    async def pause_queue(self, name: str) -> QueueInfo:
        """See :meth:`Client.pause_queue`."""
        return await _run(functools.partial(self.client.pause_queue, name))

    async def resume_queue(self, name: str) -> QueueInfo:
        """See :meth:`Client.resume_queue`."""
        return await _run(functools.partial(self.client.resume_queue, name))

    async def limit_queue(self, name: str, limit: Optional[int]) -> QueueInfo:
        """See :meth:`Client.limit_queue`."""
        return await _run(functools.partial(self.client.limit_queue, name, limit))

    async def schedule(
        self,
        name: str,
        function: Function,
        *,
        every: Any = None,
        cron: Optional[str] = None,
        tz: Optional[str] = None,
        args: Sequence[Any] = (),
        kwargs: Optional[Dict[str, Any]] = None,
        **options: Any,
    ) -> ScheduleInfo:
        """See :meth:`Client.schedule`."""
        return await _run(
            functools.partial(
                self.client.schedule,
                name,
                function,
                every=every,
                cron=cron,
                tz=tz,
                args=args,
                kwargs=kwargs,
                **options,
            )
        )

    async def schedules(self) -> List[ScheduleInfo]:
        """See :meth:`Client.schedules`."""
        return await _run(self.client.schedules)

    async def schedule_info(self, name: str) -> ScheduleInfo:
        """See :meth:`Client.schedule_info`."""
        return await _run(functools.partial(self.client.schedule_info, name))

    async def pause_schedule(self, name: str) -> ScheduleInfo:
        """See :meth:`Client.pause_schedule`."""
        return await _run(functools.partial(self.client.pause_schedule, name))

    async def resume_schedule(self, name: str) -> ScheduleInfo:
        """See :meth:`Client.resume_schedule`."""
        return await _run(functools.partial(self.client.resume_schedule, name))

    async def remove_schedule(self, name: str) -> ScheduleInfo:
        """See :meth:`Client.remove_schedule`."""
        return await _run(functools.partial(self.client.remove_schedule, name))

    async def close(self) -> None:
        """Closes the connection."""
        if self._client is not None:
            await _run(self._client.close)

    async def __aenter__(self) -> "AsyncClient":
        await self._connect()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                await self.flush()
        finally:
            await self.close()


async def _run(call: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, call)
