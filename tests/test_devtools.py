"""Tests of devtools.secantus against the real SecantusDB server."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import trustme
from devtools.secantus import REPO_ROOT, SecantusServer, ensure_installed
from pymongo import MongoClient

live = pytest.mark.live


@pytest.fixture(scope="session")
def secantusd() -> Path:
    if configured := os.environ.get("SECANTUSD"):
        return Path(configured)
    return ensure_installed(REPO_ROOT)


def connect(url: str, **options: Any) -> MongoClient[dict[str, Any]]:
    return MongoClient(url, serverSelectionTimeoutMS=5000, **options)


def ping(url: str, **options: Any) -> float:
    with connect(url, **options) as client:
        ok: float = client.admin.command("ping")["ok"]
        return ok


@live
def test_start_answers_ping(secantusd: Path, tmp_path: Path) -> None:
    with SecantusServer(secantusd, log_path=tmp_path / "server.log") as server:
        assert server.url == f"mongodb://127.0.0.1:{server.port}/?directConnection=true"
        assert ping(server.url) == 1.0


@live
def test_stop_refuses_connections(secantusd: Path) -> None:
    server = SecantusServer(secantusd)
    server.start()
    pid = server.pid
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


@live
def test_kill_then_restart_keeps_committed_document(secantusd: Path, tmp_path: Path) -> None:
    server = SecantusServer(
        secantusd,
        storage_path=str(tmp_path / "data"),
        extra_args=["--sync-on-commit"],  # without it a SIGKILL loses recent writes
        log_path=tmp_path / "server.log",
    )
    server.start()
    try:
        document = {"_id": "before-kill", "n": 1}
        with connect(server.url) as client:
            client.crash.docs.insert_one(dict(document))  # insert_one adds nothing: _id is set
        first_pid = server.pid
        server.kill()
        server.start()
        assert server.pid != first_pid
        with connect(server.url) as client:
            assert client.crash.docs.find_one({"_id": "before-kill"}) == document
    finally:
        server.stop()


@live
def test_start_refuses_a_busy_port(secantusd: Path) -> None:
    with SecantusServer(secantusd) as server:
        second = SecantusServer(secantusd, port=server.port)
        with pytest.raises(RuntimeError, match="in use"):
            second.start()
        assert not second.running
        assert ping(server.url) == 1.0


@live
def test_early_exit_reports_log_tail(secantusd: Path) -> None:
    server = SecantusServer(secantusd, extra_args=["--no-such-flag"])
    with pytest.raises(RuntimeError, match=r"exited with code 2(.|\n)*--no-such-flag"):
        server.start()
    assert not server.running


@live
def test_tls_server_pings_with_client_options(secantusd: Path, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    tls = {"tls": True, "tlsCAFile": str(ca_file)}
    tls_args = ["--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file)]
    with SecantusServer(secantusd, extra_args=tls_args, client_options=tls) as server:
        assert ping(server.url, **tls) == 1.0
