"""gRPC through the reverse proxy, end to end: grpcio's client talks to rws (h2c by prior
knowledge, or TLS with ALPN h2), rws proxies over HTTP/2 to a grpcio server. Generic
handlers with bytes in and out, so no generated code is needed.

Every kind of call (unary, server streaming, client streaming, bidirectional) with its
metadata and trailers; the client's deadline reaches the upstream; errors map as in
Caddy: an upstream's gRPC status passes through unchanged, a dead upstream is a 502,
which a gRPC client sees as UNAVAILABLE."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.handlers.reverse_proxy.runtime.backends import closed_port
from tests.tls.test_termination import Authority

SERVICE = "rws.test.Echo"


class EchoService:
    """The upstream: a grpcio server on 127.0.0.1 whose calls record what they saw."""

    def __init__(self, credentials: grpc.ServerCredentials | None = None) -> None:
        self.deadlines: list[float | None] = []
        self.entered = threading.Event()
        self.cancelled = threading.Event()
        handlers = grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "Count": grpc.unary_stream_rpc_method_handler(self.count),
            "Join": grpc.stream_unary_rpc_method_handler(self.join),
            "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
            "Hang": grpc.unary_unary_rpc_method_handler(self.hang),
        })
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8), options=[
            ("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)])
        self.server.add_generic_rpc_handlers((handlers,))
        address = "127.0.0.1:0"
        self.port = (self.server.add_secure_port(address, credentials) if credentials is not None
                     else self.server.add_insecure_port(address))
        self.server.start()

    def unary(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.deadlines.append(context.time_remaining())
        metadata = dict(context.invocation_metadata())
        context.send_initial_metadata((("x-echo", str(metadata.get("x-client", ""))),))
        context.set_trailing_metadata((("x-trailer", "done"), ("x-size", str(len(request)))))
        return request[::-1]

    def count(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        context.set_trailing_metadata((("x-counted", request.decode()),))
        for i in range(int(request)):
            yield str(i).encode()

    def join(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return b",".join(requests)

    def chat(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for message in requests:
            yield b"re:" + message

    def fail(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.set_trailing_metadata((("x-why", "because"),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not now: " + request.decode())
        raise AssertionError("abort returns only by raising")

    def hang(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.add_callback(self.cancelled.set)
        self.entered.set()
        self.cancelled.wait(20)
        return b""

    def stop(self) -> None:
        self.server.stop(0)


@pytest.fixture
def upstream() -> Iterator[EchoService]:
    service = EchoService()
    yield service
    service.stop()


def h2c_front(port: int) -> str:
    return f"{{\n\tservers {{\n\t\tprotocols h1 h2c\n\t}}\n}}\nhttp:// {{\n\treverse_proxy h2c://127.0.0.1:{port}\n}}\n"


@pytest.fixture(params=["asyncio", "uvloop"])
def channel(request: Any, serve: Any, upstream: EchoService) -> Iterator[grpc.Channel]:
    """A gRPC channel (h2c) to rws, which proxies to `upstream`; rws on either loop."""
    with serve(h2c_front(upstream.port), loop=request.param) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port()}", options=[
                ("grpc.max_receive_message_length", 16 << 20)]) as chan:
            yield chan


def method(channel: grpc.Channel, kind: str, name: str) -> Any:
    return getattr(channel, kind)(f"/{SERVICE}/{name}")


def test_a_unary_call_passes_metadata_and_trailing_metadata(channel: grpc.Channel, upstream: EchoService) -> None:
    reply, call = method(channel, "unary_unary", "Unary").with_call(b"hello", metadata=(("x-client", "c1"),),
                                                                    timeout=10)
    assert reply == b"olleh"
    assert call.code() == grpc.StatusCode.OK
    assert dict(call.initial_metadata())["x-echo"] == "c1"
    assert dict(call.trailing_metadata()) == {"x-trailer": "done", "x-size": "5"}


def test_the_upstream_sees_the_clients_deadline(channel: grpc.Channel, upstream: EchoService) -> None:
    unary = method(channel, "unary_unary", "Unary")
    unary(b"with", timeout=30)
    unary(b"without")
    with_deadline, without = upstream.deadlines
    assert with_deadline is not None and 0 < with_deadline <= 30  # grpc-timeout went upstream
    assert without is None or without > 1e6  # no deadline (grpcio reports one far away)


def test_a_large_message_goes_both_ways(channel: grpc.Channel) -> None:
    message = bytes(range(256)) * 12_000  # 3 MB: many windows' worth, each way
    assert method(channel, "unary_unary", "Unary")(message, timeout=30) == message[::-1]


def test_server_streaming(channel: grpc.Channel) -> None:
    call = method(channel, "unary_stream", "Count")(b"5", timeout=10)
    assert list(call) == [b"0", b"1", b"2", b"3", b"4"]
    assert dict(call.trailing_metadata()) == {"x-counted": "5"}
    assert call.code() == grpc.StatusCode.OK


def test_client_streaming(channel: grpc.Channel) -> None:
    assert method(channel, "stream_unary", "Join")(iter([b"a", b"b", b"c"]), timeout=10) == b"a,b,c"


def test_bidirectional_streaming_interleaves_messages(channel: grpc.Channel) -> None:
    """The client sends each message only after the reply to the one before: this works
    only if both directions stream through rws as they go."""
    outbox: queue.Queue[bytes | None] = queue.Queue()

    def messages() -> Iterator[bytes]:
        while (message := outbox.get(timeout=10)) is not None:
            yield message

    replies = method(channel, "stream_stream", "Chat")(messages(), timeout=20)
    seen = []
    for word in (b"one", b"two", b"three"):
        outbox.put(word)
        seen.append(next(replies))
    outbox.put(None)
    assert seen == [b"re:one", b"re:two", b"re:three"]
    assert list(replies) == []
    assert replies.code() == grpc.StatusCode.OK


def test_an_upstream_error_status_passes_through_unchanged(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        method(channel, "unary_unary", "Fail")(b"later", timeout=10)
    error: Any = info.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "not now: later"
    assert dict(error.trailing_metadata())["x-why"] == "because"


def test_a_call_the_client_cancels_is_cancelled_at_the_upstream(channel: grpc.Channel,
                                                                upstream: EchoService) -> None:
    future = method(channel, "unary_unary", "Hang").future(b"", timeout=20)
    assert upstream.entered.wait(10)
    future.cancel()
    assert upstream.cancelled.wait(10)


def test_a_deadline_that_passes_ends_the_call_at_the_upstream_too(channel: grpc.Channel,
                                                                  upstream: EchoService) -> None:
    with pytest.raises(grpc.RpcError) as info:
        method(channel, "unary_unary", "Hang")(b"", timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert upstream.cancelled.wait(10)


def test_a_dead_upstream_is_unavailable(serve: Any) -> None:
    with serve(h2c_front(closed_port())) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port()}") as chan:
            with pytest.raises(grpc.RpcError) as info:
                method(chan, "unary_unary", "Unary")(b"anyone?", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_grpc_over_tls_on_both_sides(serve: Any, tmp_path: Path) -> None:
    """The client reaches rws over TLS (ALPN h2), and rws the upstream over TLS (ALPN h2
    by Caddy's default versions, 1.1 and 2)."""
    ca = Authority(tmp_path)
    front_cert, front_key = ca.leaf("front", "grpc.test")
    up_cert, up_key = ca.leaf("up", "up.test")
    service = EchoService(grpc.ssl_server_credentials([(up_key.read_bytes(), up_cert.read_bytes())]))
    config = (f"grpc.test {{\n\ttls {front_cert} {front_key}\n"
              f"\treverse_proxy https://127.0.0.1:{service.port} {{\n"
              f"\t\ttransport http {{\n\t\t\ttls_trusted_ca_certs {ca.pem}\n\t\t\ttls_server_name up.test\n\t\t}}\n"
              f"\t}}\n}}\n")
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.pem.read_bytes())
    options = [("grpc.ssl_target_name_override", "grpc.test"), ("grpc.default_authority", "grpc.test")]
    try:
        with serve(config) as server:
            with grpc.secure_channel(f"127.0.0.1:{server.port()}", credentials, options=options) as chan:
                reply, call = method(chan, "unary_unary", "Unary").with_call(b"secure", timeout=10)
                chat = method(chan, "stream_stream", "Chat")(iter([b"a", b"b"]), timeout=10)
                assert list(chat) == [b"re:a", b"re:b"]
    finally:
        service.stop()
    assert reply == b"eruces"
    assert dict(call.trailing_metadata())["x-trailer"] == "done"
