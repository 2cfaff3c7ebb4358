"""The event log from Python: ``client.events(since, follow, task, queue)`` as a sync iterator
and ``AsyncClient.events`` as an async one; replay, filters, following across a coordinator
kill -9, ``EventsGone``, and a following iterator that stops cleanly on close and on ctrl-c."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import List

import pytest

import tatzelwurm as tw

from conftest import Cluster, clean_env, wait_until


def follow_until(stream: tw.EventStream, done, timeout: float) -> List[tw.Event]:
    """Reads `stream` until `done(event)` holds, bounded: a timer closes the stream after
    `timeout` seconds, which ends the iteration (the caller's asserts then fail)."""
    seen: List[tw.Event] = []
    guard = threading.Timer(timeout, stream.close)
    guard.start()
    try:
        for event in stream:
            seen.append(event)
            if done(event):
                break
    finally:
        guard.cancel()
    return seen


def assert_increasing(events: List[tw.Event]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)), f"not strictly increasing: {seqs}"


def finished(task_id: int):
    return lambda e: e.kind == "task" and e.task == task_id and e.state in ("completed", "failed")


def test_replay_filters_and_since(fresh_cluster: Cluster) -> None:
    """Without follow, events() lists every kept event in order: the worker's join, each
    task's way to completed with its queue, attempt and worker, times as aware datetimes; since
    gives exactly the tail, task and queue filters only their tasks' events."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(1, "--queue", "default", "--queue", "other")
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
        a = client.submit("pt_tasks:add", 1, 2)
        b = client.options(queue="other").submit("pt_tasks:fail", "no")
        assert a.result(timeout=30) == 3
        with pytest.raises(tw.TaskFailed):
            b.result(timeout=30)
        wait_until(
            lambda: any(finished(b.id)(e) for e in client.events()), 10, "b's failure event"
        )

        events = list(client.events())
        assert_increasing(events)
        assert [e.seq for e in events] == list(range(events[0].seq, events[-1].seq + 1))
        joined = [e for e in events if e.kind == "worker" and e.change == "joined"]
        assert joined and joined[0].worker == "pytest-0" and joined[0].worker_id is not None
        a_events = [e for e in events if e.task == a.id]
        assert a_events[-1].state == "completed" and a_events[-1].queue == "default"
        assert a_events[-1].attempt == 1 and a_events[-1].worker == "pytest-0"
        assert "running" in [e.state for e in a_events]
        b_last = [e for e in events if e.task == b.id][-1]
        assert (b_last.state, b_last.error, b_last.queue) == ("failed", "ValueError", "other")
        for e in events:
            assert isinstance(e, tw.Event) and e.kind in tw.EVENT_KINDS
            assert e.at.tzinfo is not None and before <= e.at <= before + dt.timedelta(minutes=5)
        assert "completed" in str(a_events[-1])

        middle = events[len(events) // 2].seq
        assert [e.seq for e in client.events(since=middle)] == [
            e.seq for e in events if e.seq > middle
        ]
        assert list(client.events(since=events[-1].seq)) == []
        assert [e.seq for e in client.events(task=a.id)] == [e.seq for e in a_events]
        assert [e.seq for e in client.events(task=b)] == [e.seq for e in events if e.task == b.id]
        assert {e.task for e in client.events(queue="other")} == {b.id}
        assert list(client.events(since="now")) == []
        with pytest.raises(tw.InvalidRequest, match="since"):
            client.events(since=-3)


def test_follow_sees_new_events_and_closes(client: tw.Client) -> None:
    """A following iterator started at "now" yields a new task's events as they happen, in
    order, and ends cleanly when closed from another thread; it then stays closed."""
    stream = client.events(since="now", follow=True)
    handle = client.submit("pt_tasks:add", 2, 2)
    seen = follow_until(stream, finished(handle.id), 30)
    assert seen and finished(handle.id)(seen[-1]), seen
    assert_increasing(seen)
    assert handle.result(timeout=30) == 4

    # Closing from another thread ends a read that is waiting.
    closer = threading.Timer(0.3, stream.close)
    started = time.monotonic()
    closer.start()
    rest = list(stream)
    assert all(isinstance(e, tw.Event) for e in rest)
    assert time.monotonic() - started < 10
    assert stream.closed
    with pytest.raises(StopIteration):
        next(stream)
    assert client.workers()  # the client goes on


def test_now_sees_everything_done_after_it_returns(client: tw.Client) -> None:
    """events(since="now", follow=True) returns only once the coordinator has subscribed it:
    a batch submitted right after has every task's first event in the stream (none slips
    between the call and the subscription), each task once per state."""
    with client.events(since="now", follow=True) as stream:
        handles = client.submit_many("pt_tasks:add", [(i, i) for i in range(500)])
        ids = {h.id for h in handles}
        done: set = set()
        seen: List[tw.Event] = []

        def all_done(event: tw.Event) -> bool:
            if event.kind == "task" and event.task in ids and event.state == "completed":
                done.add(event.task)
            return done == ids

        seen = follow_until(stream, all_done, 60)
    assert done == ids, f"{len(ids - done)} tasks never reported completed"
    assert_increasing(seen)
    # Every event the log holds of these tasks (a task added and handed out in one round has
    # one event, `running`) was seen by the follower, the first ones included.
    logged = {e.seq for e in client.events() if e.kind == "task" and e.task in ids}
    followed = {e.seq for e in seen if e.kind == "task" and e.task in ids}
    assert logged - followed == set(), f"{len(logged - followed)} events missed"


def test_client_close_ends_a_follow(cluster: Cluster) -> None:
    """Closing the client ends a following iterator that another thread is reading."""
    client = tw.Client(cluster.address)
    stream = client.events(since="now", follow=True)
    ended = threading.Event()

    def read() -> None:
        for _ in stream:
            pass
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)  # let the reader start waiting; the close must end a read under way
    client.close()
    assert ended.wait(10), "the following iterator did not end when its client closed"


def test_follow_across_coordinator_kill(fresh_cluster: Cluster) -> None:
    """A follower keeps going across a coordinator kill -9 and restart: it sees every event of
    the log from where it began, each once, in order, including the tasks added after the
    restart."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(1, "--queue", "default", "--queue", "other")
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        before = [client.submit("pt_tasks:add", i, 0) for i in range(5)]
        assert [h.result(timeout=30) for h in before] == list(range(5))
        start = list(client.events())[-1].seq

        stream = client.events(since=start, follow=True)
        seen: List[tw.Event] = []
        after_ids: List[int] = []
        done = threading.Event()

        def read() -> None:
            for event in stream:
                seen.append(event)
                if after_ids and event.task == after_ids[-1] and event.state == "completed":
                    done.set()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        middle = [client.submit("pt_tasks:add", i, 10) for i in range(5)]
        assert [h.result(timeout=30) for h in middle] == list(range(10, 15))
        wait_until(lambda: any(e.task == middle[-1].id for e in seen), 20, "the follower")

        c.kill_coordinator()
        c.restart_coordinator()
        after = [client.submit("pt_tasks:add", i, 100) for i in range(5)]
        after_ids.extend(h.id for h in after)
        assert [h.result(timeout=60) for h in after] == list(range(100, 105))
        assert done.wait(30), f"the follower did not see the last task finish: {seen[-5:]}"
        stream.close()
        reader.join(10)

        log = [e for e in client.events(since=start) if e.seq <= seen[-1].seq]
        assert [e.seq for e in seen] == [e.seq for e in log], "a seq missed or seen twice"
        assert seen[0].seq == start + 1


