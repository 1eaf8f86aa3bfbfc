"""Dynamic upstream sources: `a` and `srv` against a real DNS server on 127.0.0.1 (UDP,
ephemeral port, built with dnspython's message API), `a` through the system resolver,
the `file` source on real files, `multi`, and the proxy answering from a file source."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx
import pytest

from backends import Backend
from rws.config.decode import decode_module
from rws.errors import ConfigError, HttpError, RwsfileError
from rws.handlers.reverse_proxy.dynamic import SrvRecord, rfc2782_order
from rws.handlers.reverse_proxy.upstreams_config import UPSTREAM_SOURCE
from rws.http.message import Headers, Request
from rws.http.routes import BuildContext
from rws.rwsfile.adapt import adapt_text

T = TypeVar("T")
Records = dict[tuple[str, str], list[str]]  # (absolute name, type) -> rdata texts


# --- a DNS server on loopback --------------------------------------------------------------------


class DnsServer(asyncio.DatagramProtocol):
    """Answers from `records`; NXDOMAIN for unknown names, NODATA for a known name's missing
    type, SERVFAIL for everything while `failing`, nothing at all while `silent`. Counts
    queries per (name, type)."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.queries: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failing = False
        self.silent = False
        self.transport: Any = None  # a DatagramTransport (asyncio's selector one does not subclass it)
        self.address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        host, port = transport.get_extra_info("sockname")[:2]
        self.address = f"{host}:{port}"

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        key = (question.name.to_text(), dns.rdatatype.to_text(question.rdtype))
        self.queries[key] += 1
        if self.silent:
            return
        response = dns.message.make_response(query)
        if self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif key in self.records:
            response.answer.append(dns.rrset.from_text_list(question.name, 30, "IN", key[1], self.records[key]))
        elif not any(name == key[0] for name, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@asynccontextmanager
async def dns_server(records: Records) -> AsyncIterator[DnsServer]:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(lambda: DnsServer(records), local_addr=("127.0.0.1", 0))
    try:
        yield server
    finally:
        transport.close()


# --- helpers ---------------------------------------------------------------------------------------


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), 10)

    return asyncio.run(bounded())


def build(config: dict[str, Any], ctx: BuildContext | None = None) -> Any:
    """The runtime object of a source's JSON, as a user writes it."""
    value = decode_module(UPSTREAM_SOURCE, json.loads(json.dumps(config)), "source")
    return (ctx or BuildContext()).build(value)


def request(**headers: str) -> Request:
    return Request("GET", "/", Headers([("Host", "example.com"), *headers.items()]))


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait (bounded) until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def status_of(source: Any) -> int:
    with pytest.raises(HttpError) as info:
        await source.get_upstreams(request())
    return info.value.status


API = {
    ("api.test.", "A"): ["10.0.0.1", "10.0.0.2"],
    ("api.test.", "AAAA"): ["fd00::1"],
    ("other.test.", "A"): ["10.0.9.9"],
    ("v4only.test.", "A"): ["10.0.0.4"],
    ("_http._tcp.svc.test.", "SRV"): ["10 0 8082 a.svc.test.", "10 5 8080 b.svc.test.", "20 0 8081 c.svc.test."],
    ("_gone._tcp.svc.test.", "SRV"): ["0 0 0 ."],
}


def a_config(server: DnsServer, **options: Any) -> dict[str, Any]:
    return {"source": "a", "resolver": {"addresses": [server.address]}, **options}


def srv_config(server: DnsServer, **options: Any) -> dict[str, Any]:
    return {"source": "srv", "resolver": {"addresses": [server.address]}, **options}


# --- a ---------------------------------------------------------------------------------------------


def test_a_dials_every_address_of_the_name_on_its_port() -> None:
    async def go() -> list[str]:
        async with dns_server(API) as server:
            result: list[str] = await build(a_config(server, name="api.test", port="8080")).get_upstreams(request())
            return result

    assert sorted(run(go)) == ["10.0.0.1:8080", "10.0.0.2:8080", "[fd00::1]:8080"]  # servers may shuffle records


def test_a_port_defaults_to_80() -> None:
    async def go() -> list[str]:
        async with dns_server(API) as server:
            result: list[str] = await build(a_config(server, name="other.test")).get_upstreams(request())
            return result

    assert run(go) == ["10.0.9.9:80"]


