"""`workers N` under review: each test drives a real `rws run` supervisor (see
test_workers.py) through a case a review found broken: a second signal while draining,
hung and retiring workers, listeners given up and taken back while a worker drains,
concurrent messages to one worker, counters of replaced workers, a client that leaves
during a config change, and a config that kills the workers."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .processes import alive, kill, wait_gone
from .test_workers import (  # noqa: F401 - fixtures
    admin,
    env,
    finish_post,
    fresh_requests,
    partial_post,
    running,
    site,
    worker_pids,
)

pytestmark = pytest.mark.timeout(110)


def body_echo_site(tmp_path: Path, **more: Any) -> dict[str, Any]:
    """`site`, whose handler answers with the request body: a partial POST stays in flight."""
    config = site(tmp_path, **more)
    config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["body"] = "got {http.request.body} {env.RWS_WORKER}"
    return config


def try_get(url: str, timeout: float = 5) -> str:
    """One fresh-connection GET: its body, or the error."""
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.get(url, headers={"Connection": "close"})
            return f"{response.status_code} {response.text}"
    except httpx.HTTPError as exc:
        return f"error {exc!r}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- 1. a second signal while draining leaves the workers running ------------------------------


def test_second_signal_while_draining_ends_the_workers_too(tmp_path: Path, running: Any) -> None:
    process = running(body_echo_site(tmp_path))
    port = process.port()
    socks = [partial_post(port) for _ in range(6)]  # in flight on (very likely) both workers
    try:
        time.sleep(0.5)
        pids = list(worker_pids(process).values())
        process.proc.send_signal(signal.SIGTERM)  # graceful: waits for the requests in flight
        process.wait_for("shutting down")
        time.sleep(1.0)
        assert process.proc.poll() is None
        process.proc.send_signal(signal.SIGTERM)  # second signal: force, now
        assert process.proc.wait(10) == 2
        # the forced stop must not leave worker processes behind (they still drain)
        wait_gone(pids, timeout=10)
    finally:
        for sock in socks:
            sock.close()


# --- 2. a hung worker holds up `stop` (and the admin lock) forever -----------------------------


def test_a_hung_idle_worker_does_not_hold_up_stop_forever(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path))
    pids = worker_pids(process)
    os.kill(pids[1], signal.SIGSTOP)  # hung (as a worker stuck in a loop): no request in flight anywhere
    try:
        process.proc.send_signal(signal.SIGTERM)
        process.wait_for("shutting down")
        # nothing is in flight, yet the supervisor waits for a `stop` answer with no time limit
        deadline = time.monotonic() + 20
        while process.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.proc.poll() is not None, "the supervisor is still stopping 20s later"
    finally:
        kill(pids[1])


# --- 3. fewer workers: the retiring one keeps accepting connections, and drops them ------------


def test_fewer_workers_drops_no_connection_while_one_drains(tmp_path: Path, running: Any) -> None:
    process = running(body_echo_site(tmp_path))
    port = process.port()
    socks = [in_flight_on(port, "1")]  # a request in flight on worker 1
    try:
        with admin(tmp_path) as api:
            assert api.patch("/config/workers", json=1).status_code == 200
        process.wait_for("config applied", count=4)
        time.sleep(0.3)
        # worker 1 drains its requests in flight; new connections must all be served (by worker 0)
        results = [try_get(f"http://127.0.0.1:{port}/") for _ in range(60)]
        bad = [r for r in results if not r.startswith("200 ")]
        assert bad == [], f"{len(bad)} of 60 new connections dropped: {bad[:3]}"
    finally:
        for sock in socks:
            sock.close()


# --- 4. a port removed and added again while a worker drains the old generation ----------------


def test_a_port_added_back_while_a_keepalive_connection_is_open(tmp_path: Path, running: Any) -> None:
    port, other = free_port(), free_port()
    config = site(tmp_path)
    config["apps"]["http"]["servers"]["srv0"]["listen"] = [f"127.0.0.1:{port}"]
    running(config)
    with httpx.Client(timeout=10) as keepalive, admin(tmp_path) as api:
        assert keepalive.get(f"http://127.0.0.1:{port}/").status_code == 200  # idle keep-alive stays open
        assert api.patch("/config/apps/http/servers/srv0/listen", json=[f"127.0.0.1:{other}"]).status_code == 200
        response = api.patch("/config/apps/http/servers/srv0/listen", json=[f"127.0.0.1:{port}"])
        # with one process the listener is reused; here the supervisor must bind again
        assert response.status_code == 200, response.text
        assert try_get(f"http://127.0.0.1:{port}/").startswith("200 v0")


def keepalive_unix(path: str) -> tuple[socket.socket, bytes]:
    """A Unix-socket connection left open (idle, keep-alive) after one request; the answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith((b" 0", b" 1")):
        part = sock.recv(4096)
        if not part:
            break
        data += part
    return sock, data[-1:]