def test_follow_with_the_coordinator_down(fresh_cluster: Cluster) -> None:
    """A follow asked for while the coordinator is down raises CoordinatorUnavailable from the
    call itself (its own connection is made before it returns), within a few seconds."""
    c = fresh_cluster
    c.start_coordinator()
    with tw.Client(c.address) as client:
        c.kill_coordinator()
        started = time.monotonic()
        with pytest.raises(tw.CoordinatorUnavailable, match=c.address):
            client.events(follow=True)
        with pytest.raises(tw.CoordinatorUnavailable):
            client.logs(1, follow=True)
        assert time.monotonic() - started < 10


def test_events_gone_and_kept_window(fresh_cluster: Cluster) -> None:
    """With --keep-events 10, the oldest events are dropped: since=0 raises EventsGone naming
    the oldest kept, and events() starts at the oldest kept."""
    c = fresh_cluster
    c.start_coordinator("127.0.0.1:0", "--keep-events", "10")
    c.start_worker(1)
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 1)
        handles = [client.submit("pt_tasks:add", i, 1) for i in range(20)]
        assert [h.result(timeout=60) for h in handles] == [i + 1 for i in range(20)]
        wait_until(lambda: list(client.events())[0].seq > 1, 10, "old events to be trimmed")
        kept = list(client.events())
        assert len(kept) < 20, f"{len(kept)} events kept of --keep-events 10"
        with pytest.raises(tw.EventsGone) as gone:
            list(client.events(since=0))
        assert isinstance(gone.value, LookupError)
        assert str(kept[0].seq) in str(gone.value) or "oldest" in str(gone.value)
        assert [e.seq for e in client.events(since=kept[0].seq - 1)] == [e.seq for e in kept]


