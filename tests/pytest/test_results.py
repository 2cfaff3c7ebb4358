"""Scenarios 5, 7 and 8: results by id from another process, remote failures, kills and
timeouts, and what is not JSON."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import tatzelwurm as tw

from conftest import clean_env, wait_until


def test_result_by_id_from_another_process(client: tw.Client, cluster) -> None:
    """Process A submits a 3 s task and exits; this process reads it by id, twice; get(10**9)
    raises UnknownTask at once."""
    script = (
        "import sys, tatzelwurm as tw\n"
        "c = tw.Client(sys.argv[1])\n"
        "print(c.submit('pt_tasks:sleep', 3).id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, cluster.address],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    task_id = int(done.stdout.strip())
    first = client.get(task_id)
    assert first.result(timeout=30) == 3
    assert client.get(task_id).result(timeout=10) == 3
    with tw.Client(cluster.address) as other:
        assert other.get(task_id).result(timeout=10) == 3
    started = time.monotonic()
    with pytest.raises(tw.UnknownTask):
        client.get(10**9)
    assert time.monotonic() - started < 1.0


def test_remote_value_error(client: tw.Client) -> None:
    """ValueError("bad") gives TaskFailed with the remote type, message, traceback and attempts."""
    handle = client.submit("pt_tasks:fail", "bad")
    with pytest.raises(tw.TaskFailed) as caught:
        handle.result(timeout=30)
    err = caught.value
    assert type(err) is tw.TaskFailed
    assert err.remote_type == "ValueError"
    assert err.remote_message == "bad"
    assert "raise ValueError(message)" in err.remote_traceback
    assert err.task_id == handle.id and err.attempts == 1
    assert isinstance(handle.exception(timeout=1), tw.TaskFailed)


def test_kill_gives_task_killed(client: tw.Client) -> None:
    """kill() of a running sleep(3600) gives TaskKilled within 2 s."""
    handle = client.submit("pt_tasks:sleep", 3600)
    wait_until(lambda: handle.state() == "running", 30, "the task to run")
    started = time.monotonic()
    handle.kill()
    with pytest.raises(tw.TaskKilled):
        handle.result(timeout=10)
    assert time.monotonic() - started < 2.0


def test_timeout_gives_task_timed_out(client: tw.Client) -> None:
    """timeout=1 on sleep(10) gives TaskTimedOut."""
    handle = client.options(timeout=1).submit("pt_tasks:sleep", 10)
    with pytest.raises(tw.TaskTimedOut) as caught:
        handle.result(timeout=30)
    assert caught.value.remote_type == "Timeout"
    assert isinstance(caught.value, tw.TaskFailed)


def test_datetime_argument_refused_before_sending(client: tw.Client) -> None:
    """A datetime argument raises SerializationError naming args[0]['when']; nothing is sent."""
    import datetime

    before = len(client.list())
    with pytest.raises(tw.SerializationError) as caught:
        client.submit("pt_tasks:noop", {"when": datetime.datetime.now()})
    message = str(caught.value)
    assert message.startswith("args[0]['when']: datetime is not JSON"), message
    assert caught.value.path == "args[0]['when']"
    with pytest.raises(tw.SerializationError, match=r"kwargs\['x'\]: set is not JSON"):
        client.submit("pt_tasks:noop", 1, x={1})
    with pytest.raises(tw.SerializationError, match="nan is not JSON"):
        client.submit("pt_tasks:noop", float("nan"))
    client.flush(timeout=10)
    assert len(client.list()) == before


def test_result_that_is_not_json(client: tw.Client) -> None:
    """A task returning a set fails with one clear sentence."""
    with pytest.raises(tw.TaskFailed) as caught:
        client.submit("pt_tasks:return_set").result(timeout=30)
    message = caught.value.remote_message
    assert "set" in message and "JSON" in message, message
    assert "\n" not in message.strip()