def test_a_unix_socket_added_back_while_keepalive_connections_are_open(tmp_path: Path, running: Any) -> None:
    path = str(tmp_path / "srv.sock")
    config = site(tmp_path)
    config["apps"]["http"]["servers"]["srv0"]["listen"] = [f"unix/{path}", "127.0.0.1:0"]
    running(config)
    idle: list[socket.socket] = []
    try:
        slots: set[bytes] = set()
        while slots != {b"0", b"1"} and len(idle) < 60:  # idle keep-alive connections on both workers
            sock, slot = keepalive_unix(path)
            idle.append(sock)
            slots.add(slot)
        assert slots == {b"0", b"1"}
        with admin(tmp_path) as api:
            assert api.patch("/config/apps/http/servers/srv0/listen", json=["127.0.0.1:0"]).status_code == 200
            assert api.patch("/config/apps/http/servers/srv0/listen",
                             json=[f"unix/{path}", "127.0.0.1:0"]).status_code == 200
        results = []
        for _ in range(3):
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=3) as fresh:
                    results.append(f"{fresh.get('http://x/', headers={'Connection': 'close'}).status_code}")
            except httpx.HTTPError as exc:
                results.append(repr(exc))
        # each worker kept serving its old socket (whose file is gone): nobody accepts on the new one
        assert results == ["200"] * 3, results
    finally:
        for sock in idle:
            sock.close()


# --- 5. a big config sent while the admin API asks for /metrics: frames interleave ------------


def test_a_big_config_change_while_metrics_are_scraped_keeps_the_workers(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path, metrics={}))
    before = worker_pids(process)
    stop = threading.Event()
    scrapes: list[int] = []

    def scrape() -> None:
        with admin(tmp_path) as api:
            while not stop.is_set():
                scrapes.append(api.get("/metrics").status_code)

    threads = [threading.Thread(target=scrape, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        with admin(tmp_path) as api:
            api.timeout = httpx.Timeout(30)
            big = "v1 " + "x" * 1_500_000 + " {env.RWS_WORKER}"  # a 1.5 MB tree: more than the socket buffer holds
            response = api.patch("/config/apps/http/servers/srv0/routes/0/handle/0/body", json=big)
            assert response.status_code == 200, response.text[:300]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert scrapes
    time.sleep(0.5)
    lost = [r for r in process.records if r.get("msg") in ("worker exited unexpectedly; replacing it",
                                                           "the supervisor is gone; stopping")]
    assert lost == [], lost[:2]
    assert worker_pids(process) == before


def test_two_sends_to_one_worker_at_once_do_not_hang_the_admin_api(tmp_path: Path, running: Any) -> None:
    """A big config waits for the channel to drain (add_writer); a /metrics request to the same
    worker waits too and replaces that callback: the config's send is never woken again."""
    process = running(site(tmp_path))
    victim = worker_pids(process)[1]
    os.kill(victim, signal.SIGSTOP)  # slow to read (as a busy worker): the socket buffer fills
    outcome: list[Any] = []

    def call(method: str, path: str, **kwargs: Any) -> None:
        with admin(tmp_path) as api:
            api.timeout = httpx.Timeout(45)
            try:
                outcome.append((path, api.request(method, path, **kwargs).status_code))
            except httpx.HTTPError as exc:
                outcome.append((path, repr(exc)))

    big = "v1 " + "x" * 1_500_000 + " {env.RWS_WORKER}"
    write = threading.Thread(target=call, args=("PATCH", "/config/apps/http/servers/srv0/routes/0/handle/0/body"),
                             kwargs={"json": big}, daemon=True)
    write.start()
    time.sleep(1.5)
    scrape = threading.Thread(target=call, args=("GET", "/metrics"), daemon=True)
    scrape.start()
    time.sleep(1.5)
    os.kill(victim, signal.SIGCONT)  # reading again
    write.join(50)
    scrape.join(50)
    if ("/config/apps/http/servers/srv0/routes/0/handle/0/body", 200) not in outcome:
        process.proc.kill()  # it would not stop: the admin lock is held for good
    assert ("/config/apps/http/servers/srv0/routes/0/handle/0/body", 200) in outcome, outcome
    with admin(tmp_path) as api:  # and the admin API still takes writes
        api.timeout = httpx.Timeout(20)
        assert api.patch("/config/apps/http/servers/srv0/routes/0/handle/0/body", json="v2 {env.RWS_WORKER}").status_code == 200


# --- 6. /metrics counters go backwards when a worker is replaced ------------------------------


def _requests_total(tmp_path: Path) -> int:
    with admin(tmp_path) as api:
        text = api.get("/metrics").text
    line = next(line for line in text.splitlines() if line.startswith("caddy_http_requests_total{"))
    return int(float(line.split()[-1]))


def test_admin_metrics_counters_never_go_backwards(tmp_path: Path, running: Any) -> None:
    process = running(site(tmp_path, metrics={}))
    bodies = fresh_requests(process.url(), 100)
    assert {"v0 0", "v0 1"} <= set(bodies)
    assert _requests_total(tmp_path) == 100
    os.kill(worker_pids(process)[1], signal.SIGKILL)
    process.wait_for("worker started", count=3)
    process.wait_for("config applied", count=4)
    # a counter of the server (the supervisor lives on) must not decrease: Prometheus would
    # take it for a restart and count everything after it twice
    assert _requests_total(tmp_path) >= 100


# --- test-only modules, written next to the test's config ----------------------------------

PLUGIN = '''
import os
import time
from typing import Any

from rws.handlers.static_response import StaticResponseConfig, build_static_response
from rws.registry import ModuleSpec


def build_slow_start(config: StaticResponseConfig, ctx: Any) -> Any:
    """static_response whose background work takes 3 s to start in a worker (at commit)."""
    if os.environ.get("RWS_WORKER"):
        ctx.on_start(lambda: time.sleep(3))
    return build_static_response(config, ctx)


def build_crash(config: StaticResponseConfig, ctx: Any) -> Any:
    """static_response that ends a worker process while it builds (as a crash would)."""
    if os.environ.get("RWS_WORKER"):
        os._exit(3)
    return build_static_response(config, ctx)


SLOW_START = ModuleSpec(id="http.handlers.review_slow_start", config=StaticResponseConfig,
                        runtime="review_plugin:build_slow_start")
CRASH = ModuleSpec(id="http.handlers.review_crash_on_build", config=StaticResponseConfig,
                   runtime="review_plugin:build_crash")
'''

SITECUSTOMIZE = '''
from rws import registry

registry.MODULES["http.handlers.review_slow_start"] = "review_plugin:SLOW_START"
registry.MODULES["http.handlers.review_crash_on_build"] = "review_plugin:CRASH"
'''


def review_plugins(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    folder = tmp_path / "review_plugins"
    folder.mkdir(exist_ok=True)
    (folder / "review_plugin.py").write_text(PLUGIN)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])}


