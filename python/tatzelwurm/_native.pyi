"""Types of the Rust extension (pyext/): the connection, the pipeline and the three commands.
Private: use :class:`tatzelwurm.Client`."""

from typing import Any, Callable, Dict, List, Optional, Tuple, final

def tatzelwurm_main(argv: List[str], executable: str) -> int: ...
def workwurm_main(argv: List[str], executable: str) -> int: ...
def actionwurm_main(argv: List[str], executable: str) -> int: ...

#: The most tasks one task may run after.
MAX_AFTER: int

def check_queue_name(name: str) -> None:
    """Raises InvalidRequest (the coordinator's sentence) unless ``name`` is a queue name."""

def check_priority(priority: int) -> None:
    """Raises InvalidRequest (the coordinator's sentence) unless -100 <= priority <= 100."""

def encode_call(
    args: Tuple[Any, ...], kwargs: Optional[Dict[str, Any]]
) -> Optional[Tuple[str, str]]:
    """The JSON texts ``(args, kwargs)`` of a call whose values are plain (exact int, float,
    str, bool, None, list, tuple, dict with str keys), as Python's ``json`` writes them; None
    when a value is not plain (Python's encoder then writes or refuses it)."""

def parse_span(what: str, text: str) -> int:
    """A span such as ``"1h30m"`` in milliseconds, by the command line's rule."""

def parse_every(what: str, text: str) -> int:
    """``parse_span`` of at least one second (a schedule's interval)."""

def parse_time(what: str, text: str) -> int:
    """RFC 3339 text with an offset in milliseconds since the epoch."""

@final
class Options:
    def __init__(
        self,
        retries: Optional[int] = None,
        backoff_ms: Optional[int] = None,
        timeout_ms: Optional[int] = None,
        at_most_once: Optional[bool] = None,
        crash_limit: Optional[int] = None,
        play: bool = True,
        queue: Optional[str] = None,
        priority: Optional[int] = None,
        delay_ms: Optional[int] = None,
        at_ms: Optional[int] = None,
        after: List[int] = ...,
    ) -> None: ...
    @property
    def waits_for_tasks(self) -> bool:
        """Whether its tasks run after others (they are then added outside the pipeline)."""

@final
class EventFeed:
    """The event log being read: batches of event tuples
    ``(seq, at, kind, task, queue, state, attempt, worker, error, count, worker_id, change)``."""

    def next(self, timeout: Optional[float] = None) -> Optional[List[Tuple[Any, ...]]]:
        """The next batch ([] when none came within ``timeout`` s; None once over), waiting
        with the GIL released; the error that ends the stream is raised."""
    def ready(self) -> None:
        """Waits until the stream has started (a following one's own connection made, its
        request sent); raises the error of a start that failed."""
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

@final
class LogFeed:
    """A task's output being read: batches of ``(attempt, stream, text)`` chunks."""

    def next(self, timeout: Optional[float] = None) -> Optional[List[Tuple[int, str, str]]]:
        """The next chunks ([] when none came within ``timeout`` s; None once over)."""
    def ready(self) -> None:
        """Waits until the stream has started (a following one's own connection made, its
        request sent); raises the error of a start that failed."""
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def state(self) -> Optional[str]:
        """The task's state the last page named; None before it came."""

@final
class Core:
    @staticmethod
    def connect(
        address: Optional[str],
        name: str,
        window: int,
        tls: Optional[bool] = None,
        tls_ca: Optional[str] = None,
    ) -> "Core": ...
    @property
    def address(self) -> str: ...
    def submit(self, function: str, args: str, kwargs: str, options: Options) -> int: ...
    def try_submit(
        self, function: str, args: str, kwargs: str, options: Options
    ) -> Optional[int]: ...
    def submit_many(
        self,
        function: str,
        items: Any,
        kwargs: Optional[List[Optional[Dict[str, Any]]]],
        options: Options,
        encode: Callable[[int, Any, Optional[Dict[str, Any]]], Tuple[str, str]],
    ) -> int:
        """Queues one task per item (a tuple: the positional arguments; else the one
        argument), its JSON written here when plain, else by ``encode(index, item, kwargs)``;
        returns the first ticket. Nothing is queued if an item is refused."""
    def add(
        self, function: str, args: List[str], kwargs: List[str], options: Options
    ) -> List[int]: ...
    def next_events(self, max: int, timeout: float) -> Optional["Events"]:
        """The next batch of pipeline events (empty when none came within ``timeout`` s;
        None once closed), waiting with the GIL released."""
    def flush(self, timeout: Optional[float] = None) -> bool: ...
    def watch(self, ids: List[int]) -> None: ...
    def show(self, id: int) -> Dict[str, Any]: ...
    def list(
        self,
        states: List[str],
        limit: int = 0,
        after: Optional[int] = None,
        queue: Optional[str] = None,
    ) -> List[Dict[str, Any]]: ...
    def workers(self) -> List[Dict[str, Any]]: ...
    def drain_worker(self, name: str) -> List[Dict[str, Any]]: ...
    def purge_ids(self, ids: List[int]) -> Tuple[int, List[Tuple[int, Optional[str]]]]: ...
    def purge_before(
        self, before_ms: int, states: List[str]
    ) -> Tuple[int, List[Tuple[int, Optional[str]]]]: ...
    def events(
        self,
        since: Optional[int],
        follow: bool,
        task: Optional[int] = None,
        queue: Optional[str] = None,
    ) -> EventFeed:
        """``since``: None for the oldest kept, -1 for only what comes next."""
    def logs(self, id: int, follow: bool) -> LogFeed: ...
    def kill(self, ids: Optional[List[int]] = None) -> Tuple[List[int], List[Tuple[int, str]]]: ...
    def play(self, ids: Optional[List[int]] = None) -> Tuple[List[int], List[Tuple[int, str]]]: ...
    def pause(self, ids: Optional[List[int]] = None) -> Tuple[List[int], List[Tuple[int, str]]]: ...
    def queues(self) -> List[Dict[str, Any]]: ...
    def change_queue(self, name: str, change: str, limit: int) -> Dict[str, Any]: ...
    def add_schedule(
        self,
        name: str,
        every_ms: Optional[int],
        cron: Optional[str],
        tz: Optional[str],
        function: str,
        args: str,
        kwargs: str,
        options: Options,
    ) -> Dict[str, Any]: ...
    def schedules(self, name: Optional[str] = None) -> List[Dict[str, Any]]: ...
    def change_schedule(self, name: str, change: str) -> Dict[str, Any]: ...
    def close(self) -> None: ...

@final
class Events:
    """A batch of pipeline events, applied to the client's handles in bulk (see
    pyext/src/dispatch.rs)."""

    def __len__(self) -> int: ...
    def take(
        self, by_ticket: Dict[int, Any], by_id: Dict[int, Any], early: Dict[int, Any]
    ) -> Tuple[List[Tuple[Any, Tuple[Any, ...]]], List[Tuple[Any, ...]]]:
        """Gives handles their ids and files completions, under the client's lock; returns
        ``(slow, notes)``: completions for ``TaskHandle._finish`` and the other events."""
    def finish(self, lazy: Any, pending: Any, finished: Any) -> List[Tuple[Any, Any]]:
        """Resolves the handles whose results are ready under ``lazy`` (``handle._LAZY``);
        returns ``(handle, value)`` of those that got a condition meanwhile."""
