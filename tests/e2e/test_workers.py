"""`workers N`: a real `rws run` supervisor with worker processes, driven as a user drives
it (the admin API, signals, `rws stop`), its processes checked by PID.

Each worker answers with `{env.RWS_WORKER}` (its slot, set by the supervisor) in the
body, so a test can tell which worker served a request.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from .processes import Process, alive, kill, wait_gone

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}


@pytest.fixture
def running(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(config: dict[str, Any], extra_env: dict[str, str] | None = None, wait: bool = True) -> Process:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        process = Process(["run", "--config", str(path)], tmp_path, {**env, **(extra_env or {})})
        started.append(process)
        if wait:
            workers = wanted(config)
            process.wait_for("config applied", count=workers + 1 if workers > 1 else 1, timeout=60)
        return process

    yield start
    for process in started:
        pids = worker_pids(process)
        process.stop()
        for pid in pids.values():
            kill(pid)


def wanted(config: dict[str, Any]) -> int:
    return len(os.sched_getaffinity(0)) if config.get("workers") == "auto" else int(config.get("workers", 1))


def site(tmp_path: Path, body: str = "v0", workers: Any = 2, **more: Any) -> dict[str, Any]:
    """A JSON config: one server answering `<body> <worker slot>`, the admin API on a socket."""
    return {
        "admin": {"listen": f"unix/{tmp_path / 'admin.sock'}"},
        "workers": workers,
        "apps": {"http": {"servers": {"srv0": {
            "listen": ["127.0.0.1:0"],
            "routes": [{"handle": [{"handler": "static_response", "body": body + " {env.RWS_WORKER}"}]}],
        }}, **more}},
    }


def admin(tmp_path: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(tmp_path / "admin.sock")), base_url="http://localhost",
                        timeout=120)


def worker_pids(process: Process) -> dict[int, int]:
    """Slot -> PID of the newest worker started in each slot."""
    pids: dict[int, int] = {}
    for record in list(process.records):
        if record.get("msg") == "worker started":
            pids[int(record["worker"])] = int(record["pid"])
    return pids


def fresh_requests(url: str, count: int, concurrency: int = 16) -> list[str]:
    """`count` requests, each on a new connection, `concurrency` at a time; their bodies."""
    def one(_: int) -> str:
        with httpx.Client(timeout=10) as client:
            response = client.get(url, headers={"Connection": "close"})
            assert response.status_code == 200, response.text
            return response.text

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


def until_both(url: str, expect: str, slots: int = 2, rounds: int = 50) -> set[str]:
    """Fresh-connection requests until every worker has answered; every body must be
    `expect <slot>`. The set of bodies seen."""
    seen: set[str] = set()
    for _ in range(rounds):
        bodies = fresh_requests(url, 32)
        assert all(body.startswith(expect + " ") for body in bodies), bodies
        seen.update(bodies)
        if len(seen) == slots:
            break
    return seen


class Load:
    """Clients sending requests in a loop (keep-alive) until stopped; failures recorded."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.failures: list[str] = []
        self.served = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopping.is_set():
                try:
                    response = client.get(self.url)
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text}")
                    self.served += 1
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))

    def wait_served(self, more: int) -> None:
        target, deadline = self.served + more, time.monotonic() + 30
        while self.served < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)


def partial_post(port: int) -> socket.socket:
    """A POST whose body is partly sent: it stays in flight until `finish_post`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    return sock


def finish_post(sock: socket.socket) -> bytes:
    """The rest of the body, then whatever the server answers until `got abcde` or EOF."""
    sock.sendall(b"cde")
    data = b""
    try:
        while b"got abcde" not in data:
            part = sock.recv(4096)
            if not part:
                break
            data += part
    except OSError:  # a reset ends the answer as well as a close: the caller judges what came
        pass
    sock.close()
    return data


# --- serving ---------------------------------------------------------------------------------


def test_two_workers_serve_the_same_port(tmp_path: Path, running: Any) -> None:
    (tmp_path / "rws").mkdir()  # a folder named like the package in the working directory changes nothing
    process = running(site(tmp_path))
    pids = worker_pids(process)
    assert sorted(pids) == [0, 1] and process.proc.pid not in pids.values()
    assert until_both(process.url(), "v0") == {"v0 0", "v0 1"}
    listeners = [r for r in process.records if r.get("msg") == "listener bound"]
    assert len(listeners) == 2  # the supervisor bound the HTTP port and the admin socket, nobody else


def test_workers_auto_starts_one_per_cpu(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path, workers="auto"))
    assert len(worker_pids(process)) == len(os.sched_getaffinity(0))


def test_one_worker_is_one_process(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path, workers=1))
    assert fresh_requests(process.url(), 4) == ["v0 "] * 4  # served by `rws run` itself
    assert worker_pids(process) == {}


def test_thirty_admin_patches_under_load_reach_both_workers(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    url = process.url()
    load = Load(url)
    try:
        with admin(tmp_path) as api:
            for i in range(1, 31):
                response = api.patch("/config/apps/http/servers/srv0/routes/0/handle/0/body",
                                     json=f"v{i} {{env.RWS_WORKER}}")
                assert response.status_code == 200, response.text
                # answered only once every worker switched: no new connection sees the old body
                assert all(body.startswith(f"v{i} ") for body in fresh_requests(url, 16, 8))
                load.wait_served(10)
    finally:
        load.stop()
    assert load.failures == []
    assert load.served > 300
    assert until_both(url, "v30") == {"v30 0", "v30 1"}


def _exchange(sock: socket.socket) -> tuple[str, str]:
    """One GET on a keep-alive connection: (head, body) of the answer."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    return head.decode(), body.decode()