# --- 7. an admin client that gives up during the commit: workers and supervisor diverge -------


def test_a_write_whose_client_gives_up_during_commit_leaves_one_config(tmp_path: Path, running: Any,
                                                                      env: dict[str, str]) -> None:
    config = site(tmp_path)
    config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["handler"] = "review_slow_start"
    process = running(config, extra_env=review_plugins(tmp_path, env))
    with admin(tmp_path) as api:
        api.timeout = httpx.Timeout(1.5)  # the workers take 3 s to commit: the client gives up meanwhile
        with pytest.raises(httpx.ReadTimeout):
            api.patch("/config/apps/http/servers/srv0/routes/0/handle/0/body", json="v1 {env.RWS_WORKER}")
    time.sleep(3)
    with admin(tmp_path) as api:
        stored = api.get("/config/apps/http/servers/srv0/routes/0/handle/0/body").json()
    served = {body.split()[0] for body in fresh_requests(process.url(), 16)}
    # all or none: what the admin API reports is what the workers serve
    assert {stored.split()[0]} == served, (stored, served)


# --- 8. a config that makes every worker die while it is prepared is accepted -----------------


def test_a_config_that_kills_the_workers_is_refused(tmp_path: Path, running: Any, env: dict[str, str]) -> None:
    process = running(site(tmp_path), extra_env=review_plugins(tmp_path, env))
    with admin(tmp_path) as api:
        before = api.get("/config/").json()
        response = api.patch("/config/apps/http/servers/srv0/routes/0/handle/0",
                             json={"handler": "review_crash_on_build", "body": "v1"})
        # no worker prepared it (each one died building it): the write must fail and change nothing
        assert response.status_code == 400, (response.status_code, response.text)
        assert api.get("/config/").json() == before
    assert set(fresh_requests(process.url(), 8)) <= {"v0 0", "v0 1"}


# --- 9. stopping forgets the workers still retiring after a smaller `workers` ------------------


def in_flight_on(port: int, slot: str, tries: int = 40) -> socket.socket:
    """A connection whose first request was answered by worker `slot`, now with a POST in flight."""
    for _ in range(tries):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b" 0") and not data.endswith(b" 1"):
            part = sock.recv(4096)
            if not part:
                break
            data += part
        if data.endswith(b" " + slot.encode()):
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
            return sock
        sock.close()
    raise AssertionError(f"no connection reached worker {slot}")


def test_stop_waits_for_or_ends_a_retiring_worker(tmp_path: Path, running: Any) -> None:
    process = running(body_echo_site(tmp_path, grace_period="2s"))
    port = process.port()
    pids = worker_pids(process)
    sock = in_flight_on(port, "1")
    try:
        with admin(tmp_path) as api:
            assert api.patch("/config/workers", json=1).status_code == 200  # worker 1 retires, draining
        time.sleep(0.5)
        assert alive(pids[1])
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(30) == 0  # within the grace period (and its slack)
        wait_gone([pids[0], pids[1]])  # the retiring worker too
    finally:
        sock.close()