def test_async_events(cluster: Cluster) -> None:
    """AsyncClient.events is an async iterator: replay without follow; with follow, a read
    cancelled by a timeout loses nothing (the next read gets the event), and aclose ends it."""

    async def main() -> None:
        async with tw.AsyncClient(cluster.address) as ac:
            first = await ac.submit("pt_tasks:add", 3, 3)
            assert await asyncio.wait_for(first, 30) == 6
            replay = [e async for e in ac.events(task=first)]
            assert replay and replay[-1].state == "completed"

            stream = ac.events(since="now", follow=True)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(stream.__anext__(), 0.3)
            handle = await ac.submit("pt_tasks:add", 4, 4)
            seen: List[tw.Event] = []

            async def collect() -> None:
                async for event in stream:
                    seen.append(event)
                    if finished(handle.id)(event):
                        return

            await asyncio.wait_for(collect(), 30)
            assert_increasing(seen)
            assert [e.task for e in seen if e.kind == "task"][0] == handle.id
            await stream.aclose()
            assert stream.closed
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()

            async with ac.events(since="now", follow=True) as held:
                assert not held.closed
            assert held.closed

    asyncio.run(asyncio.wait_for(main(), 90))


def test_ctrl_c_stops_a_follow(cluster: Cluster, tmp_path) -> None:
    """A ctrl-c while the main thread follows events raises KeyboardInterrupt within a second;
    the iterator is then closed and the client still answers."""
    script = tmp_path / "follow.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            import tatzelwurm as tw

            client = tw.Client(sys.argv[1])
            stream = client.events(since="now", follow=True)
            print("following", flush=True)
            try:
                for event in stream:
                    pass
            except KeyboardInterrupt:
                print("interrupted", stream.closed, len(client.workers()) > 0, flush=True)
            client.close()
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), cluster.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "following"
        time.sleep(0.5)  # let it wait inside the native read
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 3, "the interrupt took too long"
        assert out.strip() == "interrupted True True", (out, err)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_lagged_names_where_to_go_on() -> None:
    """An EventsLagged raised by the native stream carries the last seq the iterator yielded,
    so a reader can follow again from there (the coordinator's and the client's cut-offs both
    end a stream this way)."""
    import collections

    from tatzelwurm.events import EventStream

    class Native:
        def __init__(self) -> None:
            self.batches = collections.deque(
                [[(7, time.time(), "purged", None, None, None, None, None, None, 3, None, None)]]
            )
            self.closed = False

        def next(self, timeout):  # noqa: ANN001 - the native signature
            if self.batches:
                return self.batches.popleft()
            raise tw.EventsLagged("this watcher read events more slowly than they came")

        def close(self) -> None:
            self.closed = True

    class Core:
        streams: "set" = set()

    native = Native()
    stream = EventStream(native, Core())  # type: ignore[arg-type]
    first = next(stream)
    assert (first.kind, first.count, first.seq) == ("purged", 3, 7)
    with pytest.raises(tw.EventsLagged) as lagged:
        next(stream)
    assert lagged.value.last_seq == 7 and stream.last_seq == 7
    assert native.closed and stream.closed
