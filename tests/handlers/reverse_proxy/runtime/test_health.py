"""Health checks of the reverse proxy against real backends on 127.0.0.1 (backends.py).

Active checks are driven one round at a time (`health.active.check_all()`) where a test
counts rounds, and by the background task (`start()`) where it waits for an outcome.
Passive checks and the circuit breaker are driven as the proxy drives them: pick an
available upstream, mark a probe, send a real request, `record` the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest

from backends import Backend, Exchange, closed_port
from rws.config.decode import decode
from rws.handlers.reverse_proxy.config import HealthChecksConfig
from rws.handlers.reverse_proxy.exchange import UpstreamResponse
from rws.handlers.reverse_proxy.health import Health, SendCheck
from rws.handlers.reverse_proxy.transport_config import HttpTransportConfig
from rws.handlers.reverse_proxy.upstream_pool import HttpTransport
from rws.handlers.reverse_proxy.upstreams import CLOSED, HALF_OPEN, OPEN, Host, Upstream

LOGGER = "rws.handlers.reverse_proxy.health"


def run(coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def config(**health: Any) -> HealthChecksConfig:
    """Health checks config from the JSON a user writes (durations in nanoseconds)."""
    return decode(HealthChecksConfig, json.loads(json.dumps(health)), "health_checks")  # type: ignore[no-any-return]


def ms(n: float) -> int:
    return int(n * 1_000_000)


def transport(**settings: Any) -> HttpTransport:
    """The proxy's `http` transport from the JSON a user writes; checks go through it."""
    return HttpTransport(decode(HttpTransportConfig, json.loads(json.dumps(settings)), "transport"))


send = transport().health_check  # the default transport: HTTP/1.1 to cleartext upstreams


def upstream(address: str) -> Upstream:
    return Upstream(address, Host(address))


def health(checks: HealthChecksConfig, *upstreams: Upstream, send: SendCheck = send) -> Health:
    made = Health(checks, upstreams, send=send)
    for u in upstreams:
        u.max_fails, u.breaker = made.max_fails, made.breaker
    return made


def check_once(checks: HealthChecksConfig, u: Upstream) -> bool:
    """One round of active checks on `u`; its health after it."""
    async def go() -> bool:
        h = health(checks, u)
        await h.active.check_all()  # type: ignore[union-attr]
        return u.healthy()

    return bool(run(go()))


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def backend() -> Any:
    b = Backend("ok")
    yield b
    b.close()


