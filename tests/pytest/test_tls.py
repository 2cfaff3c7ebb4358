"""TLS from Python: a coordinator started with --tls-cert/--tls-key is reached with
``Client(tls_ca=...)`` or ``TATZELWURM_TLS_CA``, and a task runs through a worker connected
over TLS; a plain client, an untrusted certificate and a wrong host name each get one sentence.
The certificates are made when the test runs (openssl)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Tuple

import pytest

import tatzelwurm as tw

from conftest import Cluster

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command makes the test certificates"
)


def make_certificates(root: Path, host_ip: str = "127.0.0.1") -> Tuple[Path, Path, Path]:
    """A CA, and a server certificate it signs for `host_ip`: (ca.pem, server.pem, server.key)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=root)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=tatzelwurm pytest CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={host_ip}")
    (root / "server.ext").write_text(
        f"subjectAltName=IP:{host_ip}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
    )  # fmt: skip
    return root / "ca.pem", root / "server.pem", root / "server.key"


def test_client_and_worker_over_tls(fresh_cluster: Cluster, tmp_path: Path, monkeypatch) -> None:
    """With the CA given as tls_ca (or in TATZELWURM_TLS_CA), the client talks to a TLS
    coordinator and a worker connected with --tls-ca runs its task; plain text, the system's
    roots (which do not hold the test CA) and tls=False are refused with a sentence each."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_certificates(certs)
    c = fresh_cluster
    c.start_coordinator("127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key))
    c.start_worker(1, "--tls-ca", str(ca))

    with tw.Client(c.address, tls_ca=ca) as client:
        c.wait_for_workers(client, 1)
        assert client.submit("pt_tasks:add", 20, 22).result(timeout=30) == 42
        follow = client.events(follow=True)
        first = next(follow)  # a following stream's own connection is TLS too
        assert first.seq >= 1
        follow.close()

    monkeypatch.setenv("TATZELWURM_TLS_CA", str(ca))
    with tw.Client(c.address) as client:
        assert [w.name for w in client.workers()] == ["pytest-0"]
    with pytest.raises((tw.CoordinatorRefused, tw.CoordinatorUnavailable), match="TLS"):
        tw.Client(c.address, tls=False)
    monkeypatch.delenv("TATZELWURM_TLS_CA")

    with pytest.raises((tw.CoordinatorRefused, tw.CoordinatorUnavailable), match="TLS"):
        tw.Client(c.address)
    with pytest.raises((tw.CoordinatorRefused, tw.CoordinatorUnavailable), match="tls-ca"):
        tw.Client(c.address, tls=True)
    with pytest.raises(tw.InvalidRequest, match="tls_ca"):
        tw.Client(c.address, tls=False, tls_ca=ca)
    with pytest.raises(tw.InvalidRequest):
        tw.Client(c.address, tls_ca=tmp_path / "missing.pem")


def test_wrong_host_name(fresh_cluster: Cluster, tmp_path: Path) -> None:
    """A certificate made for another address is refused with a sentence naming the name."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_certificates(certs, host_ip="127.0.0.2")
    c = fresh_cluster
    c.start_coordinator("127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key))
    with pytest.raises((tw.CoordinatorRefused, tw.CoordinatorUnavailable), match="127.0.0.1"):
        tw.Client(c.address, tls_ca=ca)
