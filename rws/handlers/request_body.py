"""The `request_body` handler: limit (or replace) the request body.

Directive: `request_body [<matcher>] { max_size <size>; set <body> }`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rws.errors import ConfigError
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestBodyConfig:
    max_size: int = 0  # bytes; 0 = no limit
    set: str = ""

    def validate(self, path: str) -> None:
        if self.max_size < 0:
            raise ConfigError(f"{path}.max_size", f"max_size must not be negative, got {self.max_size}")


def _parse_request_body(h: Helper) -> Any:
    d = h.d
    if d.next_arg():
        raise d.arg_error()
    handler: dict[str, Any] = {"handler": "request_body"}
    for sub in d.block():
        if sub.name == "max_size":
            sub.args_exactly(1)
            sub.pos = 0
            size = sub.size_arg()
            if size:
                handler["max_size"] = size
            else:
                handler.pop("max_size", None)
        elif sub.name == "set":
            text = sub.args_exactly(1)[0]
            if text:
                handler["set"] = text
            else:
                handler.pop("set", None)
        else:
            raise sub.unknown_subdirective(("max_size", "set"))
    return handler


REQUEST_BODY = ModuleSpec(
    id="http.handlers.request_body",
    config=RequestBodyConfig,
    directives={"request_body": Directive(_parse_request_body)},
)