def answer(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> Callable[[Exchange], None]:
    return lambda ex: ex.reply(status, body, headers)


def slowly(seconds: float, status: int = 200, only: str = "") -> Callable[[Exchange], None]:
    """Answer `status` after `seconds` (only for target `only` when given)."""
    def respond(ex: Exchange) -> None:
        if not only or ex.target == only:
            time.sleep(seconds)
        ex.reply(status)

    return respond


def active(**fields: Any) -> HealthChecksConfig:
    return config(active={"uri": "/health", **fields})


# --- active checks: thresholds -------------------------------------------------------------


def test_a_host_goes_down_only_after_fails_failed_checks_in_a_row(backend: Backend) -> None:
    u = upstream(backend.address)

    async def go() -> list[bool]:
        h = health(active(fails=2, passes=2), u)
        seen = [u.healthy()]
        backend.respond = answer(500)
        for _ in range(2):
            await h.active.check_all()  # type: ignore[union-attr]
            seen.append(u.healthy())
        return seen

    assert run(go()) == [True, True, False]
    assert [ex.target for ex in backend.requests] == ["/health", "/health"]


def test_a_host_comes_back_only_after_passes_passed_checks_in_a_row(backend: Backend) -> None:
    u = upstream(backend.address)
    u.host.healthy = False

    async def go() -> list[bool]:
        h = health(active(fails=2, passes=2), u)
        seen = []
        for _ in range(2):
            await h.active.check_all()  # type: ignore[union-attr]
            seen.append(u.healthy())
        return seen

    assert run(go()) == [False, True]


def test_a_flapping_backend_does_not_bounce(backend: Backend) -> None:
    u = upstream(backend.address)
    statuses = iter([500, 200, 500, 200, 500, 500])
    backend.respond = lambda ex: ex.reply(next(statuses))

    async def go() -> list[bool]:
        h = health(active(fails=2), u)
        seen = []
        for _ in range(6):
            await h.active.check_all()  # type: ignore[union-attr]
            seen.append(u.host.healthy)
        return seen

    assert run(go()) == [True, True, True, True, True, False]


def test_two_checkers_of_one_host_keep_their_own_counts(backend: Backend) -> None:
    backend.respond = answer(500)
    u = upstream(backend.address)

    async def go() -> list[bool]:
        first, second = health(active(fails=2), u), health(active(fails=2), u)
        await first.active.check_all()  # type: ignore[union-attr]
        await second.active.check_all()  # type: ignore[union-attr]
        seen = [u.host.healthy]  # one failure each, not two in a row for either
        await second.active.check_all()  # type: ignore[union-attr]
        seen.append(u.host.healthy)
        return seen

    assert run(go()) == [True, False]


def test_the_background_checker_marks_a_host_down_and_up_and_logs_it(backend: Backend,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    u = upstream(backend.address)
    caplog.set_level(logging.INFO, LOGGER)

    async def go() -> None:
        h = health(active(interval=ms(20), timeout=ms(500)), u)
        h.start()
        try:
            await until(lambda: len(backend.requests) >= 2)
            assert u.healthy()
            backend.respond = answer(503)
            await until(lambda: not u.healthy())
            backend.respond = answer(200)
            await until(u.healthy)
        finally:
            h.close()

    run(go())
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert ("WARNING", "host is down") in records and ("INFO", "host is up") in records
    down = next(r for r in caplog.records if r.getMessage() == "host is down")
    assert down.host == backend.address  # type: ignore[attr-defined]


def test_started_outside_the_event_loop_the_checks_begin_with_the_first_record(backend: Backend) -> None:
    u = upstream(backend.address)
    h = health(active(interval=ms(10)), u)
    h.start()  # no event loop runs here, as when a config is built in a worker thread

    async def go() -> int:
        await asyncio.sleep(0.05)
        before = len(backend.requests)
        h.record(u, 200, 0.0, False)
        await until(lambda: len(backend.requests) >= 1)
        h.close()
        return before

    assert run(go()) == 0


def test_through_the_proxy_a_host_that_fails_its_checks_gets_no_requests(serve: Any) -> None:
    failing = {"health": False}
    b = Backend("one", lambda ex: ex.reply(500 if ex.target == "/health" and failing["health"] else 200, b"hi"))
    handler = {"handler": "reverse_proxy", "upstreams": [{"dial": b.address}],
               "health_checks": {"active": {"uri": "/health", "interval": ms(20)}}}
    route = {"handle": [handler]}
    tree = {"apps": {"http": {"servers": {"p": {"listen": ["127.0.0.1:0"], "routes": [route]}}}}}
    try:
        with serve(tree) as server:
            assert httpx.get(server.url("/")).status_code == 200
            failing["health"] = True
            assert wait_for_status(server.url("/"), 503)
            failing["health"] = False
            assert wait_for_status(server.url("/"), 200)
    finally:
        b.close()


def wait_for_status(url: str, status: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while httpx.get(url).status_code != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_close_stops_the_checker(backend: Backend) -> None:
    u = upstream(backend.address)

    async def go() -> int:
        h = health(active(interval=ms(10)), u)
        h.start()
        await until(lambda: len(backend.requests) >= 1)
        h.close()
        await asyncio.sleep(0.1)
        count = len(backend.requests)
        await asyncio.sleep(0.1)
        return len(backend.requests) - count

    assert run(go()) == 0


def test_checks_of_all_upstreams_run_at_once() -> None:
    started = []
    slow = [Backend("a"), Backend("b"), Backend("c")]
    gate = threading.Barrier(3, timeout=2)

    def respond(ex: Exchange) -> None:
        started.append(ex.target)
        gate.wait()  # only passes when all three checks are in flight together
        ex.reply(200)

    for b in slow:
        b.respond = respond
    try:
        ups = [upstream(b.address) for b in slow]

        async def go() -> list[bool]:
            h = health(active(timeout=ms(3000)), *ups)
            await h.active.check_all()  # type: ignore[union-attr]
            return [u.healthy() for u in ups]

        assert run(go()) == [True, True, True]
        assert len(started) == 3
    finally:
        for b in slow:
            b.close()


def test_the_last_checker_to_stop_leaves_its_host_up(backend: Backend) -> None:
    backend.respond = answer(500)
    u = upstream(backend.address)

    async def go() -> list[bool]:
        first = health(active(interval=ms(10_000)), u)
        second = health(active(interval=ms(10_000)), u)
        first.start()
        await until(lambda: not u.host.healthy)
        second.start()
        first.close()
        seen = [u.host.healthy]  # the second checker still watches: the verdict stands
        second.close()
        seen.append(u.host.healthy)
        return seen

    assert run(go()) == [False, True]


# --- active checks: what a pass is ---------------------------------------------------------


@pytest.mark.parametrize("status,expect,healthy", [
    (200, 0, True), (204, 0, True), (500, 0, False), (302, 0, False), (404, 0, False),
    (503, 503, True), (500, 503, False), (200, 503, False), (302, 3, True), (418, 4, True), (200, 4, False),
])
def test_expect_status(backend: Backend, status: int, expect: int, healthy: bool) -> None:
    backend.respond = answer(status, headers=[("Location", "/elsewhere")] if status == 302 else None)
    u = upstream(backend.address)

    assert check_once(active(expect_status=expect), u) is healthy


@pytest.mark.parametrize("body,pattern,max_size,healthy", [
    (b"status: OK", "OK$", 0, True),
    (b"status: nope", "OK$", 0, False),
    (b"OK\n", "OK$", 0, False),  # RE2's $ is the end of the text
    (b"all good", r"(?i)ALL\s+GOOD", 0, True),
    (b"xxxxxxxxOK", "OK", 5, False),  # only max_size bytes are looked at
    (b"OKxxxxxxxx", "OK", 5, True),
])
def test_expect_body(backend: Backend, body: bytes, pattern: str, max_size: int, healthy: bool) -> None:
    backend.respond = answer(200, body)
    u = upstream(backend.address)

    assert check_once(active(expect_body=pattern, max_size=max_size), u) is healthy


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_expect_body_reads_chunked_and_close_delimited_bodies(backend: Backend, framing: str) -> None:
    def respond(ex: Exchange) -> None:
        if framing == "chunked":
            ex.reply(200, b"3\r\nhea\r\n4\r\nlthy\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")])
        else:
            ex.sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhealthy")
            ex.sock.close()

    backend.respond = respond
    u = upstream(backend.address)

    assert check_once(active(expect_body="^healthy$", fails=1), u) is True


def test_a_body_shorter_than_its_content_length_fails(backend: Backend) -> None:
    def respond(ex: Exchange) -> None:
        ex.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nOK")
        ex.sock.close()

    backend.respond = respond
    u = upstream(backend.address)

    assert check_once(active(expect_body="OK"), u) is False


def test_a_malformed_response_fails(backend: Backend) -> None:
    def respond(ex: Exchange) -> None:
        ex.sock.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
        ex.sock.close()

    backend.respond = respond
    u = upstream(backend.address)

    assert check_once(active(), u) is False


def test_informational_responses_are_skipped(backend: Backend) -> None:
    backend.respond = lambda ex: ex.sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                                 b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
    u = upstream(backend.address)

    assert check_once(active(expect_body="^OK$"), u) is True


def test_redirects_are_not_followed_unless_asked(backend: Backend) -> None:
    def respond(ex: Exchange) -> None:
        if ex.target == "/health":
            ex.reply(302, headers=[("Location", "/real?x=1")])
        else:
            ex.reply(200, b"fine")

    backend.respond = respond

    async def go(follow: bool) -> bool:
        u = upstream(backend.address)
        h = health(active(follow_redirects=follow, headers={"Host": ["app.test"]}), u)
        await h.active.check_all()  # type: ignore[union-attr]
        return u.healthy()

    assert run(go(False)) is False
    assert [ex.target for ex in backend.requests] == ["/health"]
    assert run(go(True)) is True
    assert [ex.target for ex in backend.requests] == ["/health", "/health", "/real?x=1"]
    assert backend.requests[-1].header("Host") == "app.test"  # kept for a relative Location


def test_endless_redirects_fail(backend: Backend) -> None:
    backend.respond = answer(307, headers=[("Location", "/health")])
    u = upstream(backend.address)

    assert check_once(active(follow_redirects=True), u) is False
    assert len(backend.requests) == 11


# --- active checks: the request ------------------------------------------------------------


def test_the_check_request_has_the_configured_uri_method_headers_and_body(backend: Backend,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RWS_HEALTH_TOKEN", "s3cret")
    u = upstream(backend.address)

    async def go() -> None:
        h = health(active(uri="/status/a%20b?full=1&x=y", method="POST", body="ping {env.RWS_HEALTH_TOKEN}",
                          headers={"x-target": ["{http.reverse_proxy.active.target_upstream}"],
                                   "X-Token": ["{env.RWS_HEALTH_TOKEN}", "{http.request.uri}"]}), u)
        await h.active.check_all()  # type: ignore[union-attr]

    run(go())
    [ex] = backend.requests
    assert (ex.method, ex.target, ex.body) == ("POST", "/status/a%20b?full=1&x=y", b"ping s3cret")
    assert ex.header("Host") == backend.address
    assert ex.header("X-Target") == backend.address
    assert ex.all("X-Token") == ["s3cret", "{http.request.uri}"]  # only global placeholders are known
    assert ex.header("User-Agent") == "Go-http-client/1.1"


def test_the_host_header_can_be_overridden(backend: Backend) -> None:
    u = upstream(backend.address)

    async def go() -> None:
        h = health(active(headers={"host": ["internal.example"]}), u)
        await h.active.check_all()  # type: ignore[union-attr]

    run(go())
    assert backend.requests[0].all("Host") == ["internal.example"]


def test_the_deprecated_path_and_a_get_without_body(backend: Backend) -> None:
    u = upstream(backend.address)

    async def go() -> None:
        h = health(config(active={"path": "/ping"}), u)
        await h.active.check_all()  # type: ignore[union-attr]

    run(go())
    [ex] = backend.requests
    assert (ex.method, ex.target, ex.header("Content-Length")) == ("GET", "/ping", None)


def test_a_port_override_checks_the_same_host_on_another_port(backend: Backend) -> None:
    main = Backend("main", answer(500))
    try:
        u = upstream(main.address)

        assert check_once(config(active={"port": backend.port}), u) is True  # a port alone enables the checks
        assert main.requests == []
        assert [(ex.target, ex.header("Host")) for ex in backend.requests] == [("/", f"127.0.0.1:{backend.port}")]
    finally:
        main.close()


def test_an_upstream_override_checks_another_address(backend: Backend) -> None:
    u = upstream(f"127.0.0.1:{closed_port()}")

    assert check_once(active(upstream=backend.address, port=1), u) is True  # the port is ignored with an upstream
    assert backend.requests[0].header("Host") == backend.address


def test_a_closed_port_is_down() -> None:
    u = upstream(f"127.0.0.1:{closed_port()}")

    assert check_once(active(), u) is False


def test_a_backend_slower_than_the_timeout_is_down(backend: Backend) -> None:
    backend.respond = slowly(1.0)
    u = upstream(backend.address)

    async def go() -> bool:
        h = health(active(timeout=ms(100)), u)
        await asyncio.wait_for(h.active.check_all(), 0.9)  # type: ignore[union-attr]
        return u.healthy()

    assert run(go()) is False


def test_a_check_error_never_escapes_and_leaves_the_verdict_alone(backend: Backend,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    u = upstream(backend.address)
    calls = []

    @contextlib.asynccontextmanager
    async def broken(address: str, *request: Any) -> AsyncIterator[UpstreamResponse]:
        calls.append(address)
        raise RuntimeError("bug")
        yield  # never reached: it makes this a generator

    async def go() -> bool:
        h = health(active(interval=ms(10)), u, send=broken)
        h.start()
        try:
            await until(lambda: len(calls) >= 3)  # the task survived several rounds
        finally:
            h.close()
        return u.healthy()

    assert run(go()) is True
    assert any(r.getMessage() == "active health check failed" and r.exc_info for r in caplog.records)


def test_active_checks_are_off_without_uri_path_or_port(backend: Backend) -> None:
    u = upstream(backend.address)
    h = Health(config(active={"interval": ms(10), "upstream": backend.address}), [u], send=send)
    assert h.active is None


# --- passive checks ------------------------------------------------------------------------


async def send(h: Health, pool: list[Upstream], target: str = "/") -> int | None:
    """What the proxy does for one attempt: pick an available upstream, mark a probe on a
    circuit that is not closed, send the request, record the outcome. None: none available."""
    chosen = next((u for u in pool if u.available()), None)
    if chosen is None:
        return None
    host = chosen.host
    host.num_requests += 1
    if chosen.breaker is not None and host.circuit != CLOSED:
        host.probing = True
    began = time.monotonic()
    try:
        address, _, port = chosen.dial.rpartition(":")
        reader, writer = await asyncio.open_connection(address, int(port))
    except OSError:
        host.num_requests -= 1
        h.record(chosen, None, time.monotonic() - began, True)
        return 502
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status = int((await reader.readline()).split()[1])
        await reader.read()
    finally:
        writer.close()
        host.num_requests -= 1
    h.record(chosen, status, time.monotonic() - began, False)
    return status


def passive(**fields: Any) -> HealthChecksConfig:
    return config(passive={"fail_duration": ms(200), **fields})


def test_a_transport_error_is_a_failure_forgotten_after_fail_duration() -> None:
    u = upstream(f"127.0.0.1:{closed_port()}")

    async def go() -> None:
        h = health(passive(), u)
        assert await send(h, [u]) == 502
        assert (u.host.fails, u.healthy()) == (1, False)
        await until(lambda: u.host.fails == 0)
        assert u.healthy()

    run(go())


def test_unhealthy_status_counts_matching_responses(backend: Backend) -> None:
    backend.respond = lambda ex: ex.reply(int(ex.target[1:]))
    u = upstream(backend.address)

    async def go() -> list[int]:
        h = health(passive(max_fails=10, unhealthy_status=[404, 5]), u)
        fails = []
        for status in (200, 404, 503, 500, 403):
            await send(h, [u], f"/{status}")
            fails.append(u.host.fails)
        return fails

    assert run(go()) == [0, 1, 2, 3, 3]


def test_unhealthy_latency_counts_slow_responses(backend: Backend) -> None:
    backend.respond = slowly(0.15, only="/slow")
    u = upstream(backend.address)

    async def go() -> list[int]:
        h = health(passive(max_fails=10, unhealthy_latency=ms(100), fail_duration=ms(2000)), u)
        fails = []
        for target in ("/fast", "/slow", "/fast"):
            await send(h, [u], target)
            fails.append(u.host.fails)
        h.close()
        return fails

    assert run(go()) == [0, 1, 1]


def test_a_host_is_unhealthy_at_max_fails_failures(backend: Backend) -> None:
    backend.respond = answer(500)
    u = upstream(backend.address)

    async def go() -> list[bool]:
        h = health(passive(max_fails=3, unhealthy_status=[500], fail_duration=ms(2000)), u)
        seen = []
        for _ in range(3):
            await send(h, [u])
            seen.append(u.healthy())
        h.close()
        return seen

    assert run(go()) == [True, True, False]


def test_closing_forgets_the_failures_at_once() -> None:
    u = upstream(f"127.0.0.1:{closed_port()}")

    async def go() -> list[int]:
        h = health(passive(max_fails=5, fail_duration=ms(60_000)), u)
        await send(h, [u])
        await send(h, [u])
        before = u.host.fails
        h.close()
        return [before, u.host.fails]

    assert run(go()) == [2, 0]


def test_without_fail_duration_nothing_is_counted() -> None:
    u = upstream(f"127.0.0.1:{closed_port()}")

    async def go() -> int:
        h = health(config(passive={"unhealthy_request_count": 2}), u)
        assert (h.max_fails, h.breaker) == (1, None)
        await send(h, [u])
        return u.host.fails

    assert run(go()) == 0
    off = Health(None, [], send=send)
    assert (off.max_fails, off.breaker, off.active, off.max_requests(0)) == (0, None, None, 0)


def test_unhealthy_request_count_is_the_default_max_requests(backend: Backend) -> None:
    h = Health(config(passive={"unhealthy_request_count": 2}), [], send=send)
    assert (h.max_requests(0), h.max_requests(5)) == (2, 5)
    u = Upstream(backend.address, Host(backend.address), h.max_requests(0))
    u.host.num_requests = 1
    assert u.available()
    u.host.num_requests = 2
    assert not u.available()


# --- the circuit breaker -------------------------------------------------------------------


def test_the_circuit_opens_at_max_fails_then_a_successful_probe_closes_it(backend: Backend) -> None:
    backend.respond = answer(500)
    u = upstream(backend.address)

    async def go() -> list[str]:
        h = health(passive(max_fails=2, unhealthy_status=[500]), u)
        states = []
        for _ in range(2):
            await send(h, [u])
            states.append(u.host.circuit)
        assert await send(h, [u]) is None  # open: no request goes out
        await until(lambda: u.host.circuit == HALF_OPEN)
        states.append(u.host.circuit)
        backend.respond = answer(200)
        assert await send(h, [u]) == 200
        states.append(u.host.circuit)
        return states

    assert run(go()) == [CLOSED, OPEN, HALF_OPEN, CLOSED]
    assert len(backend.requests) == 3


def test_a_failed_probe_opens_the_circuit_again(backend: Backend) -> None:
    backend.respond = answer(500)
    u = upstream(backend.address)

    async def go() -> list[str]:
        h = health(passive(max_fails=2, unhealthy_status=[500]), u)
        await send(h, [u])
        await send(h, [u])
        await until(lambda: u.host.circuit == HALF_OPEN)
        assert u.healthy()  # one failure left of max_fails 2: without the breaker it would take two
        await send(h, [u])
        states = [u.host.circuit]
        assert not u.available() and await send(h, [u]) is None
        await until(lambda: u.host.circuit == HALF_OPEN)
        states.append(u.host.circuit)
        h.close()
        return states

    assert run(go()) == [OPEN, HALF_OPEN]
    assert len(backend.requests) == 3


def test_a_half_open_circuit_lets_exactly_one_request_through(backend: Backend) -> None:
    backend.respond = answer(500)
    u = upstream(backend.address)

    async def go() -> list[int | None]:
        h = health(passive(unhealthy_status=[500]), u)
        await send(h, [u])
        await until(lambda: u.host.circuit == HALF_OPEN)
        backend.respond = slowly(0.2)
        results = await asyncio.gather(*(send(h, [u]) for _ in range(5)))
        assert u.host.circuit == CLOSED and not u.host.probing
        return sorted(results, key=lambda r: r or 0)

    assert run(go()) == [None, None, None, None, 200]
    assert len(backend.requests) == 2


def test_a_probe_that_never_reports_stops_blocking_after_the_open_period(backend: Backend) -> None:
    u = upstream(backend.address)

    async def go() -> None:
        h = health(passive(), u)
        h.record(u, None, 0.0, True)
        await until(lambda: u.host.circuit == HALF_OPEN)
        await until(u.available)  # the failure is forgotten too
        u.host.probing = True  # a probe went out and its client vanished: no record
        assert not u.available()
        await until(u.available, timeout=2.0)
        assert await send(h, [u]) == 200
        assert u.host.circuit == CLOSED

    run(go())


def test_active_recovery_closes_the_circuit(backend: Backend) -> None:
    backend.respond = answer(500)
    u = upstream(backend.address)

    async def go() -> list[str]:
        h = health(config(active={"uri": "/health"}, passive={"fail_duration": ms(60_000), "max_fails": 5}), u)
        await h.active.check_all()  # type: ignore[union-attr]
        for _ in range(5):
            h.record(u, None, 0.0, True)
        states = [u.host.circuit]
        backend.respond = answer(200)
        await h.active.check_all()  # type: ignore[union-attr]
        states.append(u.host.circuit)
        h.close()
        return states

    assert run(go()) == [OPEN, CLOSED]
    assert u.host.healthy


def test_no_breaker_without_passive_counting() -> None:
    assert Health(config(active={"uri": "/"}), [], send=send).breaker is None
    h = Health(config(passive={"fail_duration": ms(1000), "max_fails": 3}), [], send=send)
    assert h.breaker is not None and (h.breaker.threshold, h.breaker.open_for, h.max_fails) == (3, 1.0, 3)
