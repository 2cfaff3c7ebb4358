"""The errors of tatzelwurm: every one a subclass of :class:`TatzelwurmError`.

Each message is one sentence that says what failed and what to do. The native extension raises
the connection and request errors by name (it looks the classes up here), the client raises the
task errors when a handle's task ends without a result. Client-side waits that run out raise the
builtin :class:`TimeoutError`, not a class of ours.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "TatzelwurmError",
    "CoordinatorUnavailable",
    "CoordinatorRefused",
    "InvalidRequest",
    "RequestTooLarge",
    "UnknownTask",
    "TaskPurged",
    "UnknownWorker",
    "EventsLagged",
    "EventsGone",
    "UnknownQueue",
    "UnknownSchedule",
    "ScheduleExists",
    "SerializationError",
    "TaskFailed",
    "TaskKilled",
    "TaskTimedOut",
]


class TatzelwurmError(Exception):
    """The base of every error tatzelwurm raises (also a coordinator that is stopping or failed)."""


class CoordinatorUnavailable(TatzelwurmError):
    """The coordinator cannot be reached, or the connection was lost and did not come back.

    The message names the address tried and ``TATZELWURM_COORDINATOR``.
    """


class CoordinatorRefused(TatzelwurmError):
    """The coordinator refused the connection: a wrong token, or another protocol version."""


class InvalidRequest(TatzelwurmError, ValueError):
    """The request cannot be served as written: a function name a worker could not import, a
    lambda or nested function, a bad option value or state name."""


class RequestTooLarge(TatzelwurmError):
    """The request (or its answer) is larger than a frame the coordinator accepts."""


class UnknownTask(TatzelwurmError, LookupError):
    """A task id that the coordinator never handed out."""


class TaskPurged(UnknownTask):
    """A task that existed and was purged (``Client.purge``, ``actionwurm task purge`` or the
    coordinator's ``--keep-finished``): its record, result and output are gone. A subclass of
    :class:`UnknownTask`, so code that handles a missing task handles this one too."""


class UnknownWorker(TatzelwurmError, LookupError):
    """No connected worker has this name or id (``Client.drain_worker``)."""


class EventsLagged(TatzelwurmError):
    """An event stream read more slowly than events came, and the coordinator dropped it.

    :attr:`last_seq` is the sequence number of the last event this stream yielded (None before
    the first): follow again with ``events(since=err.last_seq, follow=True)`` to miss nothing.
    """

    def __init__(self, message: str, last_seq: Optional[int] = None) -> None:
        super().__init__(message)
        #: The last event the stream yielded; resume after it.
        self.last_seq = last_seq

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.last_seq))


class EventsGone(TatzelwurmError, LookupError):
    """The events asked for (``since``) are older than the oldest the coordinator keeps
    (``tatzelwurm --keep-events``); the message names the oldest kept."""


class UnknownQueue(TatzelwurmError, LookupError):
    """A queue that no task, worker, setting or finished count names (``pause_queue``,
    ``resume_queue``, ``limit_queue``); the message lists the queues there are."""


class UnknownSchedule(TatzelwurmError, LookupError):
    """A schedule name that is not in use; the message lists the schedules there are."""


class ScheduleExists(TatzelwurmError):
    """A schedule of that name already exists: remove it first, or pick another name."""


class SerializationError(TatzelwurmError, TypeError):
    """An argument is not JSON; raised by ``submit`` before anything is sent.

    :attr:`path` names where, as in ``args[0]['when']``.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        #: Where the value that is not JSON sits, such as ``args[0]['when']``.
        self.path = path


class TaskFailed(TatzelwurmError):
    """The task ended without a result: it raised (on every attempt it had), its slot crashed,
    its result was not JSON, or a task it ran after failed or was killed (``remote_type``
    ``DependencyFailed``, the message naming that task).

    The attributes describe the remote failure as the worker reported it.
    """

    def __init__(
        self,
        message: str,
        task_id: int,
        remote_type: str = "",
        remote_message: str = "",
        remote_traceback: str = "",
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        #: The id of the task that failed.
        self.task_id = task_id
        #: The remote exception's type, such as ``ValueError``, or a name of ours such as
        #: ``SlotCrashed`` or ``Timeout``.
        self.remote_type = remote_type
        #: The remote exception's message.
        self.remote_message = remote_message
        #: The remote traceback as text (empty where there was none, as for a crash).
        self.remote_traceback = remote_traceback
        #: How many times the task was handed to a worker.
        self.attempts = attempts

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (
            type(self),
            (
                str(self),
                self.task_id,
                self.remote_type,
                self.remote_message,
                self.remote_traceback,
                self.attempts,
            ),
        )


class TaskKilled(TaskFailed):
    """The task was killed on request (``kill()``, ``actionwurm task kill``)."""


class TaskTimedOut(TaskFailed):
    """The task's last attempt ran longer than its ``timeout`` option and was stopped."""


def _by_class(name: str) -> type:
    """The error class the native extension names by its ``ErrorClass``."""
    return {
        "Unavailable": CoordinatorUnavailable,
        "Refused": CoordinatorRefused,
        "UnknownTask": UnknownTask,
        "BadRequest": InvalidRequest,
        "TooLarge": RequestTooLarge,
        "UnknownQueue": UnknownQueue,
        "UnknownSchedule": UnknownSchedule,
        "ScheduleExists": ScheduleExists,
        "TaskPurged": TaskPurged,
        "UnknownWorker": UnknownWorker,
        "EventsLagged": EventsLagged,
        "EventsGone": EventsGone,
    }.get(name, TatzelwurmError)


def _native_error(class_name: str, message: str) -> TatzelwurmError:
    """Builds the error for a native failure of class ``class_name`` (used by the extension)."""
    cls = _by_class(class_name)
    return cls(message)
