"""The `encode` handler (response compression) and its encoders: gzip, zstd and br.

Directive: `encode [<matcher>] [<formats...>] { gzip [<level>]; zstd [<level>] { level;
disable_checksum }; br [<quality> [<lgwin>]]; minimum_length <n>; match {...} }`. With no
format at all the default is `zstd gzip`.

An encoder's `rwsfile` parser takes the dispenser of its line in the `encode` block and
returns the encoder's JSON config (without the module name). The running handler is in
`encode_runtime.py`, the encoders' compression streams in `encoders.py`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Any

from rws import registry
from rws.config.decode import ModuleMap
from rws.errors import ConfigError
from rws.handlers.headers import ResponseMatcherConfig, parse_response_matcher
from rws.handlers.static_response import go_atoi
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper
from rws.rwsfile.dispenser import Dispenser

DEFAULT_FORMATS = ("zstd", "gzip")
GZIP_MIN_LEVEL = -3  # stateless compression, as in Caddy's gzip library
GZIP_MAX_LEVEL = 9
ZSTD_LEVELS = ("fastest", "default", "better", "best")


# --- encoders ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GzipConfig:
    level: int = 0  # 0 = the default level

    def validate(self, path: str) -> None:
        problem = _gzip_level_problem(self.level)
        if problem:
            raise ConfigError(f"{path}.level", problem)


def _gzip_level_problem(level: int) -> str | None:
    if level < GZIP_MIN_LEVEL:
        return f"quality too low; must be >= {GZIP_MIN_LEVEL}"
    if level > GZIP_MAX_LEVEL:
        return f"quality too high; must be <= {GZIP_MAX_LEVEL}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ZstdConfig:
    level: str = ""  # fastest, default, better or best (any case); "" = default
    checksum: bool | None = None

    def validate(self, path: str) -> None:
        if self.level and self.level.lower() not in ZSTD_LEVELS:
            raise ConfigError(f"{path}.level", _zstd_level_message())


def _zstd_level_message() -> str:
    return "unexpected compression level, use one of " + ", ".join(f"'{x}'" for x in ZSTD_LEVELS)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrotliConfig:
    quality: int | None = None  # 0..11; None = 6
    lgwin: int = 0  # base-2 log of the window, 10..24; 0 = chosen from the quality

    def validate(self, path: str) -> None:
        if self.quality is not None and not 0 <= self.quality <= 11:
            raise ConfigError(f"{path}.quality", f"quality must be from 0 to 11, got {self.quality}")
        if self.lgwin and not 10 <= self.lgwin <= 24:
            raise ConfigError(f"{path}.lgwin", f"lgwin must be from 10 to 24, got {self.lgwin}")


def _int_arg(d: Dispenser, what: str) -> int:
    number = go_atoi(d.val())
    if number is None:
        raise d.error(f"bad {what} {d.val()!r}: expected an integer")
    return number


def _parse_gzip(d: Dispenser) -> dict[str, Any]:
    """`gzip [<level>]`"""
    if d.has_block:
        raise d.error("gzip does not take a block")
    if not d.next_arg():
        return {}
    level = _int_arg(d, "gzip level")
    problem = _gzip_level_problem(level)
    if problem:
        raise d.error(problem)
    if d.next_arg():
        raise d.arg_error()
    return {"level": level} if level else {}


def _parse_zstd(d: Dispenser) -> dict[str, Any]:
    """`zstd [<level>] { level <level>; disable_checksum }`"""
    out: dict[str, Any] = {}
    args = d.remaining_args()
    if len(args) > 1:
        raise d.arg_error()
    if args:
        if args[0].lower() not in ZSTD_LEVELS:
            raise d.error(_zstd_level_message())
        out["level"] = args[0]
    for sub in d.block():
        if sub.name == "level":
            level = sub.args_exactly(1)[0]
            if "level" in out:
                raise sub.error("compression level already specified")
            if level.lower() not in ZSTD_LEVELS:
                raise sub.error(_zstd_level_message())
            out["level"] = level
        elif sub.name == "disable_checksum":
            sub.args_exactly(0)
            if "checksum" in out:
                raise sub.error("checksum already specified", sub.tokens[0])
            out["checksum"] = False
        else:
            raise sub.unknown_subdirective(("level", "disable_checksum"))
    return out


def _parse_brotli(d: Dispenser) -> dict[str, Any]:
    """`br [<quality> [<lgwin>]]`"""
    if d.has_block:
        raise d.error("br does not take a block")
    out: dict[str, Any] = {}
    if d.next_arg():
        out["quality"] = _int_arg(d, "br quality")
        if not 0 <= out["quality"] <= 11:
            raise d.error(f"br quality must be from 0 to 11, got {out['quality']}")
    if d.next_arg():
        lgwin = _int_arg(d, "br window size")
        if lgwin and not 10 <= lgwin <= 24:
            raise d.error(f"br window size (lgwin) must be from 10 to 24, got {lgwin}")
        if lgwin:
            out["lgwin"] = lgwin
    if d.next_arg():
        raise d.arg_error()
    return out


# --- encode ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodeConfig:
    encodings: Annotated[Any, ModuleMap("http.encoders")] = None
    prefer: tuple[str, ...] = ()
    minimum_length: int = 0
    match: ResponseMatcherConfig | None = None

    def validate(self, path: str) -> None:
        seen: set[str] = set()
        for i, name in enumerate(self.prefer):
            if name not in (self.encodings or {}):
                raise ConfigError(f"{path}.prefer[{i}]", f"encoding {name} not enabled")
            if name in seen:
                raise ConfigError(f"{path}.prefer[{i}]", f"encoding {name} is duplicated in prefer")
            seen.add(name)


def _encoder(name: str) -> ModuleSpec | None:
    return registry.find(f"http.encoders.{name}")


def _parse_encode(h: Helper) -> Any:
    d = h.d
    handler: dict[str, Any] = {"handler": "encode"}
    encodings: dict[str, Any] = {}
    prefer: list[str] = []
    formats = d.remaining_args()
    for sub in d.block():
        name = sub.name
        if name == "minimum_length":
            sub.args_exactly(1)
            length = _int_arg(sub, "minimum_length")
            if length:
                handler["minimum_length"] = length
        elif name == "match":
            handler["match"] = parse_response_matcher(sub)
        else:
            spec = _encoder(name)
            if spec is None or spec.rwsfile is None:
                known = ["minimum_length", "match", *registry.names_in("http.encoders")]
                raise sub.unknown_subdirective(known)
            if name in prefer:
                raise sub.error(f"encoding {name!r} is given more than once", sub.tokens[0])
            encodings[name] = spec.rwsfile(sub)
            prefer.append(name)
    if not prefer and not formats:
        formats = list(DEFAULT_FORMATS)
    for name in formats:
        if _encoder(name) is None:
            close = difflib.get_close_matches(name, registry.names_in("http.encoders"), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise d.error(f"unrecognized encoding {name!r}{hint}")
        if name in prefer:
            raise d.error(f"encoding {name!r} is given more than once")
        encodings[name] = {}
        prefer.append(name)
    handler["encodings"] = encodings
    handler["prefer"] = prefer
    return handler


ENCODE = ModuleSpec(id="http.handlers.encode", config=EncodeConfig, directives={"encode": Directive(_parse_encode)},
                    runtime="rws.handlers.encode_runtime:build_encode")
GZIP = ModuleSpec(id="http.encoders.gzip", config=GzipConfig, rwsfile=_parse_gzip,
                  runtime="rws.handlers.encoders:build_gzip")
ZSTD = ModuleSpec(id="http.encoders.zstd", config=ZstdConfig, rwsfile=_parse_zstd,
                  runtime="rws.handlers.encoders:build_zstd")
BROTLI = ModuleSpec(id="http.encoders.br", config=BrotliConfig, rwsfile=_parse_brotli,
                    runtime="rws.handlers.encoders:build_brotli")
