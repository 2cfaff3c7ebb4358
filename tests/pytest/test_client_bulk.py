"""The client's bulk paths: arguments written as JSON by the extension (the same text Python's
encoder writes), ``submit_many`` of every kind of item, results given to handles in bulk by
the dispatcher, and handles that carry no condition or waiter lists until one is needed."""

from __future__ import annotations

import concurrent.futures
import datetime
import gc
import json
import threading
from collections import OrderedDict, namedtuple
from typing import Any

import pytest

import tatzelwurm as tw
from tatzelwurm import _native
from tatzelwurm.serialize import dumps_arguments


def python_json(value: Any) -> str:
    """What `tatzelwurm.serialize` writes with Python's own encoder."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class Text(str):
    """A str subclass: left to Python's encoder."""


PLAIN = [
    0,
    -1,
    2**63 - 1,
    -(2**63),
    1.0,
    -0.0,
    0.1,
    1e100,
    1e-7,
    123456789.123,
    True,
    False,
    None,
    "",
    "plain",
    "quote \" backslash \\ slash /",
    "\n\r\t\b\f\x00\x01\x1f\x7f",
    "é ü 漢字 \u2028 \u2029 😀",
    [],
    {},
    [1, [2, [3, []]], {"a": {"b": None}}],
    {"z": 1, "a": 2, "m": [True, False]},
    (1, "two", 3.0),
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_are_written_as_python_writes_them(value: Any) -> None:
    """For every plain value the extension writes exactly the text of Python's encoder, as
    positional and as keyword argument."""
    assert _native.encode_call((value,), None) == (python_json([value]), "{}")
    assert _native.encode_call((), {"k": value}) == ("[]", python_json({"k": value}))
    assert dumps_arguments((value, value), {"k": value}) == (
        python_json([value, value]),
        python_json({"k": value}),
    )


#: Nested deeper than the extension writes (Python's encoder writes it).
DEEP: Any = 1
for _ in range(40):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    "value",
    [
        2**63,
        -(2**63) - 1,
        float("nan"),
        float("inf"),
        Text("x"),
        {1: "int key"},
        OrderedDict(a=1),
        datetime.date(2026, 1, 1),
        {1, 2},
        b"bytes",
        "lone \ud800 surrogate",
        DEEP,
    ],
    ids=repr,
)
def test_other_values_are_left_to_python(value: Any) -> None:
    """What is not plain (or is too deep) gives None, and Python's encoder writes or refuses it
    as before."""
    assert _native.encode_call((value,), None) is None
    assert _native.encode_call((1, value), None) is None
    assert _native.encode_call((), {"k": value}) is None


def test_python_writes_what_the_extension_leaves() -> None:
    """Values left by the extension that JSON can hold are written by Python's encoder, in
    full: big integers, str subclasses, number keys."""
    assert dumps_arguments((2**70, Text("s"), {1: 2}), None) == (
        python_json([2**70, "s", {"1": 2}]),
        "{}",
    )


def test_submit_many_of_every_kind_of_item(client: tw.Client) -> None:
    """Items the extension writes and items Python writes, tuples as positional arguments,
    a named tuple too, and keyword arguments per item: each task gets the JSON Python's
    encoder would write, and the right result."""
    Pair = namedtuple("Pair", "x y")
    items = [5, (2, 3), Pair(4, 5), 2**70, Text("t"), {"a": [1.5, None]}, "é\n"]
    functions = ["pt_tasks:noop", "pt_tasks:add", "pt_tasks:add"] + ["pt_tasks:noop"] * 4
    handles = []
    for function, item in zip(functions, items):
        handles.extend(client.submit_many(function, [item]))
    many = client.submit_many("pt_tasks:noop", items[3:])
    echoes = client.submit_many(
        "pt_tasks:options_echo", [(), ()], kwargs=[{"timeout": 1}, {"x": [1, "y"]}]
    )
    expected = [5, 5, 9, 2**70, "t", {"a": [1.5, None]}, "é\n"]
    assert [h.result(timeout=60) for h in handles] == expected
    assert [h.result(timeout=60) for h in many] == expected[3:]
    assert [h.result(timeout=60) for h in echoes] == [
        {"timeout": 1, "retries": None, "rest": {}},
        {"timeout": None, "retries": None, "rest": {"x": [1, "y"]}},
    ]
    for item, handle in zip(items[3:], many):
        info = handle.info()
        assert info.args == python_json([item]), info.args
        assert info.kwargs == "{}"
    assert echoes[1].info().kwargs == python_json({"x": [1, "y"]})


def test_results_of_every_kind(client: tw.Client) -> None:
    """Results are read as JSON whichever way they take: small integers (read without the
    decoder), integers too long for that, negative ones, floats, text that looks like a
    number, and the rest."""
    values = [0, -7, 10**18 - 1, -(10**18) + 1, 10**18, 2**70, 1.5, -0.0, "01", "12", None]
    values += [True, [1, 2], {"a": 1}]
    handles = client.submit_many("pt_tasks:noop", values)
    got = [h.result(timeout=60) for h in handles]
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]