def test_a_versions_chooses_the_record_types_asked_for() -> None:
    async def go() -> tuple[list[str], list[str], collections.Counter[tuple[str, str]]]:
        async with dns_server(API) as server:
            v4 = await build(a_config(server, name="api.test", versions={"ipv4": True})).get_upstreams(request())
            v6 = await build(a_config(server, name="api.test", versions={"ipv6": True})).get_upstreams(request())
            return v4, v6, server.queries

    v4, v6, queries = run(go)
    assert sorted(v4) == ["10.0.0.1:80", "10.0.0.2:80"]
    assert v6 == ["[fd00::1]:80"]
    assert queries == {("api.test.", "A"): 1, ("api.test.", "AAAA"): 1}


def test_a_name_with_only_a_records_still_answers_when_both_versions_are_wanted() -> None:
    async def go() -> list[str]:
        async with dns_server(API) as server:
            result: list[str] = await build(a_config(server, name="v4only.test", port="81")).get_upstreams(request())
            return result

    assert run(go) == ["10.0.0.4:81"]


def test_a_answer_is_reused_within_refresh() -> None:
    async def go() -> tuple[list[str], int]:
        async with dns_server(API) as server:
            source = build(a_config(server, name="other.test", port="9000"))
            await source.get_upstreams(request())
            again = await source.get_upstreams(request())
            return again, server.queries[("other.test.", "A")]

    assert run(go) == (["10.0.9.9:9000"], 1)


def test_concurrent_requests_share_one_lookup() -> None:
    async def go() -> tuple[list[list[str]], int]:
        async with dns_server(API) as server:
            source = build(a_config(server, name="other.test", versions={"ipv4": True}))
            results = await asyncio.gather(*(source.get_upstreams(request()) for _ in range(20)))
            return results, server.queries[("other.test.", "A")]

    results, queries = run(go)
    assert results == [["10.0.9.9:80"]] * 20
    assert queries == 1


def test_a_looks_up_again_after_refresh() -> None:
    async def go() -> tuple[list[str], int]:
        records = dict(API)
        async with dns_server(records) as server:
            source = build(a_config(server, name="other.test", versions={"ipv4": True}, refresh="20ms"))
            assert await source.get_upstreams(request()) == ["10.0.9.9:80"]
            records[("other.test.", "A")] = ["10.0.9.10"]

            async def changed() -> bool:
                return bool(await source.get_upstreams(request()) == ["10.0.9.10:80"])

            await until(changed)
            return await source.get_upstreams(request()), server.queries[("other.test.", "A")]

    dials, queries = run(go)
    assert dials == ["10.0.9.10:80"] and queries >= 2


def test_a_renders_placeholders_in_name_and_port_per_request() -> None:
    async def go() -> tuple[list[str], list[str], collections.Counter[tuple[str, str]]]:
        async with dns_server(API) as server:
            source = build(a_config(server, name="{http.request.header.X-Service}.test",
                                    port="{http.request.header.X-Port}", versions={"ipv4": True}))
            first = await source.get_upstreams(request(**{"X-Service": "api", "X-Port": "1"}))
            second = await source.get_upstreams(request(**{"X-Service": "other", "X-Port": "2"}))
            await source.get_upstreams(request(**{"X-Service": "other", "X-Port": "2"}))
            return first, second, server.queries

    first, second, queries = run(go)
    assert sorted(first) == ["10.0.0.1:1", "10.0.0.2:1"]
    assert second == ["10.0.9.9:2"]
    assert queries == {("api.test.", "A"): 1, ("other.test.", "A"): 1}


def test_a_unknown_name_is_a_502() -> None:
    async def go() -> int:
        async with dns_server(API) as server:
            return await status_of(build(a_config(server, name="missing.test")))

    assert run(go) == 502


def test_a_server_failure_is_a_502_and_a_later_request_asks_again() -> None:
    async def go() -> tuple[int, list[str]]:
        async with dns_server(API) as server:
            source = build(a_config(server, name="other.test", versions={"ipv4": True}))
            server.failing = True
            status = await status_of(source)
            server.failing = False
            return status, await source.get_upstreams(request())

    assert run(go) == (502, ["10.0.9.9:80"])


