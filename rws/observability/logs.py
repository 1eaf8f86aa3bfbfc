"""The process's logs, built from the `logging` config: named logs, each a writer, an
encoder, a level, sampling and the logger names it takes.

A record comes from a logger with a dotted name (`http.log.access.log0`, or a Python
module's `rws.handlers.reverse_proxy`) and goes to every log that takes that name and
whose level it reaches, as in Caddy:

- a log with neither `include` nor `exclude` takes every logger; otherwise the longest
  matching namespace decides (`include: ["http.log.access.log0"]`, `exclude: ["http"]`);
- the log named `default` exists even when the config leaves it out: stderr, INFO, and the
  console format on a terminal or JSON otherwise. Other logs that write to `discard` are
  dropped;
- `sampling` keeps, per message and level, the first `first` records of every `interval`
  and then one in `thereafter` (defaults 1s, 100, 100).

`build_logs(config, ctx)` opens the writers (shared with the previous config where the
same file or stream is named) and `install()` makes the result the process's logs: Python
`logging` records then flow into it, with their `extra={...}` values as fields. Code that
logs per request (the access log) calls `Logs.log` directly, which costs a dict lookup
when no log takes the record.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, Iterable

from rws.config.decode import ModuleValue
from rws.errors import ConfigError
from rws.observability import log_writers
from rws.observability.log_encoders import (DEBUG, ERROR, FATAL, INFO, LEVELS, WARN, ConsoleEncoder, Duration,
                                            Encoder, Entry, JsonEncoder, default_encoder)
from rws.observability.log_filters import build_filter_encoder, wrapped_module
from rws.observability.log_writers import Writer, report

__all__ = ["Duration", "Entry", "Logs", "Sink", "build_logs", "current", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]

DEFAULT_LOG = "default"
LOGS_KEY = "rws.observability.logs"  # where build_logs leaves the Logs in BuildContext.shared


# --- one log -------------------------------------------------------------------------------


class Sampler:
    """zap's sampler: per (level, message), the first `first` records in each `interval`,
    then every `thereafter`-th."""

    def __init__(self, interval: float, first: int, thereafter: int) -> None:
        self.interval = interval or 1.0
        self.first = first or 100
        self.thereafter = thereafter or 100
        self._counts: dict[tuple[int, str], list[float]] = {}  # key -> [window end, count]
        self._lock = threading.Lock()

    def allow(self, entry: Entry) -> bool:
        key = (entry.level, entry.msg)
        with self._lock:
            counter = self._counts.get(key)
            if counter is None or entry.ts > counter[0]:
                if len(self._counts) > 4096:
                    self._counts.clear()
                counter = self._counts[key] = [entry.ts + self.interval, 0]
            counter[1] += 1
            n = int(counter[1])
        return n <= self.first or (n - self.first) % self.thereafter == 0


class Sink:
    """One named log at run time."""

    def __init__(self, name: str, writer: Writer, encoder: Encoder, level: int, include: tuple[str, ...] = (),
                 exclude: tuple[str, ...] = (), sampler: Sampler | None = None, with_caller: bool = False) -> None:
        self.name = name
        self.writer = writer
        self.encoder = encoder
        self.level = level
        self.include = include
        self.exclude = exclude
        self.sampler = sampler
        self.with_caller = with_caller

    def allows(self, logger: str) -> bool:
        """Caddy's CustomLog.loggerAllowed for a logger name."""
        if not self.include and not self.exclude:
            return True
        name = logger if logger in ("", "*", ".") else logger + "."
        longest_accept = longest_reject = 0
        if self.include:
            for namespace in self.include:
                if name.startswith(namespace + ".") and len(namespace) > longest_accept:
                    longest_accept = len(namespace)
            if longest_accept == 0:
                return False
        for namespace in self.exclude:
            if (namespace == "*" and name != ".") or (namespace == "." and name == "."):
                return False
            if name.startswith(namespace + ".") and len(namespace) > longest_reject:
                longest_reject = len(namespace)
        if longest_reject > longest_accept:
            return False
        return longest_accept > longest_reject or (not self.include and longest_reject == 0)

    def emit(self, entry: Entry) -> None:
        if self.sampler is not None and not self.sampler.allow(entry):
            return
        if entry.caller and not self.with_caller:
            entry = dataclasses.replace(entry, caller="")
        try:
            self.writer.write(self.encoder.encode(entry))
        except (OSError, ValueError) as exc:
            report(f"writing to log {self.name!r} failed: {exc}")


# --- all logs ------------------------------------------------------------------------------


