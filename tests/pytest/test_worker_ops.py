"""Workers from Python: ``client.drain_worker(name)`` does what SIGTERM on the worker's host
does, and ``client.workers()`` shows what each worker's slots use (memory, CPU) and its
uptime."""

from __future__ import annotations

import asyncio

import pytest

import tatzelwurm as tw

from conftest import Cluster, wait_until


def test_drain_worker_by_name(fresh_cluster: Cluster) -> None:
    """Draining a worker by name lets its running task finish, gives it nothing new, and the
    worker exits 0; the drain is an event; an unknown name raises UnknownWorker."""
    c = fresh_cluster
    c.start_coordinator()
    worker = c.start_worker(1, drain_timeout=30)
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        running = client.submit("pt_tasks:sleep", 1.5)
        wait_until(lambda: running.state() == "running", 20, "the task to start")

        drained = client.drain_worker("pytest-0")
        assert [w.name for w in drained] == ["pytest-0"]
        assert drained[0].draining and isinstance(drained[0], tw.WorkerInfo)
        later = client.submit("pt_tasks:add", 1, 1)

        assert running.result(timeout=30) == 1.5
        assert worker.proc.wait(30) == 0
        wait_until(lambda: client.workers() == [], 20, "the worker to leave")
        assert later.state() == "ready"
        changes = [e.change for e in client.events() if e.kind == "worker"]
        assert changes[0] == "joined" and "draining" in changes and changes[-1] == "left", changes

        with pytest.raises(tw.UnknownWorker, match="no-such-worker") as unknown:
            client.drain_worker("no-such-worker")
        assert isinstance(unknown.value, LookupError)
        client.kill(later)


def test_worker_usage(fresh_cluster: Cluster) -> None:
    """workers() shows each slot's process, memory and CPU as the worker last measured them,
    the worker's --max-memory, and its uptime; AsyncClient.drain_worker works by id."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(2, "--max-memory", "512")
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        wait_until(lambda: client.workers()[0].usage is not None, 30, "a usage report")
        [info] = client.workers()
        usage = info.usage
        assert isinstance(usage, tw.WorkerUsage)
        assert len(usage.slots) == 2
        for slot in usage.slots:
            assert isinstance(slot, tw.SlotUsage)
            assert slot.pid > 0 and slot.rss > 1_000_000 and slot.cpu >= 0 and slot.running >= 0
        assert usage.rss == sum(s.rss for s in usage.slots)
        assert usage.max_memory == 512 * 1024 * 1024
        assert usage.memory_replaced == 0 and usage.memory_killed == 0
        assert usage.at > info.connected_at - 5
        assert 0 <= info.uptime < 600

        async def drain_by_id() -> None:
            async with tw.AsyncClient(c.address) as ac:
                drained = await ac.drain_worker(info.id)
                assert [w.id for w in drained] == [info.id]

        asyncio.run(asyncio.wait_for(drain_by_id(), 30))
        assert c.workers[0].proc.wait(30) == 0
