"""Bad input from Python gets one clear sentence and loses nothing (scenario 6 included: a
closed port, a coordinator killed and restarted mid-as_completed)."""

from __future__ import annotations

import socket
import time

import pytest

import tatzelwurm as tw

from conftest import Cluster


def closed_port() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    address = "%s:%d" % sock.getsockname()
    sock.close()
    return address


def test_closed_port_is_unavailable_within_two_seconds() -> None:
    """A client of a closed port raises CoordinatorUnavailable within 2 s, naming the address
    and TATZELWURM_COORDINATOR."""
    address = closed_port()
    started = time.monotonic()
    with pytest.raises(tw.CoordinatorUnavailable) as caught:
        tw.Client(address)
    assert time.monotonic() - started < 2.5
    assert address in str(caught.value)
    assert "TATZELWURM_COORDINATOR" in str(caught.value)


def test_address_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an address argument, TATZELWURM_COORDINATOR is where the client goes."""
    address = closed_port()
    monkeypatch.setenv("TATZELWURM_COORDINATOR", address)
    with pytest.raises(tw.CoordinatorUnavailable, match=address):
        tw.Client()


def test_wrong_token_is_refused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client with the wrong token is refused with CoordinatorRefused; the right one gets in."""
    c = Cluster(tmp_path, token="right-token")
    try:
        c.start_coordinator()
        monkeypatch.setenv("TATZELWURM_TOKEN", "wrong-token")
        with pytest.raises(tw.CoordinatorRefused) as caught:
            tw.Client(c.address)
        assert "right-token" not in str(caught.value)
        monkeypatch.setenv("TATZELWURM_TOKEN", "right-token")
        with tw.Client(c.address) as ok:
            assert ok.list() == []
    finally:
        c.stop()


def test_unknown_ids(client: tw.Client) -> None:
    """Ids that were never handed out raise UnknownTask at once, from get, info and kill."""
    for call in (lambda: client.get(10**9), lambda: client.info(10**9), lambda: client.kill(10**9)):
        started = time.monotonic()
        with pytest.raises(tw.UnknownTask):
            call()
        assert time.monotonic() - started < 1.0


def test_function_names(client: tw.Client) -> None:
    """A malformed name is refused at submit; a well-formed one that does not import fails the
    task with the import error."""
    with pytest.raises(tw.InvalidRequest, match="package.module:function"):
        client.submit("not a function")
    with pytest.raises(tw.InvalidRequest, match="package.module:function"):
        client.submit_many("nocolon", [1])
    handle = client.submit("no_such_module_here:fn", 1)
    with pytest.raises(tw.TaskFailed) as caught:
        handle.result(timeout=30)
    assert caught.value.remote_type == "ModuleNotFoundError"
    assert "no_such_module_here" in caught.value.remote_message
    with pytest.raises(tw.InvalidRequest, match="lambda"):
        client.submit(lambda: 1)
    with pytest.raises(tw.InvalidRequest):
        client.options(retries=-1)
    with pytest.raises(tw.InvalidRequest):
        client.options(timeout=0)


@pytest.mark.parametrize("kill_after", [0, 20])
def test_coordinator_killed_mid_as_completed(fresh_cluster: Cluster, kill_after: int) -> None:
    """Scenario 6: with 200 tasks in flight, kill -9 the coordinator and restart it (right
    after the submits, adds maybe unacknowledged, or after 20 results): as_completed yields all
    200 once, and the store holds no duplicate of any resent add."""
    c = fresh_cluster
    c.start_coordinator()
    c.start_worker(1)
    c.start_worker(1)
    with tw.Client(c.address) as client:
        c.wait_for_workers(client, 2)
        tag = "scenario-6"
        handles = [client.submit("pt_tasks:sleep", 0.02, tag) for _ in range(100)]
        client.flush(timeout=30)
        handles += [client.submit("pt_tasks:sleep", 0.02, tag) for _ in range(100)]
        if kill_after == 0:
            c.kill_coordinator()
            time.sleep(0.3)
            c.restart_coordinator()
        seen = []
        for handle in tw.as_completed(handles, timeout=120):
            seen.append(handle)
            if len(seen) == kill_after:
                # Mid-as_completed, with adds possibly unacknowledged: kill -9 and restart.
                c.kill_coordinator()
                time.sleep(0.3)
                c.restart_coordinator()
        assert len(seen) == 200 and len(set(seen)) == 200
        assert all(h.result() == 0.02 for h in handles)
        ids = [h.id for h in handles]
        assert len(set(ids)) == 200
        stored = [t for t in client.list() if tag in t.args]
        assert len(stored) == 200, f"{len(stored)} tasks stored for 200 submits"


def _in_forked_child(client: tw.Client, address: str, out) -> None:
    try:
        client.submit("pt_tasks:add", 1, 1)
        out.put("the parent's client was usable")
    except tw.TatzelwurmError as err:
        first = str(err)
    with tw.Client(address) as fresh:
        out.put((first, fresh.submit("pt_tasks:add", 2, 2).result(timeout=30)))


def test_client_across_fork(client: tw.Client, cluster) -> None:
    """In a forked child, the parent's client says to make a new one instead of hanging, and a
    new client works there."""
    import multiprocessing

    assert client.submit("pt_tasks:add", 0, 1).result(timeout=30) == 1
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_in_forked_child, args=(client, cluster.address, out))
    child.start()
    try:
        first, value = out.get(timeout=30)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    assert "before a fork" in first and "new tatzelwurm.Client" in first
    assert value == 4
    assert client.submit("pt_tasks:add", 1, 2).result(timeout=30) == 3


def test_too_large_argument_fails_alone(client: tw.Client) -> None:
    """A 70 MB argument fails its own task with RequestTooLarge, naming the limit; the
    submits around it are not affected."""
    before = client.submit("pt_tasks:noop", 1)
    big = client.submit("pt_tasks:noop", "x" * (70 * 1024 * 1024))
    after = client.submit("pt_tasks:noop", 2)
    with pytest.raises(tw.RequestTooLarge, match="MiB"):
        big.result(timeout=60)
    with pytest.raises(tw.RequestTooLarge):
        big.id
    assert before.result(timeout=30) == 1 and after.result(timeout=30) == 2
