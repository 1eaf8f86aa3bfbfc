"""Real upstreams for proxy tests: small HTTP/1.1 servers on 127.0.0.1 (threads, plain
sockets) whose behaviour each test chooses, and a way to count their connections."""

from __future__ import annotations

import socket
import threading
from typing import Callable

Responder = Callable[["Exchange"], None]


def accept_forever(listener: socket.socket, handle: Callable[[socket.socket], None],
                   accepted: Callable[[socket.socket], None] | None = None) -> None:
    """Accept on `listener` in a thread of its own until it is closed: `accepted(sock)`
    there, then `handle(sock)` in a thread per connection."""
    def loop() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            if accepted is not None:
                accepted(sock)
            threading.Thread(target=handle, args=(sock,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


class Exchange:
    """One request as a backend received it, and the socket to answer on."""

    def __init__(self, sock: socket.socket, method: str, target: str, headers: list[tuple[str, str]],
                 body: bytes) -> None:
        self.sock = sock
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def reply(self, status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X"]
        fields = list(headers or [])
        if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in fields):
            fields.append(("Content-Length", str(len(body))))
        lines += [f"{k}: {v}" for k, v in fields]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if self.method == "HEAD" else body))


class Backend:
    """A threaded HTTP/1.1 server: `respond(exchange)` answers each request (default: 200
    with the backend's name as body). Counts connections and requests."""

    def __init__(self, name: str = "backend", respond: Responder | None = None, port: int = 0) -> None:
        self.name = name
        self.respond = respond or (lambda ex: ex.reply(200, self.name.encode()))
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.connections = 0
        self.requests: list[Exchange] = []
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.stopped = False
        accept_forever(self.listener, lambda sock: self._serve(sock), self._accepted)  # tests replace _serve

    def _accepted(self, sock: socket.socket) -> None:
        with self.lock:
            self.connections += 1
            self.open.add(sock)

    def _serve(self, sock: socket.socket) -> None:
        buffered = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffered:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffered += data
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
                exchange = Exchange(sock, method, target, headers, b"")
                body, buffered = _read_body(sock, exchange, buffered)
                exchange.body = body
                with self.lock:
                    self.requests.append(exchange)
                self.respond(exchange)
                if (exchange.header("Connection") or "").lower() == "close":
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self.open.discard(sock)
            sock.close()

    def close(self) -> None:
        self.stopped = True
        self.listener.close()
        with self.lock:
            for sock in list(self.open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _read_body(sock: socket.socket, exchange: Exchange, buffered: bytes) -> tuple[bytes, bytes]:
    length = exchange.header("Content-Length")
    if length is not None:
        need = int(length)
        while len(buffered) < need:
            data = sock.recv(65536)
            if not data:
                raise OSError("short body")
            buffered += data
        return buffered[:need], buffered[need:]
    if (exchange.header("Transfer-Encoding") or "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buffered:
                buffered += sock.recv(65536)
            size_line, _, buffered = buffered.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buffered) < size + 2:
                buffered += sock.recv(65536)
            body += buffered[:size]
            buffered = buffered[size + 2:]
            if size == 0:
                return body, buffered
    return b"", buffered


def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
