"""What the event stream and a task's followed output share: an iterator (and an async one)
over a native feed that yields batches, one item at a time.

A stream starts at once in the background: a following one connects a connection of its own
and sends its request there. The sync client waits for that before handing the stream out;
``async with`` does for an async one (a plain ``async for`` waits in its first read).

A read waits in the extension with the GIL released; on the main thread a ctrl-c raises
``KeyboardInterrupt`` within a tenth of a second. Whatever ends a read early (ctrl-c, an error,
``close()``, leaving a ``with`` block, the client's ``close()``, the iterator being dropped)
closes the stream: a following stream has a connection of its own, and closing that connection
ends the stream on the coordinator too. The client itself stays usable.

The async iterator reads in a daemon thread of its own (never the event loop's default
executor, which a long follow would hold, and whose threads an exiting interpreter waits for),
and a cancelled read keeps its batch for the next one, so ``asyncio.wait_for(stream.__anext__(),
1)`` loses nothing. asyncio is imported by the async methods that use it, not at the top: a
program that never touches asyncio does not pay for loading it (with ssl and more, it was half
of the package's import time).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Generic, List, Optional, Tuple, TypeVar

if TYPE_CHECKING:
    import asyncio

    from .client import _Core

    #: A read asked of an async stream's reader thread: the loop and the future to answer on.
    _Ask = Tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]"]

__all__ = ["Stream", "AsyncStream"]

T = TypeVar("T")

class _Reader(Generic[T]):
    """The state both faces share: the native feed, the items of the batch being read, and
    whether the stream is over."""

    def __init__(self, native: Any, core: "_Core") -> None:
        self._native = native
        self._buffer: Deque[T] = deque()
        self._done = False
        core.streams.add(self)

    # -- what a kind of stream says ---------------------------------------------------------
    def _convert(self, raw: Any) -> T:
        """One item from its native form."""
        raise NotImplementedError

    def _yielded(self, item: T) -> None:
        """Called for each item as it is handed to the caller."""

    def _failed(self, error: BaseException) -> BaseException:
        """The error to raise for a native failure (a stream may add what it knows)."""
        return error

    # -- shared -------------------------------------------------------------------------------
    def _take(self, batch: Optional[List[Any]]) -> None:
        if batch is None:
            self._done = True
            return
        convert = self._convert
        self._buffer.extend(convert(raw) for raw in batch)

    def _pop(self) -> T:
        item = self._buffer.popleft()
        self._yielded(item)
        return item

    @property
    def closed(self) -> bool:
        """Whether the stream is over: read to its end, failed, or closed."""
        return self._done and not self._buffer

    def _close_native(self) -> None:
        self._done = True
        self._buffer.clear()
        self._native.close()

    def __del__(self) -> None:
        # A stream dropped unread (``break`` out of a ``for``) ends its subscription too.
        try:
            if not self._done:
                self._close_native()
        except Exception:  # noqa: BLE001 - nothing to report to at collection time
            pass


class Stream(_Reader[T]):
    """A synchronous iterator over a stream; also a context manager that closes it."""

    def __iter__(self) -> "Stream[T]":
        return self

    def __next__(self) -> T:
        while not self._buffer:
            if self._done:
                raise StopIteration
            try:
                batch = self._native.next(None)
            except BaseException as err:
                self._close_native()
                raise self._failed(err) from None
            self._take(batch)
        return self._pop()

    def close(self) -> None:
        """Ends the stream: a read under way in another thread stops, and iteration ends."""
        if not self._done:
            self._close_native()
        self._buffer.clear()

    def __enter__(self) -> "Stream[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncStream(_Reader[T]):
    """An asynchronous iterator over a stream; also an async context manager that closes it."""

    def __init__(self, native: Any, core: "_Core") -> None:
        super().__init__(native, core)
        #: Reads asked of the reader thread: the loop and future to answer, None to stop.
        self._asks: "queue.SimpleQueue[Optional[_Ask]]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        #: The read under way, kept when the awaiting task is cancelled.
        self._pending: "Optional[asyncio.Future[Any]]" = None

    def __aiter__(self) -> "AsyncStream[T]":
        return self

    async def __anext__(self) -> T:
        import asyncio  # here and below, not at the top: see the module

        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            if self._pending is None:
                self._pending = self._ask()
            try:
                batch = await asyncio.shield(self._pending)
            except asyncio.CancelledError:
                raise  # the read goes on; the next __anext__ takes its batch
            except BaseException as err:
                self._pending = None
                self._close_native()
                raise self._failed(err) from None
            self._pending = None
            self._take(batch)
            if self._done:
                self._asks.put(None)
        return self._pop()

    def _ask(self) -> "asyncio.Future[Any]":
        """Asks the reader thread for the next batch; its answer resolves the future."""
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            # A daemon thread, not an executor's: an executor's threads are joined when the
            # interpreter exits, and a follow nobody closed would hold the exit forever.
            self._thread = threading.Thread(
                target=self._read, name="tatzelwurm-stream", daemon=True
            )
            self._thread.start()
        self._asks.put((loop, future))
        return future

    def _read(self) -> None:
        """The reader thread: one native read per ask, answered on the asker's loop."""
        while True:
            ask = self._asks.get()
            if ask is None:
                return
            loop, future = ask
            try:
                batch, error = self._native.next(None), None
            except BaseException as err:  # noqa: BLE001 - handed to the awaiting task
                batch, error = None, err
            try:
                loop.call_soon_threadsafe(_settle, future, batch, error)
            except RuntimeError:
                return  # the loop is closed: nobody waits any more
            if error is not None or batch is None:
                return

    def _close_native(self) -> None:
        super()._close_native()
        self._asks.put(None)

    async def aclose(self) -> None:
        """Ends the stream; a read under way stops and iteration ends."""
        if not self._done:
            import asyncio

            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._close_native)
        self._buffer.clear()

    def close(self) -> None:
        """Ends the stream from synchronous code (the client's ``close`` calls this)."""
        if not self._done:
            self._close_native()
        self._buffer.clear()

    async def __aenter__(self) -> "AsyncStream[T]":
        """Waits (off the event loop) until the stream has started: a following one's own
        connection made and its request sent, so ``since="now"`` means from about here. A
        start that failed raises here."""
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._native.ready)
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


def _settle(future: "asyncio.Future[Any]", batch: Any, error: Optional[BaseException]) -> None:
    """Resolves a read's future on its loop (unless it was cancelled meanwhile)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(batch)
