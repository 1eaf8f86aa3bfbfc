"""HTTP/3 through a real `rws run`: one process, and a supervisor with two workers, each
worker on its own UDP socket of the HTTPS port (so a QUIC connection stays in the worker
that took it). Each answer names the worker that gave it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.protocols.h3client import h3_connect
from tests.tls.test_termination import Authority

from .processes import Process, alive, kill, wait_gone

CONNECTIONS = 24  # fresh QUIC connections (each from its own UDP port) per round


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


def config(tmp_path: Path, ca: Authority, workers: int, body: str = "v0") -> dict[str, Any]:
    crt, key = ca.leaf("a", "a.test")
    return {
        "admin": {"listen": f"unix/{tmp_path / 'admin.sock'}"},
        "workers": workers,
        "apps": {
            "http": {"servers": {"srv0": {
                "listen": ["127.0.0.1:0"],
                "routes": [{"handle": [{"handler": "static_response",
                                        "body": body + " {env.RWS_WORKER} {http.request.proto}"}]}],
                "tls_connection_policies": [{}],
                "automatic_https": {"disable": True},
            }}},
            "tls": {"certificates": {"load_files": [{"certificate": str(crt), "key": str(key)}]}},
        },
    }


@pytest.fixture
def running(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[[dict[str, Any]], Process]]:
    started: list[Process] = []

    def start(tree: dict[str, Any]) -> Process:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(tree))
        process = Process(["run", "--config", str(path)], tmp_path, env)
        started.append(process)
        workers = tree["workers"]
        process.wait_for("config applied", count=workers + 1 if workers > 1 else 1, timeout=60)
        return process

    yield start
    for process in started:
        pids = worker_pids(process)
        process.stop()
        for pid in pids.values():
            kill(pid)


def worker_pids(process: Process) -> dict[int, int]:
    return {int(r["worker"]): int(r["pid"]) for r in list(process.records) if r.get("msg") == "worker started"}


def h3_port(process: Process) -> int:
    record = process.wait_for("enabling HTTP/3 listener")
    return int(record["bound"][1])


async def _bodies(port: int, ca: Path, count: int) -> list[str]:
    async def one() -> str:
        async with h3_connect(port, ca) as client:
            reply = await client.request("GET", "/")
            assert reply.status == 200
            return bytes(reply.data).decode()
    return list(await asyncio.gather(*(one() for _ in range(count))))


def h3_bodies(port: int, ca: Authority, count: int = CONNECTIONS) -> list[str]:
    return asyncio.run(asyncio.wait_for(_bodies(port, ca.pem, count), 60))


def alt_svc(port: int, ca: Authority) -> str | None:
    out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--max-time", "20", "--cacert", str(ca.pem),
                          "--resolve", f"a.test:{port}:127.0.0.1", f"https://a.test:{port}/"],
                         capture_output=True, text=True, timeout=30)
    return next((line.split(":", 1)[1].strip() for line in out.stdout.splitlines()
                 if line.lower().startswith("alt-svc:")), None)


def test_rws_run_serves_http3_and_advertises_it(tmp_path: Path, ca: Authority, running: Any) -> None:
    process = running(config(tmp_path, ca, workers=1))
    port = h3_port(process)
    assert port == process.port()  # the UDP side of the HTTPS port
    assert set(h3_bodies(port, ca, 4)) == {"v0  HTTP/3.0"}  # (one process: no worker number)
    assert alt_svc(port, ca) == f'h3=":{port}"; ma=2592000'
    assert process.stop() == 0


def test_two_workers_each_serve_the_quic_connections_they_took(tmp_path: Path, ca: Authority, running: Any) -> None:
    process = running(config(tmp_path, ca, workers=2))
    port = h3_port(process)
    bodies = h3_bodies(port, ca)
    # every connection was served whole by one worker; the kernel spread them over both
    assert set(bodies) == {"v0 0 HTTP/3.0", "v0 1 HTTP/3.0"}, bodies
    assert alt_svc(port, ca) == f'h3=":{port}"; ma=2592000'

    with httpx.Client(transport=httpx.HTTPTransport(uds=str(tmp_path / "admin.sock")), base_url="http://localhost",
                      timeout=60) as api:
        routes = "/config/apps/http/servers/srv0/routes/0/handle/0/body"
        assert api.patch(routes, json="v1 {env.RWS_WORKER} {http.request.proto}").status_code == 200
    assert set(h3_bodies(port, ca)) == {"v1 0 HTTP/3.0", "v1 1 HTTP/3.0"}  # the same sockets, the new config

    victim = worker_pids(process)[1]
    os.kill(victim, signal.SIGKILL)
    process.wait_for("worker started", count=3)
    replacement = worker_pids(process)[1]
    assert replacement != victim and alive(replacement)
    # the replacement took over worker 1's UDP socket: clients the kernel sends there are served
    assert set(h3_bodies(port, ca)) == {"v1 0 HTTP/3.0", "v1 1 HTTP/3.0"}


def test_fewer_workers_leave_no_udp_socket_unread(tmp_path: Path, ca: Authority, running: Any) -> None:
    process = running(config(tmp_path, ca, workers=3))
    port = h3_port(process)
    assert set(h3_bodies(port, ca, 36)) == {"v0 0 HTTP/3.0", "v0 1 HTTP/3.0", "v0 2 HTTP/3.0"}
    pids = worker_pids(process)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(tmp_path / "admin.sock")), base_url="http://localhost",
                      timeout=60) as api:
        assert api.patch("/config/workers", json=1).status_code == 200
    wait_gone([pids[1], pids[2]])
    # the sockets of workers 1 and 2 are closed everywhere: every client reaches worker 0
    assert set(h3_bodies(port, ca)) == {"v0 0 HTTP/3.0"}
