"""Logging config: writers, encoders, the `log` directive and the `log` global option.

A log (`logging.logs.<name>`) has a writer (`{"output": "stdout"|"stderr"|"discard"|
"file"|"net", ...}`), an encoder (`{"format": "json"|"console"|"filter", ...}`), a level,
sampling, and the logger namespaces it takes (`include`/`exclude`).

In an Rwsfile, `log [<name>] { output ...; format ...; level ...; ... }` inside a site turns
on access logging for that site into a logger named `log0`, `log1`, ... unless named;
the same block in the global options configures a process-wide log (default name
`default`) and may use `include`/`exclude` instead of `hostnames`/`no_hostname`. Both
produce a `custom_log` config value holding a `NamedCustomLog`, which the adapter turns
into `logging.logs` and the servers' `logs`.

Writer and encoder parsers take a dispenser whose current token is the module's name and
return the module's JSON object with its inline key. The `filter` encoder, which wraps
another encoder, is in `log_filter_config.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from rws import registry
from rws.config.decode import Duration
from rws.config.model import level_problem
from rws.config.values import duration_ns, parse_size
from rws.errors import ConfigError
from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper
from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.parse import Entry

JSON = Any


def segment(d: Dispenser) -> Dispenser:
    """A dispenser over the tokens from the current one to the end of the line, and the block."""
    tok = d.token()
    return Dispenser(Entry(d.tokens[d.pos:], d.entry.block, tok.file, tok.line, d.entry.imports))


def suggest(word: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def module_json(d: Dispenser, namespace: str, what: str) -> JSON:
    """Parse the module named by the current token (`output file ...`, `format json ...`)."""
    name = d.val()
    spec = registry.find(f"{namespace}.{name}")
    if spec is None or spec.rwsfile is None:
        raise d.error(f"unknown {what} {name!r}{suggest(name, registry.names_in(namespace))}")
    return spec.rwsfile(segment(d))


def _one_arg(d: Dispenser) -> str:
    """Exactly one more argument on the line (Caddy's AllArgs with one target)."""
    if d.count_remaining_args() != 1:
        raise d.arg_error()
    d.next_arg()
    return d.val()


_INT = re.compile(r"[+-]?\d+")


def _int(d: Dispenser, text: str, what: str) -> int:
    if not _INT.fullmatch(text):
        raise d.error(f"failed to parse {what}: invalid integer {text!r}")
    return int(text)


def _duration_ns(d: Dispenser, text: str, what: str) -> int:
    try:
        return duration_ns(text)
    except ValueError:
        raise d.error(f"failed to parse {what}: invalid duration {text!r}") from None


# --- writers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StandardWriterConfig:
    """stdout, stderr and discard take no settings."""


def _standard_writer(name: str) -> Callable[[Dispenser], JSON]:
    def parse(d: Dispenser) -> JSON:
        if d.next_arg():
            raise d.arg_error()
        d.no_block()
        return {"output": name}

    return parse


STDOUT_WRITER = ModuleSpec(id="caddy.logging.writers.stdout", config=StandardWriterConfig, rwsfile=_standard_writer("stdout"))
STDERR_WRITER = ModuleSpec(id="caddy.logging.writers.stderr", config=StandardWriterConfig, rwsfile=_standard_writer("stderr"))
DISCARD_WRITER = ModuleSpec(id="caddy.logging.writers.discard", config=StandardWriterConfig,
                            rwsfile=_standard_writer("discard"))


def file_mode_problem(text: str) -> str | None:
    """Why `text` is not a chmod-style octal mode ("644", "0640"), or None."""
    if not text or any(c not in "01234567" for c in text) or int(text, 8) > 0xFFFFFFFF:
        return f"invalid file mode {text!r}: expected octal digits such as 0644"
    return None


ROLL_COMPRESSIONS = ("none", "gzip", "zstd")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileWriterConfig:
    """A log file, rolled by size or time (rolling is on unless `roll` is false)."""

    filename: str = ""
    mode: str = ""
    dir_mode: str = ""
    roll: bool | None = None
    roll_size_mb: int = 0
    roll_interval: Duration = 0.0
    roll_minutes: tuple[int, ...] = ()
    roll_at: tuple[str, ...] = ()
    roll_gzip: bool | None = None
    roll_compression: str = ""
    roll_local_time: bool = False
    roll_keep: int = 0
    roll_keep_days: int = 0
    backup_time_format: str = ""

    def validate(self, path: str) -> None:
        if self.mode and file_mode_problem(self.mode):
            raise ConfigError(f"{path}.mode", str(file_mode_problem(self.mode)))
        if self.dir_mode and self.dir_mode.strip().lower() not in ("inherit", "from_file") and \
                file_mode_problem(self.dir_mode.strip()):
            raise ConfigError(f"{path}.dir_mode", str(file_mode_problem(self.dir_mode.strip())))
        if self.roll_compression and self.roll_compression not in ROLL_COMPRESSIONS:
            raise ConfigError(f"{path}.roll_compression", f"must be 'none', 'gzip' or 'zstd', got {self.roll_compression!r}")


def _file_mode(d: Dispenser, text: str, what: str) -> str:
    problem = file_mode_problem(text)
    if problem:
        raise d.error(f"parsing {what}: {problem}")
    return f"{int(text, 8):04o}"


def _comma_list(d: Dispenser, what: str) -> list[str]:
    args = d.remaining_args()
    if not args:
        raise d.arg_error()
    out = []
    for arg in args:
        for part in arg.split(","):
            if not part.strip():
                raise d.error(f"parsing {what}: empty value")
            out.append(part.strip())
    return out


def _parse_file_writer(d: Dispenser) -> JSON:
    out: dict[str, Any] = {"output": "file"}
    if d.count_remaining_args() != 1:
        raise d.arg_error()
    d.next_arg()
    out["filename"] = d.val()
    for sub in d.block():
        name = sub.name
        if name == "mode":
            mode = _file_mode(sub, _one_arg(sub), "mode")
            out["mode"] = mode if int(mode, 8) else ""
        elif name == "dir_mode":
            value = _one_arg(sub).strip()
            if value.lower() not in ("inherit", "from_file"):
                _file_mode(sub, value, "dir_mode")
            out["dir_mode"] = value
        elif name in ("roll_disabled", "roll_uncompressed", "roll_local_time"):
            if sub.next_arg():
                raise sub.arg_error()
            key, flag = {"roll_disabled": ("roll", False), "roll_uncompressed": ("roll_gzip", False),
                         "roll_local_time": ("roll_local_time", True)}[name]
            out[key] = flag
        elif name == "roll_size":
            text = _one_arg(sub)
            try:
                size = parse_size(text)
            except ValueError:
                raise sub.error(f"parsing size: invalid size {text!r}") from None
            out["roll_size_mb"] = math.ceil(size / (1024 * 1024))
        elif name == "roll_compression":
            value = _one_arg(sub).strip().lower()
            if value not in ROLL_COMPRESSIONS:
                raise sub.error("parsing roll_compression: must be 'none', 'gzip' or 'zstd'")
            out["roll_compression"] = value
        elif name == "roll_keep":
            out["roll_keep"] = _int(sub, _one_arg(sub), "roll_keep number")
        elif name == "roll_keep_for":
            keep_for = _duration_ns(sub, _one_arg(sub), "roll_keep_for duration")
            if keep_for < 0:
                raise sub.error(f"negative roll_keep_for duration: {sub.val()}")
            out["roll_keep_days"] = -(-keep_for // (86400 * 10**9))  # whole days, rounded up
        elif name == "roll_interval":
            out["roll_interval"] = _duration_ns(sub, _one_arg(sub), "roll_interval duration")
        elif name == "roll_minutes":
            out["roll_minutes"] = [_int(sub, m, "roll_minutes number") for m in _comma_list(sub, "roll_minutes")]
        elif name == "roll_at":
            out["roll_at"] = _comma_list(sub, "roll_at")
        elif name == "backup_time_format":
            out["backup_time_format"] = _one_arg(sub)
        else:
            raise sub.unknown_subdirective(_FILE_SUBDIRECTIVES)
    # Caddy leaves zero values out; `roll` and `roll_gzip` are pointers, so an explicit false stays
    return {k: v for k, v in out.items() if v is False or v not in (0, "")}


_FILE_SUBDIRECTIVES = ("mode", "dir_mode", "roll_disabled", "roll_size", "roll_uncompressed", "roll_compression",
                       "roll_local_time", "roll_keep", "roll_keep_for", "roll_interval", "roll_minutes", "roll_at",
                       "backup_time_format")

FILE_WRITER = ModuleSpec(id="caddy.logging.writers.file", config=FileWriterConfig, rwsfile=_parse_file_writer)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetWriterConfig:
    """A network socket (`tcp/host:port`, `udp/...`, `unix/...`) receiving log lines."""

    address: str = ""
    dial_timeout: Duration = 0.0
    soft_start: bool = False


def _parse_net_writer(d: Dispenser) -> JSON:
    out: dict[str, Any] = {"output": "net"}
    if d.count_remaining_args() != 1:
        raise d.arg_error()
    d.next_arg()
    out["address"] = d.val()
    for sub in d.block():
        if sub.name == "dial_timeout":
            timeout = _duration_ns(sub, _one_arg(sub), "dial_timeout")
            if timeout:
                out["dial_timeout"] = timeout
        elif sub.name == "soft_start":
            if sub.next_arg():
                raise sub.arg_error()
            out["soft_start"] = True
        else:
            raise sub.unknown_subdirective(("dial_timeout", "soft_start"))
    return out


NET_WRITER = ModuleSpec(id="caddy.logging.writers.net", config=NetWriterConfig, rwsfile=_parse_net_writer)


# --- json and console encoders -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEncoderConfig:
    """Field names and formats of the json and console encoders."""

    message_key: str | None = None
    level_key: str | None = None
    time_key: str | None = None
    name_key: str | None = None
    caller_key: str | None = None
    stacktrace_key: str | None = None
    line_ending: str | None = None
    time_format: str = ""
    time_local: bool = False
    duration_format: str = ""
    level_format: str = ""


_ENCODER_KEYS = ("message_key", "level_key", "time_key", "name_key", "caller_key", "stacktrace_key", "line_ending",
                 "time_format", "duration_format", "level_format")


def _encoder(name: str) -> Callable[[Dispenser], JSON]:
    def parse(d: Dispenser) -> JSON:
        out: dict[str, Any] = {"format": name}
        if d.next_arg():
            raise d.arg_error()
        for sub in d.block():
            if sub.name == "time_local":
                if sub.next_arg():
                    raise sub.arg_error()
                out["time_local"] = True
            elif sub.name in _ENCODER_KEYS:
                value = _one_arg(sub)
                if value or sub.name.endswith(("_key", "_ending")):  # key fields are kept even when empty
                    out[sub.name] = value
            else:
                raise sub.unknown_subdirective(("time_local", *_ENCODER_KEYS))
        return out

    return parse


JSON_ENCODER = ModuleSpec(id="caddy.logging.encoders.json", config=LogEncoderConfig, rwsfile=_encoder("json"))
CONSOLE_ENCODER = ModuleSpec(id="caddy.logging.encoders.console", config=LogEncoderConfig, rwsfile=_encoder("console"))


# --- the log directive and the log global option -------------------------------------------


@dataclass(slots=True)
class NamedCustomLog:
    """What one `log` directive or global option configures.

    `log` is the JSON object for `logging.logs[name]`, or None when the block configured
    nothing (a bare `log` only turns access logging on). `hostnames` overrides the site's
    hosts for the logger mapping; `no_hostname` turns that mapping off.
    """

    name: str = ""
    log: dict[str, Any] | None = None
    hostnames: list[str] = field(default_factory=list)
    no_hostname: bool = False


_LOG_SUBDIRECTIVES = ("hostnames", "output", "sampling", "core", "format", "level", "include", "exclude", "no_hostname")


def _parse_sampling(d: Dispenser) -> dict[str, Any]:
    d.remaining_args()  # Caddy ignores anything on the `sampling` line itself
    sampling: dict[str, Any] = {}
    seen: set[str] = set()
    for sub in d.block():
        if sub.name in seen:
            raise sub.error(f"'{sub.name}' specified more than once in the same sampling block")
        seen.add(sub.name)
        if sub.name not in ("interval", "first", "thereafter"):
            raise sub.unknown_subdirective(("interval", "first", "thereafter"))
        if not sub.next_arg():
            raise sub.arg_error()
        if sub.name == "interval":
            value = _duration_ns(sub, sub.val(), "interval")
        else:
            value = _int(sub, sub.val(), sub.name)
        if value:
            sampling[sub.name] = value
    return sampling


def parse_log_block(d: Dispenser, as_global: bool) -> tuple[dict[str, Any], list[str], bool]:
    """The block of `log`: the CustomLog JSON, the hostnames override and `no_hostname`."""
    log: dict[str, Any] = {}
    hostnames: list[str] = []
    no_hostname = False
    seen: set[str] = set()
    for sub in d.block():
        name = sub.name
        if name in ("output", "sampling", "core", "format", "level", "no_hostname"):
            if name in seen:
                raise sub.error(f"'{name}' subdirective specified more than once in the same log block", sub.tokens[0])
            seen.add(name)
        if name == "hostnames":
            if as_global:
                raise sub.error("hostnames is not allowed in the log global options", sub.tokens[0])
            args = sub.remaining_args()
            if not args:
                raise sub.arg_error()
            hostnames.extend(args)
        elif name == "output":
            if not sub.next_arg():
                raise sub.arg_error()
            log["writer"] = module_json(sub, "caddy.logging.writers", "log writer")
        elif name == "format":
            if not sub.next_arg():
                raise sub.arg_error()
            log["encoder"] = module_json(sub, "caddy.logging.encoders", "log encoder")
        elif name == "core":
            if not sub.next_arg():
                raise sub.arg_error()
            log["core"] = module_json(sub, "caddy.logging.cores", "log core module")
        elif name == "sampling":
            log["sampling"] = _parse_sampling(sub)
        elif name == "level":
            level = _one_arg(sub)
            problem = level_problem(level)
            if problem:
                raise sub.error(problem)
            if level:
                log["level"] = level
        elif name in ("include", "exclude"):
            if not as_global:
                raise sub.error(f"{name} is not allowed in the log directive", sub.tokens[0])
            values = sub.remaining_args()
            if values:
                log[name] = [*log.get(name, []), *values]
        elif name == "no_hostname":
            if sub.next_arg():
                raise sub.arg_error()
            no_hostname = True
        else:
            raise sub.unknown_subdirective(_LOG_SUBDIRECTIVES)
    return log, hostnames, no_hostname


LOG_COUNTER = "log_counter"  # key in the adapt run's state: how many loggers were named logN


def _parse_log_directive(h: Helper) -> list[ConfigValue]:
    """`log [<name>] { ... }` in a site: access logs for that site."""
    d = h.d
    name = ""
    if d.next_arg():
        name = d.val()
        if d.next_arg():
            raise d.arg_error()
    log, hostnames, no_hostname = parse_log_block(d, as_global=False)
    empty = not log
    if not name and not empty:
        counter = h.run.state.get(LOG_COUNTER, 0)
        name = f"log{counter}"
        h.run.state[LOG_COUNTER] = counter + 1
    if name:
        log["include"] = [f"http.log.access.{name}"]
    value = NamedCustomLog(name=name, log=None if empty else log, hostnames=hostnames, no_hostname=no_hostname)
    return [ConfigValue("custom_log", value)]


def _parse_log_option(d: Dispenser, existing: Any) -> list[ConfigValue]:
    """The global `log [<name>] { ... }`; returns the earlier `log` options plus this one."""
    values: list[ConfigValue] = list(existing or [])
    name = "default"
    if d.next_arg():
        name = d.val()
        if d.next_arg():
            raise d.arg_error()
    if any(v.value.name == name for v in values):
        raise d.error(f"duplicate global log option for: {name}")
    log, _, _ = parse_log_block(d, as_global=True)
    values.append(ConfigValue("custom_log", NamedCustomLog(name=name, log=log or None)))
    return values


LOG_DIRECTIVES = ModuleSpec(
    id="caddy.logging",
    config=Any,
    directives={"log": Directive(_parse_log_directive, handler=False)},
    options={"log": _parse_log_option},
)
