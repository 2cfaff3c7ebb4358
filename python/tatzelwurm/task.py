"""Naming functions the way workers import them, and the ``@task`` decorator.

A worker runs a function it imports by name: ``package.module:function``, or
``/abs/path/file.py:function`` for a function of the script being run (``__main__``), which the
workers must then be able to read at that path. Lambdas and nested functions have no such name
and are refused.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    Iterator,
    Optional,
    TypeVar,
    Union,
    overload,
)

from .errors import InvalidRequest
from .options import check_options, merge_options

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from .client import Client
    from .handle import TaskHandle

__all__ = ["Task", "task", "function_name"]

R = TypeVar("R")

#: Names already worked out, by function object (a submit of the same function is then one
#: dictionary look-up).
_names: Dict[Any, str] = {}
_warned_main: set = set()


def function_name(function: Any) -> str:
    """The name a worker imports ``function`` by: a string as given, a :class:`Task`'s name, or
    ``module:qualname`` of a function object (``/abs/file.py:name`` for one of ``__main__``)."""
    if isinstance(function, str):
        return function
    if isinstance(function, Task):
        return function.name
    try:
        return _names[function]
    except (KeyError, TypeError):
        pass
    name = _name_of(function)
    try:
        _names[function] = name
    except TypeError:
        pass
    return name


def _name_of(function: Any) -> str:
    qualname = getattr(function, "__qualname__", None)
    module = getattr(function, "__module__", None)
    if not callable(function) or qualname is None or module is None:
        raise InvalidRequest(
            f"{function!r} is not a function a worker can import; pass a module-level function "
            "or its name as 'package.module:function'"
        )
    if qualname == "<lambda>" or "<lambda>" in qualname:
        raise InvalidRequest(
            "a lambda cannot be run by a worker, which imports functions by name; "
            "define it with def at the top level of a module"
        )
    if "<locals>" in qualname or "." in qualname:
        raise InvalidRequest(
            f"{qualname} is nested inside another function or class, so a worker cannot import "
            "it by name; move it to the top level of a module"
        )
    if module == "__main__":
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None)
        if not path or not os.path.isfile(path):
            raise InvalidRequest(
                f"{qualname} was defined in an interactive session, which workers cannot import; "
                "put it in a module and pass 'package.module:function'"
            )
        path = os.path.abspath(path)
        if path not in _warned_main:
            _warned_main.add(path)
            warnings.warn(
                f"{qualname} is defined in the script being run, so tasks name it by the file "
                f"{path}: every worker must be able to read that path",
                stacklevel=4,
            )
        return f"{path}:{qualname}"
    return f"{module}:{qualname}"


class Task(Generic[R]):
    """A function made a task by :func:`task`: calling it runs it here, ``submit`` and ``map``
    run it on the workers.

    Its module-level name stays the function's own, so a worker that imports the module by
    :attr:`name` finds this object and calls it like the function.
    """

    def __init__(self, function: Callable[..., R], options: Dict[str, Any]) -> None:
        self.__wrapped__ = function
        #: The name a worker imports it by, such as ``pkg.mod:add``.
        self.name: str = _name_of(function)
        #: The options given to ``@task`` or ``.options()``, applied on every submit.
        self.task_options: Dict[str, Any] = check_options(dict(options), stacklevel=4)
        self.__name__ = getattr(function, "__name__", self.name)
        self.__qualname__ = getattr(function, "__qualname__", self.name)
        self.__module__ = getattr(function, "__module__", "")
        self.__doc__ = getattr(function, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Runs the function here, as a plain call."""
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<tatzelwurm task {self.name}>"

    def options(self, **options: Any) -> "Task[R]":
        """The same task with these options added: ``retries``, ``backoff``, ``timeout``,
        ``at_most_once``, ``crash_limit``, ``play``, ``queue``, ``priority``, ``delay``, ``at``,
        ``after`` (see :meth:`Client.options`)."""
        merged = merge_options(self.task_options, check_options(options))
        clone = Task.__new__(Task)
        clone.__dict__.update(self.__dict__)
        clone.task_options = merged
        return clone

    def submit(self, *args: Any, **kwargs: Any) -> "TaskHandle[R]":
        """Submits one run with these arguments through the default client; see
        :meth:`Client.submit`."""
        from .client import default_client

        return default_client().submit(self, *args, **kwargs)

    def map(self, *iterables: Iterable[Any], window: Optional[int] = None) -> Iterator[R]:
        """Runs the task on every item (zipped across ``iterables``) through the default client
        and yields the results in order; see :meth:`Client.map`."""
        from .client import default_client

        return default_client().map(self, *iterables, window=window)

    def bind(self, client: "Client") -> "_BoundTask[R]":
        """This task submitting through ``client`` rather than the default client."""
        return _BoundTask(self, client)


class _BoundTask(Generic[R]):
    """A task with the client it submits through."""

    def __init__(self, task: Task[R], client: "Client") -> None:
        self._task = task
        self._client = client

    def submit(self, *args: Any, **kwargs: Any) -> "TaskHandle[R]":
        """See :meth:`Client.submit`."""
        return self._client.submit(self._task, *args, **kwargs)

    def map(self, *iterables: Iterable[Any], window: Optional[int] = None) -> Iterator[R]:
        """See :meth:`Client.map`."""
        return self._client.map(self._task, *iterables, window=window)


@overload
def task(function: Callable[..., R]) -> Task[R]: ...


@overload
def task(
    function: None = None,
    *,
    retries: int = ...,
    backoff: float = ...,
    timeout: Optional[float] = ...,
    at_most_once: bool = ...,
    crash_limit: int = ...,
    play: bool = ...,
    queue: str = ...,
    priority: int = ...,
    delay: Union[float, str, "timedelta"] = ...,
    at: Union[float, str, "datetime"] = ...,
    after: Iterable[Union[int, "TaskHandle[Any]"]] = ...,
) -> Callable[[Callable[..., R]], Task[R]]: ...


def task(
    function: Optional[Callable[..., R]] = None, **options: Any
) -> Union[Task[R], Callable[[Callable[..., R]], Task[R]]]:
    """Makes a module-level function a :class:`Task`: ``@task`` or ``@task(retries=2,
    timeout=5)``.

    The options are those of :meth:`Client.options`; they apply to every submit of the task.
    A lambda or a nested function is refused with :class:`InvalidRequest`.
    """
    if function is not None:
        return Task(function, options)

    def decorate(function: Callable[..., R]) -> Task[R]:
        return Task(function, options)

    return decorate