def test_submit_many_refuses_before_sending(client: tw.Client) -> None:
    """An item that is not JSON raises SerializationError naming the item and the path, and
    none of the items is sent; too few kwargs dicts are refused the same way."""
    before = len(client.list())
    when = datetime.datetime.now()
    with pytest.raises(tw.SerializationError) as caught:
        client.submit_many("pt_tasks:noop", [1, 2, {"when": when}, 4])
    assert str(caught.value).startswith("item 2: args[0]['when']: datetime is not JSON")
    with pytest.raises(tw.SerializationError, match=r"item 1: kwargs\['x'\]: set is not JSON"):
        client.submit_many("pt_tasks:noop", [1, 2], kwargs=[{}, {"x": {1}}])
    with pytest.raises(ValueError, match="1 kwargs dicts for 2 items"):
        client.submit_many("pt_tasks:noop", [1, 2], kwargs=[{}])
    client.flush(timeout=10)
    assert len(client.list()) == before
    assert client.submit_many("pt_tasks:noop", []) == []


def test_a_long_submit_many_refuses_its_last_item_before_sending(client: tw.Client) -> None:
    """A list long enough to be sent a part at a time (its first part leaves while the rest are
    written) still sends nothing when its last item is refused: every item is checked first.
    With an item only Python's encoder writes at its end, every task is sent and right."""
    before = len(client.list())
    items: list = list(range(5_000))
    with pytest.raises(tw.SerializationError, match="item 5000: args"):
        client.submit_many("pt_tasks:noop", items + [datetime.date(2026, 1, 1)])
    with pytest.raises(tw.SerializationError, match=r"item 4999: kwargs\['x'\]: set is not JSON"):
        client.submit_many("pt_tasks:noop", items, kwargs=[{}] * 4_999 + [{"x": {1}}])
    client.flush(timeout=10)
    assert len(client.list()) == before
    handles = client.submit_many("pt_tasks:noop", items + [2**70])
    assert [h.result(timeout=60) for h in handles] == items + [2**70]


def test_submits_from_other_threads_during_a_long_submit_many(client: tw.Client) -> None:
    """While one thread submits a long list (sent a part at a time), others submit one task
    at a time and lists of their own: every handle gets its own task's result, and the long
    list's tasks have consecutive ids."""
    errors: list = []

    def one_at_a_time(base: int) -> None:
        try:
            hs = [client.submit("pt_tasks:noop", base + n) for n in range(300)]
            assert [h.result(timeout=60) for h in hs] == [base + n for n in range(300)]
            lists = client.submit_many("pt_tasks:noop", [[base, n] for n in range(50)])
            assert [h.result(timeout=60) for h in lists] == [[base, n] for n in range(50)]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one_at_a_time, args=(b,)) for b in (10**6, 2 * 10**6)]
    for t in threads:
        t.start()
    long = client.submit_many("pt_tasks:noop", range(20_000))
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert [h.result(timeout=60) for h in long] == list(range(20_000))
    ids = [h.id for h in long]
    assert ids == list(range(ids[0], ids[0] + 20_000))


def test_results_reach_handles_however_they_wait(client: tw.Client) -> None:
    """One batch of completions resolves handles nobody waits on, handles in two
    as_completed at once, one a thread blocks on, one with a done callback, and failures:
    each gets its own result once."""
    handles = client.submit_many("pt_tasks:noop", range(500))
    failing = client.submit("pt_tasks:fail", "bad")
    blocked: list = []
    waiter = threading.Thread(target=lambda: blocked.append(handles[7].result(timeout=60)))
    waiter.start()
    called: list = []
    handles[8].add_done_callback(lambda h: called.append(h.result()))
    first = tw.as_completed(handles[:250], timeout=60)
    second = tw.as_completed(handles[100:], timeout=60)
    got_first = list(first)
    got_second = list(second)
    waiter.join(60)
    assert sorted(h.result() for h in got_first) == list(range(250))
    assert sorted(h.result() for h in got_second) == list(range(100, 500))
    assert blocked == [7] and called == [8]
    assert [h.result() for h in handles] == list(range(500))
    assert all(h.state() == "completed" for h in handles)
    assert repr(handles[3]) == f"<TaskHandle {handles[3].id} completed>"
    with pytest.raises(tw.TaskFailed) as caught:
        failing.result(timeout=60)
    assert caught.value.remote_type == "ValueError"
    assert failing.state() == "failed"
    done, not_done = concurrent.futures.wait(handles[:10], timeout=5)
    assert len(done) == 10 and not not_done


def test_a_handle_is_one_object_until_something_waits(client: tw.Client) -> None:
    """A handle nobody blocks on is one object for the garbage collector, before and after
    its result came: no condition, no waiter or callback lists, no materialised dict. They are
    made (together) when something needs them."""
    handles = client.submit_many("pt_tasks:noop", range(50))
    assert sorted(h.result() for h in tw.as_completed(handles, timeout=60)) == list(range(50))
    tracked = {id(o) for o in gc.get_objects()}
    for handle in handles:
        assert handle._lazy
        referents = gc.get_referents(handle)
        assert not any(id(r) in tracked for r in referents if isinstance(r, (list, dict)))
    handle = handles[0]
    condition = handle._condition
    assert not handle._lazy
    assert handle._waiters == [] and handle._done_callbacks == []
    assert handle._condition is condition
    assert handle.result(timeout=1) == 0
