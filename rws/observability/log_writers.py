"""Where log lines go: stdout, stderr, nowhere, a rolled file, or a network socket.

Each writer has a `key` (`std:err`, `file:<name>`, the network address) by which
`logs.open_writer` shares it between logs and across config reloads. Writes are whole
lines and synchronous, except on network sockets, where a thread sends them so a slow peer
cannot stall the server.

The file writer rolls like Caddy's (timberjack): when a write would take the file past
`roll_size_mb`, or a `roll_interval`/`roll_minutes`/`roll_at` mark has passed, the file is
renamed `<name>-<time>-<size|time><ext>` and a new one started; afterwards a background
thread gzips (or zstd-compresses) rolled files and deletes those beyond `roll_keep` or older
than `roll_keep_days`.
"""

from __future__ import annotations

import gzip
import os
import queue
import shutil
import socket
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from rws.errors import ConfigError
from rws.observability.time_layouts import format_time, strptime_format

MEGABYTE = 1024 * 1024
DEFAULT_BACKUP_LAYOUT = "2006-01-02T15-04-05.000"


class Writer(Protocol):
    key: str

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def report(message: str) -> None:
    """A problem with logging itself, told on stderr (it cannot go through the logs)."""
    try:
        sys.stderr.write(f"rws: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr is gone: there is nowhere left to say it
        pass


# --- standard streams --------------------------------------------------------------------


class StreamWriter:
    """stdout or stderr, looked up at each write (so redirection and test capture work)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = f"std:{name[3:]}"
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._write(data)

    def _write(self, data: bytes) -> None:
        stream = getattr(sys, self.name)
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()

    def close(self) -> None:
        pass


class DiscardWriter:
    key = "discard"

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


# --- files ---------------------------------------------------------------------------------


class RollingFile:
    """A log file rolled by size and time (see the module docstring)."""

    def __init__(self, config: Any, filename: str) -> None:
        self.key = "file:" + filename
        self.filename = filename
        self.mode = int(config.mode, 8) if config.mode else 0
        self.roll = config.roll is not False
        self.max_bytes = (config.roll_size_mb or 100) * MEGABYTE
        self.keep = config.roll_keep or 10
        self.keep_days = config.roll_keep_days or 90
        self.local_time = config.roll_local_time
        self.layout = config.backup_time_format or DEFAULT_BACKUP_LAYOUT
        self.compression = _compression(config)
        self.interval = float(config.roll_interval or 0)
        self.marks = _daily_marks(config.roll_at) + _hourly_marks(config.roll_minutes)
        self._lock = threading.Lock()
        self._mill_lock = threading.Lock()
        self._mill_thread: threading.Thread | None = None
        self._file: Any = None
        self._size = 0
        self._last_roll = time.time()
        _make_dirs(os.path.dirname(filename) or ".", config.dir_mode, self.mode)
        self._open(0)

    def write(self, data: bytes) -> None:
        with self._lock:
            if self.roll and len(data) > self.max_bytes:
                raise OSError(f"write length {len(data)} exceeds maximum file size {self.max_bytes}")
            if self._file is None:
                self._open(len(data))
            if self.roll:
                now = time.time()
                if self._time_to_roll(now):
                    self._rotate("time")
                    self._last_roll = now
                if self._size + len(data) > self.max_bytes:
                    self._rotate("size")
            self._file.write(data)
            self._size += len(data)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        self.wait_for_mill()

    def wait_for_mill(self) -> None:
        """Wait until rolled files have been compressed and pruned."""
        thread = self._mill_thread
        if thread is not None:
            thread.join()

    def _open(self, write_len: int) -> None:
        """Append to the file, rolling it first if this write would not fit."""
        if self.roll:
            self._mill()
        try:
            size = os.stat(self.filename).st_size
        except FileNotFoundError:
            self._create()
            return
        if self.roll and size + write_len >= self.max_bytes:
            self._rotate("size")
            return
        if self.mode and os.stat(self.filename).st_mode & 0o777 != self.mode:
            os.chmod(self.filename, self.mode)
        self._file = open(self.filename, "ab", buffering=0)
        self._size = size

    def _create(self) -> None:
        fd = os.open(self.filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, self.mode or 0o600)
        if self.mode:
            os.chmod(self.filename, self.mode)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._size = 0

    def _rotate(self, reason: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if os.path.exists(self.filename):
            os.replace(self.filename, self._backup_name(reason, time.time()))
        self._create()
        self._mill()

    def _backup_name(self, reason: str, now: float) -> str:
        folder, base = os.path.split(self.filename)
        prefix, ext = os.path.splitext(base)
        stamp = format_time(self._datetime(now), self.layout)
        return os.path.join(folder, f"{prefix}-{stamp}-{reason}{ext}")

    def _datetime(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts).astimezone() if self.local_time else datetime.fromtimestamp(ts, timezone.utc)

    def _time_to_roll(self, now: float) -> bool:
        if self.interval and now - self._last_roll >= self.interval:
            return True
        if not self.marks:
            return False
        current = self._datetime(now)
        last = self._datetime(self._last_roll)
        return any(last < mark <= current for mark in _recent_marks(current, self.marks))

    # housekeeping in a background thread, one run at a time

    def _mill(self) -> None:
        previous = self._mill_thread
        thread = threading.Thread(target=self._mill_after, args=(previous,), name="rws-log-mill", daemon=True)
        self._mill_thread = thread
        thread.start()

    def _mill_after(self, previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()
        with self._mill_lock:
            try:
                self._mill_once()
            except OSError as exc:
                report(f"log file housekeeping for {self.filename!r} failed: {exc}")

    def _mill_once(self) -> None:
        backups = self._backups()  # newest first
        remove: list[str] = []
        stamps = sorted({stamp for stamp, _ in backups}, reverse=True)
        if len(stamps) > self.keep:
            kept = set(stamps[:self.keep])
            remove = [path for stamp, path in backups if stamp not in kept]
            backups = [(stamp, path) for stamp, path in backups if stamp in kept]
        cutoff = time.time() - self.keep_days * 86400
        remove += [path for stamp, path in backups if stamp < cutoff]
        backups = [(stamp, path) for stamp, path in backups if stamp >= cutoff]
        for path in remove:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        if self.compression != "none":
            for _, path in backups:
                if not path.endswith((".gz", ".zst")):
                    self._compress(path)

    def _backups(self) -> list[tuple[float, str]]:
        """Rolled files of this log with their roll times, newest first."""
        folder, base = os.path.split(self.filename)
        prefix, ext = os.path.splitext(base)
        pattern = strptime_format(self.layout)
        found: list[tuple[float, str]] = []
        for name in os.listdir(folder or "."):
            stem = name.removesuffix(".gz").removesuffix(".zst")
            if not (stem.startswith(prefix + "-") and stem.endswith(ext)) or stem == base:
                continue
            middle = stem[len(prefix) + 1:len(stem) - len(ext)]
            stamp_text, dash, _reason = middle.rpartition("-")
            if not dash:
                continue
            path = os.path.join(folder, name)
            stamp = self._parse_stamp(stamp_text, pattern, path)
            if stamp is not None:
                found.append((stamp, path))
        found.sort(reverse=True)
        return found

    def _parse_stamp(self, text: str, pattern: str | None, path: str) -> float | None:
        if pattern is None:  # a layout strptime cannot read: use the file's time
            return os.path.getmtime(path)
        try:
            parsed = datetime.strptime(text, pattern)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.astimezone() if self.local_time else parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()

    def _compress(self, path: str) -> None:
        target = path + (".zst" if self.compression == "zstd" else ".gz")
        with open(path, "rb") as source, open(target + ".tmp", "wb") as raw:
            if self.compression == "zstd":
                import zstandard

                with zstandard.ZstdCompressor().stream_writer(raw, closefd=False) as out:
                    shutil.copyfileobj(source, out)
            else:
                with gzip.GzipFile(fileobj=raw, mode="wb") as zipped:
                    shutil.copyfileobj(source, zipped)
        os.chmod(target + ".tmp", os.stat(path).st_mode & 0o777)
        os.replace(target + ".tmp", target)
        os.remove(path)


def _compression(config: Any) -> str:
    if config.roll_compression:
        return str(config.roll_compression).strip().lower()
    return "none" if config.roll_gzip is False else "gzip"


def _daily_marks(roll_at: tuple[str, ...]) -> list[tuple[str, int, int]]:
    marks = []
    for text in roll_at:
        hh, sep, mm = text.strip().partition(":")
        if sep and hh.isdecimal() and mm.isdecimal() and int(hh) < 24 and int(mm) < 60:
            marks.append(("day", int(hh), int(mm)))
    return marks


def _hourly_marks(minutes: tuple[int, ...]) -> list[tuple[str, int, int]]:
    return [("hour", 0, m) for m in minutes if 0 <= m < 60]


def _recent_marks(now: datetime, marks: list[tuple[str, int, int]]) -> list[datetime]:
    """Each mark's latest occurrence at or before `now`."""
    out = []
    for kind, hh, mm in marks:
        if kind == "day":
            mark = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
            out.append(mark if mark <= now else mark - timedelta(days=1))
        else:
            mark = now.replace(minute=mm, second=0, microsecond=0)
            out.append(mark if mark <= now else mark - timedelta(hours=1))
    return out


def _make_dirs(folder: str, dir_mode: str, file_mode: int) -> None:
    if os.path.isdir(folder):
        return
    choice = dir_mode.strip().lower()
    if choice in ("", "0"):
        mode = 0o700
    elif choice == "inherit":
        parent = folder
        while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
            parent = os.path.dirname(parent)
        mode = _dir_perm(os.stat(parent).st_mode & 0o777)
    elif choice == "from_file":
        mode = _dir_perm(file_mode) | 0o200
    else:
        mode = int(choice, 8)
    os.makedirs(folder, mode, exist_ok=True)


def _dir_perm(mode: int) -> int:
    """Add the search bit wherever the read bit is set."""
    for read, search in ((0o400, 0o100), (0o040, 0o010), (0o004, 0o001)):
        if mode & read:
            mode |= search
    return mode


# --- network sockets -----------------------------------------------------------------------


class NetWriter:
    """Lines sent over TCP, UDP or a unix socket by a sender thread; on failure it redials
    (at most every 10 seconds, as Caddy does) and meanwhile prints the lines on stderr."""

    QUEUE_SIZE = 10_000

    def __init__(self, config: Any) -> None:
        from rws.http.config import parse_network_address

        try:
            self.address = parse_network_address(config.address)
        except ValueError as exc:
            raise ConfigError("writer.address", f"parsing network address {config.address!r}: {exc}") from None
        if self.address.has_ports and self.address.start_port != self.address.end_port:
            raise ConfigError("writer.address", "multiple ports not supported")
        self.key = config.address
        self.timeout = float(config.dial_timeout) or None
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUE_SIZE)
        self._sock: socket.socket | None = None
        self._last_dial = 0.0
        try:
            self._sock = self._dial()
        except OSError as exc:
            if not config.soft_start:
                raise ConfigError("writer", f"net log writer failed to connect to {config.address!r}: {exc}") from None
            report(f"net log writer failed to connect: {exc} (will retry connection and print errors here)")
        self._thread = threading.Thread(target=self._run, name="rws-log-net", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            sys.stderr.buffer.write(data)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def _dial(self) -> socket.socket:
        addr = self.address
        if addr.network.startswith("unix"):
            kind = socket.SOCK_DGRAM if addr.network == "unixgram" else socket.SOCK_STREAM
            sock = socket.socket(socket.AF_UNIX, kind)
            sock.settimeout(self.timeout)
            sock.connect(addr.host)
            sock.settimeout(None)
            return sock
        if addr.network.startswith("udp"):
            family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.connect((addr.host, addr.start_port))
            return sock
        sock = socket.create_connection((addr.host, addr.start_port), timeout=self.timeout)
        sock.settimeout(None)
        return sock

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            self._send(data)

    def _send(self, data: bytes) -> None:
        if self._sock is not None:
            try:
                self._sock.sendall(data)
                return
            except OSError:
                self._sock.close()
                self._sock = None
        if time.monotonic() - self._last_dial > 10:
            self._last_dial = time.monotonic()
            try:
                self._sock = self._dial()
                self._sock.sendall(data)
                return
            except OSError:
                self._sock = None
        sys.stderr.buffer.write(data)
