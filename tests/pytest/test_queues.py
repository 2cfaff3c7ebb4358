"""Queues from Python: workers serve the queues they name, ``queues()`` counts tasks by state
and names the workers, ``pause_queue``/``resume_queue`` stop and restart dispatch, and
``limit_queue`` bounds how many of a queue's tasks run at once."""

from __future__ import annotations

import time

import pytest

import tatzelwurm as tw

from conftest import Cluster, wait_until


def by_name(client: tw.Client) -> dict:
    return {q.name: q for q in client.queues()}


def test_queue_pause_and_resume(fresh_cluster: Cluster) -> None:
    """A worker started with --queue serves that queue only; a paused queue dispatches
    nothing (its task stays ready) until resumed; queues() shows counts, state and workers."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(1, "--queue", "reports")
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        [worker] = client.workers()
        assert worker.queues == ["reports"] and worker.async_concurrency == 1
        reports = client.options(queue="reports")
        assert reports.submit("pt_tasks:add", 1, 2).result(timeout=30) == 3
        stranded = client.submit("pt_tasks:add", 0, 0)  # the default queue: nobody serves it

        paused = client.pause_queue("reports")
        assert paused.name == "reports" and paused.paused and paused.limit is None
        held = reports.submit("pt_tasks:add", 2, 2)
        time.sleep(1.0)
        assert held.state() == "ready"
        queues = by_name(client)
        assert set(queues) >= {"default", "reports"}
        q = queues["reports"]
        assert q.paused and q.workers == ["pytest-0"]
        assert list(q.counts) == list(tw.STATES)
        assert q.count("ready") == 1 and q.count("completed") == 1
        assert queues["default"].count("ready") == 1 and queues["default"].workers == []

        resumed = client.resume_queue("reports")
        assert not resumed.paused
        assert held.result(timeout=30) == 4
        assert stranded.state() == "ready"
        client.kill(stranded)


def test_queue_limit(fresh_cluster: Cluster) -> None:
    """With limit 1, two tasks of the queue run one after the other on a worker of two slots;
    with the limit removed (0), they run side by side."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(2, "--queue", "licence")
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        lane = client.options(queue="licence")
        assert lane.submit("pt_tasks:add", 0, 1).result(timeout=30) == 1
        limited = client.limit_queue("licence", 1)
        assert limited.limit == 1
        assert by_name(client)["licence"].limit == 1

        one, two = lane.submit("pt_tasks:sleep", 1.0), lane.submit("pt_tasks:sleep", 1.0)
        assert one.result(timeout=30) == 1.0 and two.result(timeout=30) == 1.0
        first, second = sorted((one.info(), two.info()), key=lambda i: i.started_at)
        assert second.started_at >= first.finished_at - 0.01, (first, second)

        assert client.limit_queue("licence", 0).limit is None
        assert client.limit_queue("licence", None).limit is None
        one, two = lane.submit("pt_tasks:sleep", 1.0), lane.submit("pt_tasks:sleep", 1.0)
        assert one.result(timeout=30) == 1.0 and two.result(timeout=30) == 1.0
        first, second = sorted((one.info(), two.info()), key=lambda i: i.started_at)
        assert second.started_at < first.finished_at, (first, second)


def test_unknown_queue_and_bad_limits(client: tw.Client) -> None:
    """Controls of a queue nothing names raise UnknownQueue with the coordinator's sentence
    (which lists the queues there are); a bad limit is refused before anything is sent."""
    for control in (
        lambda: client.pause_queue("no-such-queue"),
        lambda: client.resume_queue("no-such-queue"),
        lambda: client.limit_queue("no-such-queue", 3),
    ):
        with pytest.raises(tw.UnknownQueue, match="there is no queue `no-such-queue`") as caught:
            control()
        assert "default" in str(caught.value)
        assert isinstance(caught.value, LookupError)
    for bad in (-1, 2**32, 1.5, True):
        with pytest.raises(tw.InvalidRequest, match="limit"):
            client.limit_queue("default", bad)
    assert "no-such-queue" not in by_name(client)


def test_async_queue_controls(cluster: Cluster) -> None:
    """AsyncClient has the queue controls and pause as coroutines."""
    import asyncio

    async def main() -> None:
        async with tw.AsyncClient(cluster.address) as ac:
            held = await ac.options(queue="async-lane").submit("pt_tasks:add", 1, 1)
            names = [q.name for q in await ac.queues()]
            assert "async-lane" in names
            assert (await ac.pause_queue("async-lane")).paused
            assert (await ac.limit_queue("async-lane", 2)).limit == 2
            assert not (await ac.resume_queue("async-lane")).paused
            changed = await ac.pause(held)
            assert changed.changed == [held.id]
            await ac.kill(held)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_workers_serve_several_queues(fresh_cluster: Cluster) -> None:
    """A worker with two --queue flags runs tasks of both."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(1, "--queue", "a", "--queue", "b")
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        assert sorted(client.workers()[0].queues) == ["a", "b"]
        ha = client.options(queue="a").submit("pt_tasks:add", 1, 0)
        hb = client.options(queue="b").submit("pt_tasks:add", 2, 0)
        assert ha.result(timeout=30) == 1 and hb.result(timeout=30) == 2
        wait_until(lambda: by_name(client)["b"].count("completed") == 1, 10, "b's count")
