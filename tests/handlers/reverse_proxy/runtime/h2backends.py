"""Real HTTP/2 upstreams for proxy tests: a small server over the h2 library on 127.0.0.1
(an asyncio loop in a thread of its own), cleartext (h2c prior knowledge) or TLS with
ALPN, whose behaviour each test chooses per stream; it counts connections and streams,
and can misbehave on purpose (GOAWAY, REFUSED_STREAM, windows held shut). Also
`h2_request`, a blocking HTTP/2 client that reports trailers."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from typing import Any, Awaitable, Callable

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (ConnectionTerminated, DataReceived, RequestReceived, ResponseReceived, StreamEnded,
                       StreamReset, TrailersReceived, WindowUpdated)
from h2.exceptions import H2Error
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

Respond = Callable[["H2Exchange"], Awaitable[None]]


async def echo_name(ex: H2Exchange) -> None:
    """The default answer: 200 with the request's path, after reading its body."""
    await ex.body()
    await ex.reply(200, ex.path.encode())


class H2Exchange:
    """One stream as the backend got it: the request head, its body as it comes, and the
    verbs to answer."""

    def __init__(self, conn: _Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.headers = headers
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.received = 0
        self.sent = 0  # response body bytes handed to h2 (within the windows)
        self.window_shut = asyncio.Event()  # set while the proxy's window keeps the body waiting
        self.reset_code: int | None = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    @property
    def path(self) -> str:
        return self.header(":path") or ""

    async def read(self) -> bytes:
        """The next part of the body (b"" at its end); its window is given back."""
        data = await self.queue.get()
        if data is None:
            self.queue.put_nowait(None)
            return b""
        self.conn.acknowledge(self.stream_id, len(data))
        return data

    async def body(self) -> bytes:
        parts = []
        while data := await self.read():
            parts.append(data)
        return b"".join(parts)

    def send_headers(self, status: int = 200, headers: list[tuple[str, str]] | None = None, end: bool = False) -> None:
        self.conn.h2.send_headers(self.stream_id, [(":status", str(status))] + (headers or []), end_stream=end)
        self.conn.flush()

    async def send(self, data: bytes, end: bool = False) -> None:
        """Body bytes within the proxy's windows, waiting while they are shut."""
        h2, pos = self.conn.h2, 0
        while pos < len(data):
            window = min(h2.local_flow_control_window(self.stream_id), h2.max_outbound_frame_size)
            if window <= 0:
                self.window_shut.set()
                await self.conn.window_opened()
                self.window_shut.clear()
                continue
            part = data[pos:pos + window]
            pos += len(part)
            h2.send_data(self.stream_id, part, end_stream=end and pos == len(data))
            self.sent += len(part)
            self.conn.flush()
            await asyncio.sleep(0)
        if end and not data:
            h2.end_stream(self.stream_id)
            self.conn.flush()

    def send_trailers(self, fields: list[tuple[str, str]]) -> None:
        self.conn.h2.send_headers(self.stream_id, fields, end_stream=True)
        self.conn.flush()

    async def reply(self, status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
                    trailers: list[tuple[str, str]] | None = None) -> None:
        self.send_headers(status, headers, end=not body and not trailers)
        if body:
            await self.send(body, end=not trailers)
        if trailers:
            self.send_trailers(trailers)

    def reset(self, code: int = ErrorCodes.CANCEL) -> None:
        self.conn.h2.reset_stream(self.stream_id, code)
        self.conn.flush()


class _Connection(asyncio.Protocol):
    def __init__(self, backend: H2Backend) -> None:
        self.backend = backend
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.transport: asyncio.Transport | None = None
        self.exchanges: dict[int, H2Exchange] = {}
        self.windows: asyncio.Event = asyncio.Event()
        self.stream_ids: list[int] = []
        self.goaway_received = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        settings = {SettingCodes.ENABLE_PUSH: 0}
        if self.backend.max_streams is not None:
            settings[SettingCodes.MAX_CONCURRENT_STREAMS] = self.backend.max_streams
        if self.backend.initial_window is not None:
            settings[SettingCodes.INITIAL_WINDOW_SIZE] = self.backend.initial_window
        self.h2.local_settings.update(settings)
        self.h2.local_settings.acknowledge()
        self.h2.initiate_connection()
        self.flush()
        with self.backend.lock:
            self.backend.connections.append(self)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error:
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                ex = H2Exchange(self, event.stream_id, list(event.headers or []))
                self.exchanges[event.stream_id] = ex
                self.stream_ids.append(event.stream_id)
                with self.backend.lock:
                    self.backend.exchanges.append(ex)
                task = asyncio.ensure_future(self._run(ex))
                self.backend.tasks.add(task)
                task.add_done_callback(self.backend.tasks.discard)
            elif isinstance(event, DataReceived):
                ex = self.exchanges[event.stream_id]
                ex.received += len(event.data or b"")
                ex.queue.put_nowait(event.data or b"")
                padding = (event.flow_controlled_length or 0) - len(event.data or b"")
                if padding:
                    self.acknowledge(event.stream_id, padding)
            elif isinstance(event, StreamEnded):
                self.exchanges[event.stream_id].queue.put_nowait(None)
            elif isinstance(event, StreamReset):
                ex = self.exchanges.get(event.stream_id)
                if ex is not None:
                    ex.reset_code = event.error_code
                    ex.queue.put_nowait(None)
            elif isinstance(event, WindowUpdated):
                self.windows.set()
            elif isinstance(event, ConnectionTerminated):
                self.goaway_received = True
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.windows.set()
        for ex in self.exchanges.values():
            ex.queue.put_nowait(None)

    async def _run(self, ex: H2Exchange) -> None:
        try:
            await self.backend.respond(ex)
        except (H2Error, ConnectionError):
            pass  # the proxy reset the stream or went away

    async def window_opened(self) -> None:
        self.windows.clear()
        await self.windows.wait()
        if self.transport is None:
            raise ConnectionResetError("the proxy closed the connection")

    def acknowledge(self, stream_id: int, size: int) -> None:
        try:
            self.h2.acknowledge_received_data(size, stream_id)
        except H2Error:
            return
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def goaway(self, last_stream_id: int | None = None) -> None:
        """GOAWAY (NO_ERROR), written by hand so that h2 goes on serving the streams up to
        `last_stream_id` (default: the highest so far)."""
        last = self.h2.highest_inbound_stream_id if last_stream_id is None else last_stream_id
        if self.transport is not None:
            self.transport.write(GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())

    @property
    def open(self) -> bool:
        return self.transport is not None


class H2Backend:
    """An HTTP/2 server on 127.0.0.1: `respond(exchange)` answers each stream (default:
    200 with its path). `max_streams` and `initial_window` go in its SETTINGS; `tls` is a
    server SSLContext (its ALPN decides what it offers)."""

    def __init__(self, respond: Respond | None = None, *, max_streams: int | None = None,
                 initial_window: int | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.respond: Respond = respond or echo_name
        self.max_streams = max_streams
        self.initial_window = initial_window
        self.connections: list[_Connection] = []
        self.exchanges: list[H2Exchange] = []
        self.tasks: set[asyncio.Future[None]] = set()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self.call(lambda: self.loop.create_server(lambda: _Connection(self), "127.0.0.1", 0, ssl=tls))
        self.port = self.server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"

    def call(self, make: Callable[[], Any], timeout: float = 10) -> Any:
        async def run() -> Any:
            return await make()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def soon(self, action: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(action)

    def open_connections(self) -> int:
        with self.lock:
            return sum(1 for c in self.connections if c.open)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            for conn in self.connections:
                if conn.transport is not None:
                    conn.transport.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        self.call(stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def h2_request(port: int, path: str = "/", *, method: str = "GET", body: bytes = b"",
               headers: list[tuple[str, str]] | None = None, authority: str = "localhost",
               tls: ssl.SSLContext | None = None, server_name: str = "") -> dict[str, Any]:
    """One request over a new HTTP/2 connection (h2c prior knowledge, or TLS with ALPN h2):
    the response's status, fields, body and trailer fields."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        sock = tls.wrap_socket(raw, server_hostname=server_name or None) if tls is not None else raw
        conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        fields = [(":method", method), (":scheme", "https" if tls else "http"), (":authority", authority),
                  (":path", path)] + (headers or [])
        conn.send_headers(1, fields, end_stream=not body)
        if body:
            conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        reply: dict[str, Any] = {"status": 0, "headers": [], "body": b"", "trailers": [], "reset": None}
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, ResponseReceived):
                    reply["headers"] = [(k, v) for k, v in event.headers if not k.startswith(":")]
                    reply["status"] = int(dict(event.headers)[":status"])
                elif isinstance(event, DataReceived):
                    reply["body"] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, TrailersReceived):
                    reply["trailers"] = list(event.headers)
                elif isinstance(event, StreamReset):
                    reply["reset"] = event.error_code
                    return reply
                elif isinstance(event, StreamEnded):
                    return reply
            sock.sendall(conn.data_to_send())


def tls_server_context(cert: Any, key: Any, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(alpn)
    return context
