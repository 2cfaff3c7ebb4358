"""Types of the Rust extension (pyext/): the connection, the pipeline and the three commands.
Private: use :class:`tatzelwurm.Client`."""

from typing import Any, Dict, List, Optional, Tuple

def tatzelwurm_main(argv: List[str], executable: str) -> int: ...
def workwurm_main(argv: List[str], executable: str) -> int: ...
def actionwurm_main(argv: List[str], executable: str) -> int: ...

#: The most tasks one task may run after.
MAX_AFTER: int

def check_queue_name(name: str) -> None:
    """Raises InvalidRequest (the coordinator's sentence) unless ``name`` is a queue name."""

def check_priority(priority: int) -> None:
    """Raises InvalidRequest (the coordinator's sentence) unless -100 <= priority <= 100."""

def parse_span(what: str, text: str) -> int:
    """A span such as ``"1h30m"`` in milliseconds, by the command line's rule."""

def parse_every(what: str, text: str) -> int:
    """``parse_span`` of at least one second (a schedule's interval)."""

def parse_time(what: str, text: str) -> int:
    """RFC 3339 text with an offset in milliseconds since the epoch."""

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

class Core:
    @staticmethod
    def connect(address: Optional[str], name: str, window: int) -> "Core": ...
    @property
    def address(self) -> str: ...
    def submit(self, function: str, args: str, kwargs: str, options: Options) -> int: ...
    def try_submit(
        self, function: str, args: str, kwargs: str, options: Options
    ) -> Optional[int]: ...
    def submit_many(
        self, function: str, args: List[str], kwargs: List[str], options: Options
    ) -> int: ...
    def add(
        self, function: str, args: List[str], kwargs: List[str], options: Options
    ) -> List[int]: ...
    def next_events(self, max: int, timeout: float) -> Optional[List[Tuple[Any, ...]]]: ...
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