def test_a_connection_stays_on_the_config_that_accepted_it(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    with socket.create_connection(("127.0.0.1", process.port()), timeout=10) as sock:
        _, first = _exchange(sock)
        assert first.startswith("v0 ")
        with admin(tmp_path) as api:
            assert api.patch("/config/apps/http/servers/srv0/routes/0/handle/0/body",
                             json="v1 {env.RWS_WORKER}").status_code == 200
        head, second = _exchange(sock)  # the same worker, the old config, and then the connection ends
        assert second == first and "Connection: close" in head
    assert until_both(process.url(), "v1") == {"v1 0", "v1 1"}


def test_a_bad_config_leaves_every_worker_on_the_old_one(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    with admin(tmp_path) as api:
        before = api.get("/config/").json()
        response = api.put("/config/apps/http/servers/srv0/routes/0/handle/0/status_code", json="abc")
        assert response.status_code == 400 and "error" in response.json()
        assert api.get("/config/").json() == before
    assert until_both(process.url(), "v0") == {"v0 0", "v0 1"}


def plugins(env: dict[str, str]) -> dict[str, str]:
    """The environment that loads the test modules of tests/e2e/plugins."""
    return {"PYTHONPATH": os.pathsep.join([str(PLUGINS), env.get("PYTHONPATH", "")]), "RWS_TEST_PLUGINS": "1"}


def test_a_config_one_worker_refuses_is_aborted_in_all(tmp_path: Path, running: Any, env: dict[str, str]) -> None:
    """The `worker_probe` test module (tests/e2e/plugins) refuses to build in worker 1 only:
    worker 0 prepares the new config, worker 1 fails, and both stay on the old one."""
    process = running(site(tmp_path), extra_env=plugins(env))
    with admin(tmp_path) as api:
        before = api.get("/config/").json()
        response = api.patch("/config/apps/http/servers/srv0/routes/0/handle/0",
                             json={"handler": "worker_probe", "body": "v1 {env.RWS_WORKER}"})
        assert response.status_code == 400
        assert "worker 1" in response.json()["error"] and "refuses" in response.json()["error"]
        assert api.get("/config/").json() == before
    assert until_both(process.url(), "v0") == {"v0 0", "v0 1"}
    assert process.proc.poll() is None and sorted(worker_pids(process)) == [0, 1]


def test_sighup_reloads_every_worker(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    config = site(tmp_path, "v1")
    (tmp_path / "config.json").write_text(json.dumps(config))
    process.proc.send_signal(signal.SIGHUP)
    process.wait_for("config applied", count=6)
    assert until_both(process.url(), "v1") == {"v1 0", "v1 1"}


def test_the_worker_count_changes_with_the_config(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    first = worker_pids(process)
    with admin(tmp_path) as api:
        assert api.patch("/config/workers", json=3).status_code == 200
        pids = worker_pids(process)
        assert sorted(pids) == [0, 1, 2] and pids[0] == first[0] and pids[1] == first[1]
        assert until_both(process.url(), "v0", slots=3) == {"v0 0", "v0 1", "v0 2"}
        assert api.patch("/config/workers", json=1).status_code == 200
    wait_gone([pids[1], pids[2]])
    assert alive(pids[0])
    assert set(fresh_requests(process.url(), 20)) == {"v0 0"}


def test_a_listener_added_by_the_admin_api_reaches_every_worker(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with admin(tmp_path) as api:
        response = api.patch("/config/apps/http/servers/srv0/listen", json=["127.0.0.1:0", f"127.0.0.1:{port}"])
        assert response.status_code == 200, response.text
    assert until_both(f"http://127.0.0.1:{port}/", "v0") == {"v0 0", "v0 1"}
    assert until_both(process.url(), "v0") == {"v0 0", "v0 1"}  # the first port stays


# --- lifecycle -------------------------------------------------------------------------------


def test_a_killed_worker_is_replaced_and_load_loses_only_its_requests(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    url = process.url()
    victim = worker_pids(process)[1]
    clients = 4
    load = Load(url, clients)
    try:
        load.wait_served(200)
        os.kill(victim, signal.SIGKILL)
        process.wait_for("worker exited unexpectedly; replacing it")
        process.wait_for("worker started", count=3)
        load.wait_served(200)
    finally:
        load.stop()
    # a client loses at most the one request it had on the killed worker
    assert len(load.failures) <= clients, load.failures
    exited = process.wait_for("worker exited unexpectedly; replacing it")
    assert exited["worker"] == 1 and exited["pid"] == victim and exited["code"] == "SIGKILL"
    replacement = worker_pids(process)[1]
    assert replacement != victim and alive(replacement) and not alive(victim)
    assert until_both(url, "v0") == {"v0 0", "v0 1"}


def test_a_worker_that_keeps_dying_is_restarted_with_growing_pauses(tmp_path: Path, running: Any,
                                                                  env: dict[str, str]) -> None:
    config = site(tmp_path)
    config["apps"]["http"]["servers"]["srv0"]["routes"].insert(0, {
        "match": [{"path": ["/crash"]}], "handle": [{"handler": "worker_crash"}]})
    process = running(config, extra_env=plugins(env))
    crashes = 0
    with httpx.Client(timeout=10) as client:
        while not any(r.get("msg") == "worker keeps exiting; waiting before the next start" for r in process.records):
            assert crashes < 20, process.lines
            try:
                client.get(process.url("/crash"), headers={"Connection": "close"})
            except httpx.HTTPError:
                crashes += 1
            process.wait_for("worker started", count=2 + crashes)
    pause = process.wait_for("worker keeps exiting; waiting before the next start")
    # each slot restarts at once three times within the window; its fourth exit waits
    assert pause["pause"] >= 1 and 4 <= crashes <= 7
    restarted = process.wait_for("worker started", count=2 + crashes)
    assert restarted["worker"] == pause["worker"] and restarted["ts"] - pause["ts"] >= pause["pause"]
    assert until_both(process.url(), "v0") == {"v0 0", "v0 1"}  # both slots serve again after the pause


def test_rws_stop_leaves_no_process_behind(tmp_path: Path, running: Any, env: dict[str, str]) -> None:
    process = running(site(tmp_path))
    pids = [process.proc.pid, *worker_pids(process).values()]
    result = subprocess.run([sys.executable, "-m", "rws", "stop", "--address", f"unix/{tmp_path / 'admin.sock'}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert process.proc.wait(30) == 0
    wait_gone(pids)


def test_sigterm_drains_a_request_in_flight_on_a_worker(tmp_path: Path, running: Any) -> None:
    config = site(tmp_path)
    config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["body"] = "got {http.request.body}"
    process = running(config)
    port = process.port()
    sock = partial_post(port)  # the request is in flight
    time.sleep(0.3)
    pids = [process.proc.pid, *worker_pids(process).values()]
    process.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    data = finish_post(sock)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"got abcde"), data
    assert process.proc.wait(30) == 0
    wait_gone(pids)


def test_the_supervisors_death_takes_the_workers_with_it(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    pids = list(worker_pids(process).values())
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    process.proc.kill()
    process.proc.wait(10)
    wait_gone(pids)


# --- shared views ----------------------------------------------------------------------------


def test_admin_metrics_add_up_every_worker(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path, metrics={}))
    bodies = fresh_requests(process.url(), 200)
    assert {"v0 0", "v0 1"} <= set(bodies)
    with admin(tmp_path) as api:
        text = api.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("caddy_http_requests_total{")]
    assert lines == ['caddy_http_requests_total{handler="",server="srv0"} 200'], text
    rss = next(line for line in text.splitlines() if line.startswith("process_resident_memory_bytes"))
    assert int(rss.split()[1]) > 3 * 20_000_000  # three processes' memory


class HealthBackend:
    """An upstream whose /health answers `status` and records each check's X-Checker header."""

    def __init__(self) -> None:
        self.status = 503
        self.checkers: list[str] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/health":
                    backend.checkers.append(self.headers.get("X-Checker", "?"))
                    status = backend.status
                else:
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:  # quiet: no line per request on stderr
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_active_health_checks_run_once_and_reach_every_worker(tmp_path: Path, running: Any) -> None:
    backend = HealthBackend()
    try:
        config = site(tmp_path)
        config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"] = [{
            "handler": "reverse_proxy",
            "upstreams": [{"dial": f"127.0.0.1:{backend.port}"}],
            "health_checks": {"active": {"uri": "/health", "interval": "100ms",
                                         "headers": {"X-Checker": ["{env.RWS_WORKER}-checker"]}}},
        }]
        process = running(config)
        url = process.url()
        with admin(tmp_path) as api:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                states = api.get("/reverse_proxy/upstreams").json()
                if states and not states[0]["healthy"]:
                    break
                time.sleep(0.05)
            assert states == [{"address": f"127.0.0.1:{backend.port}", "num_requests": 0, "fails": 0,
                               "healthy": False, "circuit": "closed"}]
            with httpx.Client(timeout=10) as client:  # every worker knows the host is down
                statuses = {client.get(url, headers={"Connection": "close"}).status_code for _ in range(40)}
            assert statuses == {503}
            backend.status = 200
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not api.get("/reverse_proxy/upstreams").json()[0]["healthy"]:
                time.sleep(0.05)
        assert fresh_requests(url, 40) == ["ok"] * 40
        # the checks ran in the supervisor alone (no worker slot in the header)
        assert set(backend.checkers) == {"-checker"}
    finally:
        backend.close()