class Logs:
    """The logs of one config; `log()` sends a record to those that take it."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = tuple(sinks)
        self.min_level = min((s.level for s in self.sinks), default=FATAL + 1)
        self._routes: dict[str, tuple[Sink, ...]] = {}
        self._closed = False

    def sinks_for(self, logger: str) -> tuple[Sink, ...]:
        """The logs that take records of `logger` (any level)."""
        sinks = self._routes.get(logger)
        if sinks is None:
            if len(self._routes) > 4096:
                self._routes.clear()
            sinks = self._routes[logger] = tuple(s for s in self.sinks if s.allows(logger))
        return sinks

    def enabled(self, logger: str, level: int) -> bool:
        return level >= self.min_level and any(s.level <= level for s in self.sinks_for(logger))

    def log(self, logger: str, level: int, msg: str, fields: dict[str, Any] | None = None, *,
            ts: float | None = None, caller: str = "", stack: str = "") -> None:
        """Send one record; `fields` keep their order."""
        if level < self.min_level:
            return
        entry: Entry | None = None
        for sink in self.sinks_for(logger):
            if sink.level <= level:
                if entry is None:
                    entry = Entry(level, time.time() if ts is None else ts, logger, msg, fields or {}, caller, stack)
                sink.emit(entry)

    def install(self) -> None:
        """Make these the process's logs, receiving Python `logging` records too."""
        global _current
        _current = self
        _bridge.attach(self.min_level)

    def close(self) -> None:
        global _current
        if self._closed:
            return
        self._closed = True
        if _current is self:
            _current = None
        for sink in self.sinks:
            release(sink.writer)


_current: Logs | None = None


def current() -> Logs:
    """The process's logs: the last installed, or Caddy's default log (stderr, INFO)."""
    global _current
    if _current is None:
        _current = build_logs(None)
    return _current


# --- building ------------------------------------------------------------------------------


def build_logs(config: Any, ctx: Any = None) -> Logs:
    """Logs from a decoded `LoggingConfig` (or None); with a BuildContext, they are left in
    `ctx.shared[LOGS_KEY]` for the servers' access loggers and closed with the generation."""
    named: dict[str, Any] = dict(config.logs or {}) if config is not None else {}
    sinks: list[Sink] = []
    try:
        default = _build_sink(DEFAULT_LOG, named.pop(DEFAULT_LOG, None), "logging.logs.default")
        if default is not None:
            sinks.append(default)
        for name, log in named.items():
            sink = _build_sink(name, log, f"logging.logs.{name}")
            if sink is not None:
                sinks.append(sink)
    except BaseException:
        for sink in sinks:
            release(sink.writer)
        raise
    logs = Logs(sinks)
    if ctx is not None:
        ctx.shared[LOGS_KEY] = logs
        ctx.on_close(logs.close)
    return logs


def _build_sink(name: str, log: Any, path: str) -> Sink | None:
    writer_module: ModuleValue | None = getattr(log, "writer", None)
    if writer_module is not None and writer_module.id.endswith(".discard"):
        return None
    level = parse_level(getattr(log, "level", "") or "", f"{path}.level")
    writer = open_writer(writer_module)
    try:
        encoder = build_encoder(getattr(log, "encoder", None), writer.key, f"{path}.encoder")
    except BaseException:
        release(writer)
        raise
    sampling = getattr(log, "sampling", None)
    sampler = Sampler(float(sampling.interval), sampling.first, sampling.thereafter) if sampling is not None else None
    return Sink(name, writer, encoder, level, tuple(getattr(log, "include", ())), tuple(getattr(log, "exclude", ())),
                sampler, bool(getattr(log, "with_caller", False)))


def build_encoder(module: ModuleValue | None, writer_key: str, path: str) -> Encoder:
    if module is None:
        return default_encoder(writer_key)
    kind = module.id.rsplit(".", 1)[-1]
    if kind == "json":
        return JsonEncoder(module.config)
    if kind == "console":
        return ConsoleEncoder(module.config)
    if kind == "filter":
        inner = build_encoder(wrapped_module(module.config), writer_key, f"{path}.wrap")
        return build_filter_encoder(module.config, inner, path)
    raise ConfigError(path, f"log encoder {kind!r} cannot run in this build")


def parse_level(text: str, path: str) -> int:
    """A level name (any case; global placeholders such as `{env.LOG_LEVEL}` filled in)."""
    if "{" in text:
        text = render_filename(text, path, "log level")
    level = LEVELS.get(text.lower() or "info")
    if level is None or text.lower() == "dpanic":
        raise ConfigError(path, f"unrecognized log level: {text.lower()}")
    return level