def test_a_failed_refresh_is_a_502_even_with_a_stale_answer() -> None:
    """Caddy's `a` has no grace period: a refresh that fails is an error."""

    async def go() -> int:
        async with dns_server(API) as server:
            source = build(a_config(server, name="other.test", versions={"ipv4": True}, refresh="20ms"))
            await source.get_upstreams(request())
            server.failing = True

            async def refreshed() -> bool:
                return server.queries[("other.test.", "A")] >= 2

            while not await refreshed():
                try:
                    await source.get_upstreams(request())
                except HttpError as exc:
                    return exc.status
                await asyncio.sleep(0.01)
            return await status_of(source)

    assert run(go) == 502


def test_a_server_that_does_not_answer_within_dial_timeout_is_a_502() -> None:
    async def go() -> int:
        async with dns_server(API) as server:
            server.silent = True
            return await status_of(build(a_config(server, name="other.test", dial_timeout="100ms")))

    assert run(go) == 502


def test_a_resolver_address_names_a_random_one_of_several_servers() -> None:
    async def go() -> tuple[list[str], int]:
        async with dns_server(API) as one, dns_server(API) as two:
            source = build({"source": "a", "name": "other.test", "versions": {"ipv4": True}, "refresh": 1,
                            "resolver": {"addresses": [f"udp/{one.address}", two.address]}})
            results = [await source.get_upstreams(request()) for _ in range(40)]
            assert results == [["10.0.9.9:80"]] * 40
            return results[0], min(one.queries[("other.test.", "A")], two.queries[("other.test.", "A")])

    dials, fewest = run(go)
    assert dials == ["10.0.9.9:80"] and fewest > 0


def test_a_resolver_on_a_unix_socket_is_refused_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        build({"source": "a", "name": "x", "resolver": {"addresses": ["unix//run/dns.sock"]}})
    assert "unsupported network 'unix'" in str(info.value)


def test_a_uses_the_system_resolver_without_resolvers() -> None:
    async def go() -> tuple[list[str], list[str]]:
        v4 = await build({"source": "a", "name": "localhost", "port": "9000", "versions": {"ipv4": True}}).get_upstreams(request())
        both = await build({"source": "a", "name": "localhost", "port": "9000"}).get_upstreams(request())
        return v4, both

    v4, both = run(go)
    assert v4 == ["127.0.0.1:9000"]
    assert both and set(both) <= {"127.0.0.1:9000", "[::1]:9000"}


def test_a_system_resolver_failure_is_a_502() -> None:
    source = build({"source": "a", "name": "::1", "versions": {"ipv4": True}})
    assert run(lambda: status_of(source)) == 502


def test_a_empty_name_is_a_502() -> None:
    source = build({"source": "a", "name": "{http.request.header.X-Missing}"})
    assert run(lambda: status_of(source)) == 502


# --- srv -------------------------------------------------------------------------------------------


def test_srv_targets_come_in_priority_then_weight_order() -> None:
    async def go() -> list[str]:
        async with dns_server(API) as server:
            source = build(srv_config(server, service="http", proto="tcp", name="svc.test"))
            result: list[str] = await source.get_upstreams(request())
            return result

    assert run(go) == ["b.svc.test.:8080", "a.svc.test.:8082", "c.svc.test.:8081"]


def test_srv_name_alone_is_the_whole_domain_and_dial_network_prefixes() -> None:
    async def go() -> list[str]:
        async with dns_server(API) as server:
            source = build(srv_config(server, name="_http._tcp.svc.test", dial_network="tcp4"))
            result: list[str] = await source.get_upstreams(request())
            return result

    assert run(go) == ["tcp4/b.svc.test.:8080", "tcp4/a.svc.test.:8082", "tcp4/c.svc.test.:8081"]


def test_srv_target_dot_means_not_offered() -> None:
    async def go() -> list[str]:
        async with dns_server(API) as server:
            result: list[str] = await build(srv_config(server, name="_gone._tcp.svc.test")).get_upstreams(request())
            return result

    assert run(go) == []


def test_srv_answer_is_reused_within_refresh() -> None:
    async def go() -> int:
        async with dns_server(API) as server:
            source = build(srv_config(server, service="http", proto="tcp", name="svc.test"))
            for _ in range(3):
                await source.get_upstreams(request())
            return server.queries[("_http._tcp.svc.test.", "SRV")]

    assert run(go) == 1


