"""Arguments and results as JSON, the same as on the command line.

A task added from Python and one added with ``actionwurm task add --args '[...]'`` are the same
task. Plain values (exact ``int``, ``float``, ``str``, ``bool``, ``None``, ``list``, ``tuple``,
``dict`` with ``str`` keys) are written by the extension (``_native.encode_call``, and
``Core.submit_many`` item by item), which writes the text ``json.dumps`` below would; anything
else takes one ``json.dumps``, and only when that fails is the value walked to name the first
thing that is not JSON (``args[0]['when']: datetime is not JSON``).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence, Tuple

from . import _native
from .errors import SerializationError

__all__ = ["dumps_arguments", "encode_item", "loads_result", "find_unserialisable"]

_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=True
).encode
_decode = json.JSONDecoder().decode

#: Integers below this in size are written without the JSON encoder.
_SMALL = 1 << 62

_EMPTY_ARGS = "[]"
_EMPTY_KWARGS = "{}"

_encode_call = _native.encode_call


def dumps_arguments(args: Sequence[Any], kwargs: Optional[Mapping[str, Any]]) -> Tuple[str, str]:
    """The JSON texts of a call's positional and keyword arguments.

    Raises :class:`SerializationError` naming the path of the first value that is not JSON.
    """
    if len(args) == 1 and not kwargs and type(args[0]) is int and -_SMALL < args[0] < _SMALL:
        # One integer argument (`submit_many(f, range(n))`): its JSON is its repr.
        return "[%d]" % args[0], _EMPTY_KWARGS
    if type(args) is tuple and (kwargs is None or type(kwargs) is dict):
        texts = _encode_call(args, kwargs or None)
        if texts is not None:
            return texts  # type: ignore[no-any-return]
    try:
        args_json = _encode(args) if args else _EMPTY_ARGS
        kwargs_json = _encode(kwargs) if kwargs else _EMPTY_KWARGS
    except (TypeError, ValueError, RecursionError) as err:
        raise _explain(args, kwargs, err) from None
    return args_json, kwargs_json


def encode_item(index: int, item: Any, kwargs: Optional[Mapping[str, Any]]) -> Tuple[str, str]:
    """The JSON texts of ``submit_many``'s item ``index``: a tuple is the positional
    arguments, anything else the one argument. Raises :class:`SerializationError` naming the
    item and the path. (The extension calls this for the items it does not write itself.)"""
    args = item if isinstance(item, tuple) else (item,)
    try:
        return dumps_arguments(args, kwargs)
    except SerializationError as err:
        raise SerializationError(f"item {index}: {err}", err.path) from None


def loads_result(text: str) -> Any:
    """The value of a task's JSON result; a small integer (what many tasks return) without
    the JSON decoder, which costs several times more."""
    if len(text) < 19 and text.isascii() and text.isdigit():
        return int(text)
    return _decode(text)


def _explain(
    args: Sequence[Any], kwargs: Optional[Mapping[str, Any]], err: BaseException
) -> SerializationError:
    found = find_unserialisable(list(args), "args")
    if found is None and kwargs:
        found = find_unserialisable(dict(kwargs), "kwargs")
    if found is None:
        path, what = "args", f"the arguments are not JSON ({err})"
    else:
        path, what = found
    return SerializationError(
        f"{path}: {what}; a task's arguments travel as JSON, so pass plain values "
        "(str, int, float, bool, None, lists and dicts with str keys) and convert others first",
        path,
    )


def find_unserialisable(value: Any, path: str, _depth: int = 0) -> Optional[Tuple[str, str]]:
    """The path and a description of the first part of ``value`` that is not JSON, or None."""
    if _depth > 200:
        return path, "nested too deeply (or refers to itself)"
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return path, f"{value!r} is not JSON"
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_unserialisable(item, f"{path}[{index}]", _depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return f"{path}[{key!r}]", f"a {type(key).__name__} key is not JSON"
            found = find_unserialisable(item, f"{path}[{key!r}]", _depth + 1)
            if found is not None:
                return found
        return None
    return path, f"{type(value).__name__} is not JSON"