# --- writers, shared by key ---------------------------------------------------------------

_pool: dict[str, list[Any]] = {}  # key -> [writer, users]: Caddy's writer pool
_pool_lock = threading.Lock()


def writer_key(module: ModuleValue | None) -> str:
    if module is None:
        return "std:err"
    name = module.id.rsplit(".", 1)[-1]
    if name in ("stdout", "stderr"):
        return f"std:{name[3:]}"
    if name == "file":
        return "file:" + render_filename(module.config.filename)
    if name == "net":
        return str(module.config.address)
    return name


def open_writer(module: ModuleValue | None) -> Writer:
    """The writer a log's `writer` config names (stderr when absent), shared by key."""
    key = writer_key(module)
    with _pool_lock:
        entry = _pool.get(key)
        if entry is not None:
            entry[1] += 1
            writer: Writer = entry[0]
            return writer
        writer = _new_writer(module)
        _pool[key] = [writer, 1]
        return writer


def release(writer: Writer) -> None:
    """One user is done with `writer`; the last one closes it."""
    with _pool_lock:
        entry = _pool.get(writer.key)
        if entry is None or entry[0] is not writer:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _pool[writer.key]
    try:
        writer.close()
    except OSError as exc:
        log_writers.report(f"closing log writer {writer.key!r} failed: {exc}")


def _new_writer(module: ModuleValue | None) -> Writer:
    name = "stderr" if module is None else module.id.rsplit(".", 1)[-1]
    if name in ("stdout", "stderr"):
        return log_writers.StreamWriter(name)
    if name == "discard":
        return log_writers.DiscardWriter()
    if name == "file":
        filename = render_filename(module.config.filename)  # type: ignore[union-attr]
        try:
            return log_writers.RollingFile(module.config, filename)  # type: ignore[union-attr]
        except OSError as exc:
            raise ConfigError("writer", f"opening log file {filename!r}: {exc}") from None
    if name == "net":
        return log_writers.NetWriter(module.config)  # type: ignore[union-attr]
    raise ConfigError("writer", f"log writer {name!r} cannot run in this build")


def render_filename(text: str, path: str = "writer.filename", what: str = "filename for log file") -> str:
    """Text with its global placeholders (`{env.LOGS}`) filled in; an unknown or empty
    placeholder is an error, as in Caddy."""
    if "{" not in text:
        return text
    from rws.http.message import Headers, Request
    from rws.http.placeholders import compile_template, lookup, to_string

    request = Request("GET", "/", Headers())
    out = []
    for part in compile_template(text).parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value, found = lookup(request, part[0])
        if not found or to_string(value) == "":
            raise ConfigError(path, f"invalid {what}: unrecognized or empty placeholder {{{part[0]}}}")
        out.append(to_string(value))
    return "".join(out)


# --- Python logging ------------------------------------------------------------------------

_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def python_level(levelno: int) -> int:
    if levelno <= logging.DEBUG:
        return DEBUG
    if levelno <= logging.INFO:
        return INFO
    if levelno <= logging.WARNING:
        return WARN
    if levelno <= logging.ERROR:
        return ERROR
    return FATAL


def _logging_level(level: int) -> int:
    return {DEBUG: logging.DEBUG, INFO: logging.INFO, WARN: logging.WARNING}.get(level, logging.ERROR)


class _Bridge(logging.Handler):
    """Sends Python `logging` records to the installed logs."""

    process_fields: dict[str, Any] = {}  # on every record of this process (a worker's number)

    def emit(self, record: logging.LogRecord) -> None:
        logs = current()
        level = python_level(record.levelno)
        if not logs.enabled(record.name, level):
            return
        fields = {**self.process_fields, **{k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}}
        stack = ""
        if record.exc_info and record.exc_info[1] is not None:
            fields.setdefault("error", str(record.exc_info[1]) or type(record.exc_info[1]).__name__)
            stack = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        caller = f"{os.path.basename(os.path.dirname(record.pathname))}/{record.filename}:{record.lineno}"
        logs.log(record.name, level, record.getMessage(), fields, ts=record.created, caller=caller, stack=stack)

    def attach(self, min_level: int) -> None:
        root = logging.getLogger()
        if self not in root.handlers:
            for handler in list(root.handlers):  # logging.basicConfig's plain stream handler would print twice
                if type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout):
                    root.removeHandler(handler)
            root.addHandler(self)
        root.setLevel(_logging_level(min_level))


_bridge = _Bridge()


def tag_process_records(**fields: Any) -> None:
    """Fields every log record of this process carries from now on (not access logs)."""
    _Bridge.process_fields = dict(fields)