def test_srv_grace_period_serves_the_old_answer_when_a_refresh_fails() -> None:
    async def go() -> tuple[list[str], list[str], int]:
        async with dns_server(API) as server:
            source = build(srv_config(server, name="_http._tcp.svc.test", refresh="20ms", grace_period="1h"))
            before = await source.get_upstreams(request())
            server.failing = True
            key = ("_http._tcp.svc.test.", "SRV")
            during: list[str] = []

            async def failed_once() -> bool:
                during[:] = await source.get_upstreams(request())
                return server.queries[key] >= 2

            await until(failed_once)
            await source.get_upstreams(request())  # within the grace period: no new query
            return before, during, server.queries[key]

    before, during, queries = run(go)
    assert during == before == ["b.svc.test.:8080", "a.svc.test.:8082", "c.svc.test.:8081"]
    assert queries == 2


def test_srv_failed_refresh_without_grace_period_is_a_502() -> None:
    async def go() -> int:
        async with dns_server(API) as server:
            source = build(srv_config(server, name="_http._tcp.svc.test", refresh="20ms"))
            await source.get_upstreams(request())
            server.failing = True
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    await source.get_upstreams(request())
                except HttpError as exc:
                    return exc.status
                await asyncio.sleep(0.01)
            return 0

    assert run(go) == 502


def test_srv_failure_with_nothing_cached_is_a_502_despite_grace_period() -> None:
    async def go() -> int:
        async with dns_server(API) as server:
            return await status_of(build(srv_config(server, name="_none._tcp.svc.test", grace_period="1m")))

    assert run(go) == 502


def test_rfc2782_order_draws_by_weight_within_a_priority() -> None:
    records = [SrvRecord(1, 0, "zero.", 1), SrvRecord(1, 100, "heavy.", 2), SrvRecord(0, 0, "first.", 3)]
    assert [r.target for r in rfc2782_order(records)] == ["first.", "heavy.", "zero."]
    firsts = collections.Counter(rfc2782_order([SrvRecord(0, 1, "a.", 1), SrvRecord(0, 3, "b.", 1)])[0].target
                                 for _ in range(2000))
    assert firsts["b."] > firsts["a."] > 0


# --- multi -----------------------------------------------------------------------------------------


