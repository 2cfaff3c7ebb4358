"""A task's output from Python: ``handle.logs()`` (the text so far, or the kept output of a
finished task) and ``handle.logs(follow=True)`` (chunks as they are written, until the task
finishes), sync and async, for a running, a finished and a retried task."""

from __future__ import annotations

import asyncio
import time
from typing import List, Tuple

import pytest

import tatzelwurm as tw

from conftest import Cluster, wait_until


def test_follow_streams_while_running(client: tw.Client) -> None:
    """Following a task that prints a line every 0.3 s yields its first lines before it
    finishes, then all of its output in order; the stream ends with the final state, and
    logs() afterwards gives the same text as the kept output."""
    handle = client.submit("pt_tasks:chatty", 6, 0.3)
    chunks: List[Tuple[float, bool, tw.LogChunk]] = []
    with handle.logs(follow=True) as stream:
        assert isinstance(stream, tw.LogStream)
        for chunk in stream:
            chunks.append((time.monotonic(), handle.done(), chunk))
        assert stream.state == "completed"
    assert handle.result(timeout=30) == 6
    assert chunks, "no output came"
    first_at, first_done, _ = chunks[0]
    assert not first_done, "the first line came only after the task finished"
    stdout = "".join(c.text for _, _, c in chunks if c.stream == "stdout")
    stderr = "".join(c.text for _, _, c in chunks if c.stream == "stderr")
    assert stdout == "".join(f"line {i}\n" for i in range(6))
    assert stderr == "line done\n"
    assert {c.attempt for _, _, c in chunks} == {1}

    kept = handle.logs()
    assert kept == tw.TaskOutput(stdout, stderr)
    assert client.logs(handle.id) == kept
    info_output = handle.info().output
    assert info_output is not None and info_output.stdout == stdout


def test_logs_of_a_running_task_so_far(client: tw.Client) -> None:
    """logs() of a running task gives what it has written so far while it still runs."""
    handle = client.submit("pt_tasks:print_then_sleep", "started here", 30)
    try:
        wait_until(lambda: "started here" in handle.logs().stdout, 20, "the first line")
        assert handle.state() == "running"
    finally:
        handle.kill()
    with pytest.raises(tw.TaskKilled):
        handle.result(timeout=30)


def test_logs_of_a_retried_task(client: tw.Client, tmp_path) -> None:
    """A retried task's followed output names each chunk's attempt; logs() afterwards is the
    latest attempt's output."""
    marker = tmp_path / "marker"
    handle = client.options(retries=1, backoff=0.1).submit(
        "pt_tasks:print_and_fail_once", str(marker)
    )
    seen: List[tw.LogChunk] = list(handle.logs(follow=True))
    assert handle.result(timeout=30) == "ok"
    by_attempt = {c.attempt: c.text for c in seen if c.stream == "stdout"}
    # A follow that began after the first attempt ended starts at the second: both are fine,
    # but the last attempt's line is always there, under its own attempt number.
    assert by_attempt.get(2) == "second attempt\n", seen
    if 1 in by_attempt:
        assert by_attempt[1] == "first attempt\n"
    assert handle.logs().stdout == "second attempt\n"


def test_logs_of_unknown_task(client: tw.Client) -> None:
    """logs of an id never handed out raises UnknownTask, following or not."""
    with pytest.raises(tw.UnknownTask):
        client.logs(10**9)
    stream = client.logs(10**9, follow=True)
    with pytest.raises(tw.UnknownTask):
        next(stream)
    assert stream.closed


def test_async_logs(cluster: Cluster) -> None:
    """AsyncClient.logs gives the text; follow_logs is an async iterator of chunks that ends
    when the task finishes."""

    async def main() -> None:
        async with tw.AsyncClient(cluster.address) as ac:
            handle = await ac.submit("pt_tasks:chatty", 3, 0.2, tag="async")
            chunks = [c async for c in ac.follow_logs(handle)]
            assert "".join(c.text for c in chunks if c.stream == "stdout") == (
                "async 0\nasync 1\nasync 2\n"
            )
            assert await asyncio.wait_for(handle, 30) == 3
            output = await ac.logs(handle)
            assert output.stdout == "async 0\nasync 1\nasync 2\n"
            assert output.stderr == "async done\n"

    asyncio.run(asyncio.wait_for(main(), 60))
