"""Purging finished tasks from Python: ``client.purge(*tasks)`` and
``client.purge(finished_before=..., states=...)``; a purged id raises ``TaskPurged`` (an
``UnknownTask``) from get, info and logs; tasks that are not finished are left and named."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

import tatzelwurm as tw

from conftest import Cluster, wait_until


def test_purge_by_id(fresh_cluster: Cluster) -> None:
    """Purging ids removes the finished ones (a purged event counts them), leaves a running
    one named with its state and an already purged one named with None; reading a purged id
    raises TaskPurged, an id never handed out UnknownTask."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(1)
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        done = [client.submit("pt_tasks:add", i, i) for i in range(2)]
        assert [h.result(timeout=30) for h in done] == [0, 2]
        running = client.submit("pt_tasks:sleep", 60)
        wait_until(lambda: running.state() == "running", 20, "the sleeper to start")

        result = client.purge(*done, running.id)
        assert isinstance(result, tw.Purged)
        assert result.purged == 2
        assert result.unchanged == [(running.id, "running")]

        purged_id = done[0].id
        for read in (
            lambda: client.info(purged_id),
            lambda: client.get(purged_id),
            lambda: client.logs(purged_id),
            lambda: done[1].info(),
        ):
            with pytest.raises(tw.TaskPurged, match="purged") as caught:
                read()
            assert isinstance(caught.value, tw.UnknownTask)
        assert done[0].result() == 0  # a handle keeps the result it already has

        again = client.purge(purged_id)
        assert again == tw.Purged(0, [(purged_id, None)])
        with pytest.raises(tw.UnknownTask) as unknown:
            client.purge(10**9)
        assert not isinstance(unknown.value, tw.TaskPurged)

        listed = {t.id for t in client.list()}
        assert purged_id not in listed and running.id in listed
        purges = [e for e in client.events() if e.kind == "purged"]
        assert [e.count for e in purges] == [2]
        client.kill(running)


def test_purge_finished_before_and_states(fresh_cluster: Cluster) -> None:
    """finished_before takes an age (timedelta, seconds, span text) or an aware datetime;
    states narrows it to some finished states; nothing finished later is touched."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(1)
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        ok = [client.submit("pt_tasks:add", i, 1) for i in range(3)]
        bad = client.submit("pt_tasks:fail", "gone")
        assert [h.result(timeout=30) for h in ok] == [1, 2, 3]
        with pytest.raises(tw.TaskFailed):
            bad.result(timeout=30)

        assert client.purge(finished_before="1h").purged == 0
        an_hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        assert client.purge(finished_before=an_hour_ago).purged == 0

        future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
        only_failed = client.purge(finished_before=future, states="failed")
        assert only_failed.purged == 1
        with pytest.raises(tw.TaskPurged):
            bad.info()
        assert ok[0].info().state == "completed"

        rest = client.purge(finished_before=dt.timedelta(0), states=["completed"])
        assert rest == tw.Purged(3, [])
        assert client.purge(finished_before=0).purged == 0
        assert client.list(state="completed") == []


def test_purge_arguments_are_checked(client: tw.Client) -> None:
    """A purge that names nothing, names both ways, a naive datetime, a state that is not
    finished or a bad age is refused before anything is sent."""
    naive = dt.datetime.now()
    for call, words in (
        (lambda: client.purge(), "name the tasks"),
        (lambda: client.purge(1, finished_before="1d"), "not both"),
        (lambda: client.purge(states="failed"), "finished_before"),
        (lambda: client.purge(finished_before=naive), "time zone"),
        (lambda: client.purge(finished_before="1d", states="running"), "finished"),
        (lambda: client.purge(finished_before="soon"), "finished_before"),
        (lambda: client.purge(finished_before=[1]), "finished_before"),
    ):
        with pytest.raises(tw.InvalidRequest, match=words):
            call()


def test_async_purge(cluster: Cluster) -> None:
    """AsyncClient.purge purges as Client.purge does."""

    async def main() -> None:
        async with tw.AsyncClient(cluster.address) as ac:
            handle = await ac.submit("pt_tasks:add", 5, 5)
            assert await asyncio.wait_for(handle, 30) == 10
            assert (await ac.purge(handle)).purged == 1
            with pytest.raises(tw.TaskPurged):
                await ac.info(handle.id)

    asyncio.run(asyncio.wait_for(main(), 60))