def test_multi_concatenates_and_skips_a_failing_source(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> list[str]:
        async with dns_server(API) as server:
            source = build({"source": "multi", "sources": [
                a_config(server, name="missing.test"),
                a_config(server, name="other.test", port="1", versions={"ipv4": True}),
                srv_config(server, name="_http._tcp.svc.test"),
            ]})
            result: list[str] = await source.get_upstreams(request())
            return result

    with caplog.at_level(logging.ERROR, "rws.handlers.reverse_proxy.dynamic"):
        dials = run(go)
    assert dials == ["10.0.9.9:1", "b.svc.test.:8080", "a.svc.test.:8082", "c.svc.test.:8081"]
    assert any(r.getMessage() == "upstream source returned error" and getattr(r, "source_idx") == 0 for r in caplog.records)


# --- file ------------------------------------------------------------------------------------------


def file_source(path: Path, refresh: Any = 1) -> Any:
    """A file source that looks at its file on every request (refresh 1ns) unless told."""
    return build({"source": "file", "path": str(path), "refresh": refresh})


def dials(source: Any) -> list[str]:
    result: list[str] = run(lambda: source.get_upstreams(request()))
    return result


def test_file_lists_one_address_per_line_normalised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "upstreams"
    path.write_text("# the backends\n\n10.0.0.1:8080\n  web.internal  # default port\n[::1]:9000\n::2\n"
                    "localhost:7000-7002\nunix//run/app.sock\nnot an address\nhttps://secure:443\nhost:99999\n"
                    "{http.request.host}:80\n")
    with caplog.at_level(logging.WARNING, "rws.handlers.reverse_proxy.dynamic"):
        source = file_source(path)
    assert dials(source) == ["10.0.0.1:8080", "web.internal:80", "[::1]:9000", "[::2]:80", "localhost:7000",
                             "localhost:7001", "localhost:7002", "unix//run/app.sock"]
    bad = {getattr(r, "line"): getattr(r, "error") for r in caplog.records if r.getMessage().startswith("skipping")}
    assert sorted(bad) == [9, 10, 11, 12]
    assert "one upstream address per line" in bad[9]
    assert "scheme" in bad[10]
    assert "value out of range" in bad[11]
    assert "placeholders" in bad[12]


def test_file_changes_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "upstreams"
    path.write_text("10.0.0.1:80\n")
    source = file_source(path)
    assert dials(source) == ["10.0.0.1:80"]
    path.write_text("10.0.0.2:80\n10.0.0.3:80\n")
    assert dials(source) == ["10.0.0.2:80", "10.0.0.3:80"]
    replacement = tmp_path / "new"
    replacement.write_text("10.0.0.4:80\n")
    os.replace(replacement, path)  # an atomic swap, as deploy tools do
    assert dials(source) == ["10.0.0.4:80"]


def test_file_is_not_looked_at_again_within_refresh(tmp_path: Path) -> None:
    path = tmp_path / "upstreams"
    path.write_text("10.0.0.1:80\n")
    source = file_source(path, refresh="1h")
    path.write_text("10.0.0.2:80\n")
    assert dials(source) == ["10.0.0.1:80"]


def test_removed_file_keeps_the_last_list_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "upstreams"
    path.write_text("10.0.0.1:80\n")
    source = file_source(path)
    path.unlink()
    with caplog.at_level(logging.WARNING, "rws.handlers.reverse_proxy.dynamic"):
        assert dials(source) == ["10.0.0.1:80"]
        assert dials(source) == ["10.0.0.1:80"]
    assert [r.getMessage() for r in caplog.records].count("cannot read the upstreams file; keeping the last list") == 1
    path.write_text("10.0.0.9:80\n")
    assert dials(source) == ["10.0.0.9:80"]


def test_unreadable_file_keeps_the_last_list(tmp_path: Path) -> None:
    path = tmp_path / "upstreams"
    path.write_text("10.0.0.1:80\n")
    source = file_source(path)
    path.write_bytes(b"10.0.0.2:80\n\xff\xfe\n")
    assert dials(source) == ["10.0.0.1:80"]


def test_initially_missing_file_gives_no_upstreams_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later"
    source = file_source(path)
    assert dials(source) == []
    path.write_text("10.0.0.1:80\n")
    assert dials(source) == ["10.0.0.1:80"]


def test_proxy_uses_the_file_source(serve: Any, tmp_path: Path) -> None:
    backend = Backend("from-file")
    path = tmp_path / "upstreams"
    path.write_text(f"# one backend\n{backend.address}\n")
    rwsfile = f":8080 {{\n\treverse_proxy {{\n\t\tdynamic file {path} {{\n\t\t\trefresh 1ms\n\t\t}}\n\t}}\n}}\n"
    try:
        with serve(rwsfile) as server:
            first = httpx.get(server.url("/"), timeout=5)
            path.write_text("")
            deadline = time.monotonic() + 5
            emptied = httpx.get(server.url("/"), timeout=5)
            while emptied.status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.01)
                emptied = httpx.get(server.url("/"), timeout=5)
    finally:
        backend.close()
    assert (first.status_code, first.content) == (200, b"from-file")
    assert emptied.status_code == 503  # no upstreams available


# --- the Rwsfile form ------------------------------------------------------------------------------


def proxy_block(*lines: str) -> str:
    body = "".join(f"\t\t{line}\n" for line in lines)
    return f":8080 {{\n\treverse_proxy {{\n{body}\t}}\n}}\n"


def test_dynamic_file_adapts_to_its_json() -> None:
    config, _ = adapt_text(proxy_block("dynamic file /etc/rws/upstreams {", "\trefresh 500ms", "}"))
    handler = config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
    assert handler["dynamic_upstreams"] == {"source": "file", "path": "/etc/rws/upstreams", "refresh": 500_000_000}


@pytest.mark.parametrize("lines, line, message", [
    (("dynamic file",), 3, "a file path is required"),
    (("dynamic file a b",), 3, "wrong argument count"),
    (("dynamic file a {", "\tpath b", "}"), 4, "a file path has already been specified"),
    (("dynamic file a {", "\trefresh soon", "}"), 4, "bad refresh interval 'soon'"),
    (("dynamic file a {", "\trefesh 1s", "}"), 4, "unrecognized file option 'refesh' (did you mean 'refresh'?)"),
])
def test_dynamic_file_errors_name_their_line(lines: tuple[str, ...], line: int, message: str) -> None:
    with pytest.raises(RwsfileError) as info:
        adapt_text(proxy_block(*lines), "Rwsfile")
    assert info.value.line == line
    assert message in info.value.message
