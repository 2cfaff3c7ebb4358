"""Scenarios 2, 3 and 9: many submits and pushed completions, the @task decorator, options
that never touch the task's own keyword arguments."""

from __future__ import annotations

import concurrent.futures
import subprocess
import time
from pathlib import Path

import pytest

import tatzelwurm as tw

import pt_tasks
from conftest import clean_env


class CountingNative:
    """Stands in for a client's native core and counts every call made through it."""

    def __init__(self, native) -> None:
        self._native = native
        self.calls = []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self._native, name)


def test_ten_thousand_submits_then_as_completed(client: tw.Client) -> None:
    """10,000 submits, then as_completed: every result right and yielded once, and no request
    is sent while waiting (completions are pushed)."""
    n = 10_000
    started = time.perf_counter()
    handles = [client.submit("pt_tasks:noop", i) for i in range(n)]
    elapsed = time.perf_counter() - started
    print(f"\n{n} submits in {elapsed:.3f} s: {n / elapsed:,.0f} submits/s")
    client.flush(timeout=60)
    counting = CountingNative(client._core.native)
    client._core.native = counting
    try:
        seen = set()
        for handle in tw.as_completed(handles, timeout=120):
            assert handle not in seen
            seen.add(handle)
    finally:
        client._core.native = counting._native
    assert len(seen) == n
    assert [h.result() for h in handles] == list(range(n))
    assert counting.calls == [], counting.calls
    ids = [h.id for h in handles]
    assert len(set(ids)) == n
    # The adds of one client are applied in the order they were sent, although several are in
    # flight at once: ids (and so first-in first-out dispatch) follow the order of submits.
    assert ids == sorted(ids)


def test_stdlib_futures_work_on_handles(client: tw.Client) -> None:
    """concurrent.futures.as_completed and wait take handles as they are."""
    handles = [client.submit(pt_tasks.square, i) for i in range(20)]
    done, not_done = concurrent.futures.wait(handles, timeout=60)
    assert not not_done
    assert sorted(h.result() for h in concurrent.futures.as_completed(handles, timeout=5)) == [
        i * i for i in range(20)
    ]
    done2, _ = tw.wait(handles, timeout=5)
    assert done2 == done


def test_handles_resolve_however_they_are_waited_for(client: tw.Client) -> None:
    """A handle makes its future's condition only when something waits through it: a thread
    blocked in result() before the end, a done callback, the standard library's as_completed,
    tatzelwurm's own as_completed (which needs none), a handle already finished, a handle in
    two as_completed at once, and one abandoned by an as_completed that gave up."""
    import threading

    slow = [client.submit("pt_tasks:sleep", 0.3, tag=i) for i in range(4)]
    got = []
    waiter = threading.Thread(target=lambda: got.append(slow[0].result(timeout=30)))
    waiter.start()
    called = []
    slow[1].add_done_callback(lambda handle: called.append(handle.result()))
    with pytest.raises(TimeoutError):
        next(tw.as_completed([slow[2]], timeout=0.01))
    # Two at once over the same handles: each gets every handle.
    first, second = tw.as_completed(slow[2:], timeout=30), tw.as_completed(slow[2:], timeout=30)
    both = [[next(first)], [next(second)]]
    both[0].extend(first)
    both[1].extend(second)
    waiter.join(30)
    assert got == [0.3] and called == [0.3]
    assert [sorted(h.id for h in run) for run in both] == [sorted(h.id for h in slow[2:])] * 2
    assert sorted(h.id for h in concurrent.futures.as_completed(slow, timeout=5)) == sorted(
        h.id for h in slow
    )
    # Finished before as_completed began: each yielded once, with no waiting.
    assert list(tw.as_completed([slow[3], slow[3]], timeout=0)) == [slow[3]]
    assert all(h.done() and h.exception() is None for h in slow)


def test_submit_many_and_map(client: tw.Client) -> None:
    """submit_many keeps order; map is ordered, lazy and bounded by its window."""
    handles = client.submit_many("pt_tasks:add", [(i, 1) for i in range(100)])
    assert [h.result(timeout=60) for h in handles] == [i + 1 for i in range(100)]
    results = client.map("pt_tasks:square", range(50), window=7)
    assert list(results) == [i * i for i in range(50)]
    lazy = client.map("pt_tasks:square", iter(()), window=3)
    assert list(lazy) == []


def test_handle_id_state_info(client: tw.Client) -> None:
    """A handle's id is durable, its info and state come from the coordinator."""
    handle = client.submit("pt_tasks:add", 2, 3)
    assert isinstance(handle.id, int)
    assert handle.result(timeout=30) == 5
    assert handle.state() == "completed"
    info = handle.info()
    assert info.id == handle.id and info.state == "completed" and info.value() == 5
    assert info.function == "pt_tasks:add"
    assert info.attempts == 1 and info.worker


def test_result_wait_raises_builtin_timeout(client: tw.Client) -> None:
    """A client-side wait that runs out raises the builtin TimeoutError."""
    handle = client.submit("pt_tasks:sleep", 2)
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.05)
    with pytest.raises(TimeoutError):
        list(tw.as_completed([handle], timeout=0.05))
    assert handle.result(timeout=30) == 2


