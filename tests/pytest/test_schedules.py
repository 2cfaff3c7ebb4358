"""Schedules from Python: an ``every=1`` schedule fires ordinary tasks, pause/resume/remove
change it, a cron schedule computes its next time, and bad schedules raise the coordinator's
sentences (ScheduleExists, UnknownSchedule, InvalidRequest naming the cron field)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

import tatzelwurm as tw

import pt_tasks
from conftest import Cluster, wait_until


def test_every_schedule_fires_tasks(client: tw.Client) -> None:
    """An every=1 schedule adds a task about each second; its tasks are ordinary ones with the
    schedule's queue, priority and arguments, named in `last` newest first."""
    added = client.schedule(
        "tick", "pt_tasks:add", every=1, args=(1, 2), priority=5, retries=1, timeout=30
    )
    try:
        assert (added.name, added.every, added.cron, added.tz) == ("tick", 1.0, None, None)
        assert (added.function, added.args, added.kwargs) == ("pt_tasks:add", "[1,2]", "{}")
        assert (added.queue, added.priority, added.retries, added.timeout) == ("default", 5, 1, 30.0)
        assert not added.paused and added.fired == 0 and added.last == []
        assert added.next_at is not None and 0.5 <= added.next_at - added.created_at <= 1.5

        wait_until(lambda: client.schedule_info("tick").fired >= 2, 10, "two firings")
        info = client.schedule_info("tick")
        assert len(info.last) == min(info.fired, 10)
        assert info.last_ids == sorted(info.last_ids, reverse=True)
        task = client.info(info.last_ids[-1])
        assert (task.function, task.priority, task.queue) == ("pt_tasks:add", 5, "default")
        assert client.get(info.last_ids[-1]).result(timeout=30) == 3
        assert [s.name for s in client.schedules()] == ["tick"]
    finally:
        client.remove_schedule("tick")


def test_pause_resume_remove(client: tw.Client) -> None:
    """A paused schedule does not fire and has no next time; resumed it fires again; removed it
    is gone (UnknownSchedule) and its tasks stay."""
    client.schedule("pulse", pt_tasks.noop, every=dt.timedelta(seconds=1), args=("p",))
    wait_until(lambda: client.schedule_info("pulse").fired >= 1, 10, "a firing")
    paused = client.pause_schedule("pulse")
    assert paused.paused and paused.next_at is None
    time.sleep(2.2)
    assert client.schedule_info("pulse").fired == paused.fired
    resumed = client.resume_schedule("pulse")
    assert not resumed.paused and resumed.next_at is not None
    assert resumed.next_at >= time.time() - 0.5
    wait_until(lambda: client.schedule_info("pulse").fired > paused.fired, 10, "a firing")
    removed = client.remove_schedule("pulse")
    assert removed.name == "pulse"
    with pytest.raises(tw.UnknownSchedule):
        client.schedule_info("pulse")
    assert "pulse" not in [s.name for s in client.schedules()]
    for task_id in removed.last_ids:
        assert client.get(task_id).result(timeout=30) == "p"


def test_task_function_schedule(client: tw.Client) -> None:
    """An @task function schedules under its own name with its own options, which the
    schedule's own options override."""
    info = client.schedule("decorated", pt_tasks.tadd, every=3600, args=(1, 2), timeout=9)
    try:
        assert info.function == "pt_tasks:tadd"
        assert (info.retries, info.timeout) == (2, 9.0)
    finally:
        client.remove_schedule("decorated")


def test_cron_schedule_next_time(client: tw.Client) -> None:
    """A cron line in a time zone gives the next whole minute as the next time."""
    info = client.schedule("minutely", "pt_tasks:noop", cron="* * * * *", tz="Europe/Berlin", args=(1,))
    try:
        assert (info.cron, info.tz, info.every) == ("* * * * *", "Europe/Berlin", None)
        assert info.next_at is not None
        assert info.next_at % 60 == 0 and 0 < info.next_at - time.time() <= 61
    finally:
        client.remove_schedule("minutely")


def test_schedule_errors(client: tw.Client) -> None:
    """A taken name raises ScheduleExists; unknown names UnknownSchedule; a bad cron line,
    time zone, interval or name InvalidRequest with the coordinator's sentence; and options a
    schedule's tasks cannot have are refused before anything is sent."""
    client.schedule("taken", "pt_tasks:noop", every=3600, args=(0,))
    try:
        with pytest.raises(tw.ScheduleExists, match="taken"):
            client.schedule("taken", "pt_tasks:noop", every=60, args=(0,))
    finally:
        client.remove_schedule("taken")
    for control in (
        client.schedule_info,
        client.pause_schedule,
        client.resume_schedule,
        client.remove_schedule,
    ):
        with pytest.raises(tw.UnknownSchedule, match="nothing-here"):
            control("nothing-here")

    with pytest.raises(tw.InvalidRequest, match=r"field 3") as caught:
        client.schedule("bad-cron", "pt_tasks:noop", cron="* * 32 * *")
    assert "day" in str(caught.value)
    with pytest.raises(tw.InvalidRequest, match="Mars/Olympus"):
        client.schedule("bad-tz", "pt_tasks:noop", cron="* * * * *", tz="Mars/Olympus")
    with pytest.raises(tw.InvalidRequest, match="1s or more"):
        client.schedule("too-often", "pt_tasks:noop", every=0.5)
    with pytest.raises(tw.InvalidRequest, match="every `500ms` is shorter than 1 second"):
        client.schedule("too-often", "pt_tasks:noop", every="500ms")
    with pytest.raises(tw.InvalidRequest, match="is not a schedule name"):
        client.schedule("has space", "pt_tasks:noop", every=60)
    with pytest.raises(tw.InvalidRequest, match="exactly one"):
        client.schedule("both", "pt_tasks:noop", every=60, cron="* * * * *")
    with pytest.raises(tw.InvalidRequest, match="exactly one"):
        client.schedule("neither", "pt_tasks:noop")
    with pytest.raises(tw.InvalidRequest, match="cron lines only"):
        client.schedule("tz-every", "pt_tasks:noop", every=60, tz="UTC")
    for option in ({"delay": 5}, {"after": [1]}, {"play": False}):
        with pytest.raises(tw.InvalidRequest, match="does not apply"):
            client.schedule("opt", "pt_tasks:noop", every=60, **option)
    with pytest.raises(tw.InvalidRequest, match="priority 300 is out of range"):
        client.schedule("prio", "pt_tasks:noop", every=60, priority=300)
    with pytest.raises(tw.InvalidRequest, match="carries the option 'delay'"):
        client.options(delay=5).schedule("view", "pt_tasks:noop", every=60)
    with pytest.raises(tw.SerializationError, match="args"):
        client.schedule("ser", "pt_tasks:noop", every=60, args=(dt.datetime.now(),))
    assert client.schedules() == []


def test_async_schedules(cluster: Cluster) -> None:
    """AsyncClient has the schedule calls as coroutines."""

    async def main() -> None:
        async with tw.AsyncClient(cluster.address) as ac:
            added = await ac.schedule("async-tick", "pt_tasks:noop", every="1h", args=(1,))
            assert added.name == "async-tick" and added.every == 3600.0
            assert [s.name for s in await ac.schedules()] == ["async-tick"]
            assert (await ac.pause_schedule("async-tick")).paused
            assert not (await ac.resume_schedule("async-tick")).paused
            assert (await ac.schedule_info("async-tick")).fired == 0
            await ac.remove_schedule("async-tick")
            with pytest.raises(tw.UnknownSchedule):
                await ac.schedule_info("async-tick")

    asyncio.run(asyncio.wait_for(main(), 60))
