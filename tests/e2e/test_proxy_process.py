"""The reverse proxy as a real `rws run` process: gigabyte bodies stream through it both
ways without the process holding them (its resident memory is sampled throughout)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import Process

GIGABYTE = 1 << 30
CHUNK = bytes(range(256)) * 4096  # 1 MiB
RSS_GROWTH_LIMIT = 50 << 20


class StreamingBackend:
    """`GET /down` answers a 1 GiB body; `POST /up` reads the whole body and answers its
    length. One connection at a time, which is all these tests need."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._exchange, args=(sock,), daemon=True).start()

    def _exchange(self, sock: socket.socket) -> None:
        with sock:
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(65536)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            if head.startswith(b"GET /down"):
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % GIGABYTE)
                for _ in range(GIGABYTE // len(CHUNK)):
                    sock.sendall(CHUNK)
                return
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            received = len(rest)
            buffer = bytearray(1 << 20)
            while received < length:
                n = sock.recv_into(buffer)
                if not n:
                    return
                received += n
            body = str(received).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))

    def close(self) -> None:
        self.listener.close()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class RssSampler:
    """The largest resident size of a process while the `with` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.running = True

    def __enter__(self) -> RssSampler:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.running = False


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[Process, int]]:
    backend = StreamingBackend()
    config = tmp_path / "Rwsfile"
    config.write_text("{\n\tadmin off\n}\n"
                      f"http://127.0.0.1:0 {{\n\tbind 127.0.0.1\n\treverse_proxy 127.0.0.1:{backend.port}\n}}\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    process = Process(["run", "--config", str(config)], tmp_path, env)
    try:
        yield process, process.port()
    finally:
        process.stop()
        backend.close()


def _response(sock: socket.socket) -> tuple[bytes, int, bytes]:
    """Read a response head; return it, the body length it announces, and body bytes read with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before the response head"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    return head, length, rest


def test_a_gigabyte_download_streams_without_growing_memory(proxy: tuple[Process, int]) -> None:
    process, port = proxy
    baseline = rss(process.proc.pid)
    with RssSampler(process.proc.pid) as sampler:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"GET /down HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head, length, rest = _response(sock)
            received = len(rest)
            buffer = bytearray(1 << 20)
            while received < length:
                n = sock.recv_into(buffer)
                assert n, "the download ended early"
                received += n
    assert head.startswith(b"HTTP/1.1 200") and received == GIGABYTE
    assert sampler.peak - baseline < RSS_GROWTH_LIMIT, (baseline, sampler.peak)


def test_a_gigabyte_upload_streams_without_growing_memory(proxy: tuple[Process, int]) -> None:
    process, port = proxy
    baseline = rss(process.proc.pid)
    with RssSampler(process.proc.pid) as sampler:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"POST /up HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % GIGABYTE)
            for _ in range(GIGABYTE // len(CHUNK)):
                sock.sendall(CHUNK)
            head, length, rest = _response(sock)
            while len(rest) < length:
                rest += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200") and rest == str(GIGABYTE).encode()
    assert sampler.peak - baseline < RSS_GROWTH_LIMIT, (baseline, sampler.peak)