def test_task_decorator(client: tw.Client) -> None:
    """@task(retries=2, timeout=5): a plain local call, submit, map in order, the name, and
    options carried to the coordinator."""
    assert pt_tasks.tadd.name == "pt_tasks:tadd"
    assert pt_tasks.tadd(1, 2) == 3
    handle = client.submit(pt_tasks.tadd, 2, 2)
    assert handle.result(timeout=30) == 4
    assert handle.info().function == "pt_tasks:tadd"
    assert list(pt_tasks.tadd.bind(client).map([1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    assert pt_tasks.tadd.options(timeout=9).task_options == {"retries": 2, "timeout": 9}


def test_task_decorator_default_client(cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """add.submit and add.map go through the default client ($TATZELWURM_COORDINATOR)."""
    import tatzelwurm.client as client_module

    monkeypatch.setenv("TATZELWURM_COORDINATOR", cluster.address)
    monkeypatch.setattr(client_module, "_default", None)
    try:
        assert pt_tasks.tadd.submit(1, 2).result(timeout=30) == 3
        assert list(pt_tasks.tadd.map([1, 2], [3, 4])) == [4, 6]
        assert pt_tasks.tadd.options(timeout=9).submit(5, 5).result(timeout=30) == 10
    finally:
        if client_module._default is not None:
            client_module._default.close()


def test_lambda_and_nested_refused() -> None:
    """A lambda or a nested function is refused when decorated or submitted, in one sentence."""
    with pytest.raises(tw.InvalidRequest, match="lambda"):
        tw.task(lambda x: x)

    def nested(x):
        return x

    with pytest.raises(tw.InvalidRequest, match="nested"):
        tw.task(nested)
    with pytest.raises(tw.InvalidRequest, match="nested"):
        tw.function_name(nested)


def test_main_function_submitted_by_file(cluster, tmp_path: Path) -> None:
    """A function of a script run as __main__ is submitted as /abs/file.py:fn, with a warning
    that workers must see that file."""
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        "import tatzelwurm as tw\n"
        "def triple(x):\n"
        "    return 3 * x\n"
        "@tw.task(retries=1)\n"
        "def quad(x):\n"
        "    return 4 * x\n"
        "if __name__ == '__main__':\n"
        "    with tw.Client(sys.argv[1]) as c:\n"
        "        h = c.submit(triple, 5)\n"
        "        print(c.submit(quad, 5).result(timeout=30))\n"
        "        print(h.result(timeout=30))\n"
        "        print(h.info().function)\n"
    )
    import sys

    done = subprocess.run(
        [sys.executable, str(script), cluster.address],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[0] == "20" and lines[1] == "15", done.stdout
    assert lines[2] == f"{script}:triple"
    assert "every worker must be able to read that path" in done.stderr, done.stderr


def test_options_never_read_task_kwargs(client: tw.Client) -> None:
    """Scenario 9: keyword arguments named timeout or retries reach the task; options go
    through .options() only."""
    result = client.submit("pt_tasks:options_echo", timeout=7, retries=3, other=1).result(
        timeout=30
    )
    assert result == {"timeout": 7, "retries": 3, "rest": {"other": 1}}
    view = client.options(timeout=10, retries=1)
    handle = view.submit("pt_tasks:options_echo", timeout=99)
    assert handle.result(timeout=30) == {"timeout": 99, "retries": None, "rest": {}}
    assert client.submit(pt_tasks.techo, timeout=1, retries=2).result(timeout=30) == {
        "timeout": 1,
        "retries": 2,
    }


def test_options_play_false_then_play(client: tw.Client) -> None:
    """options(play=False) adds created tasks that run once played."""
    handle = client.options(play=False).submit("pt_tasks:add", 1, 1)
    assert handle.state() == "created"
    changed = client.play(handle)
    assert changed.changed == [handle.id]
    assert handle.result(timeout=30) == 2


def test_list_and_workers(client: tw.Client) -> None:
    """list filters by state and limit; workers names both workers."""
    handle = client.submit("pt_tasks:add", 40, 2)
    assert handle.result(timeout=30) == 42
    completed = client.list(state="completed", limit=5)
    assert 1 <= len(completed) <= 5
    assert all(t.state == "completed" for t in completed)
    # Paging: three tasks, read two at a time with `after`.
    three = [client.submit("pt_tasks:add", i, 0) for i in range(3)]
    assert [h.result(timeout=30) for h in three] == [0, 1, 2]
    ids = [h.id for h in three]
    first = client.list(limit=2, after=ids[0] - 1)
    rest = client.list(limit=2, after=first[-1].id)
    assert [t.id for t in first + rest] == ids
    with pytest.raises(ValueError, match="limit"):
        client.list(limit=0)
    workers = client.workers()
    names = sorted(w.name for w in workers)
    assert names[:2] == ["pytest-0", "pytest-1"]
    assert all(w.held_off_until is None and not w.draining for w in workers)
    with pytest.raises(tw.InvalidRequest, match="completed"):
        client.list(state="done")
