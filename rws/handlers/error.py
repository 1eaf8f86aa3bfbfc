"""The `error` handler: raise an HTTP error for the error routes to handle.

Directive: `error [<matcher>] <status>|<message> [<status>] { message <text> }`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rws.config.decode import WeakString
from rws.handlers.static_response import text_and_status, validate_status_code, weak_string
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorConfig:
    error: str = ""
    status_code: WeakString = ""

    def validate(self, path: str) -> None:
        validate_status_code(self.status_code, path)


def _parse_error(h: Helper) -> Any:
    d = h.d
    message, status = text_and_status(d)
    for sub in d.block():
        if sub.name != "message":
            raise sub.unknown_subdirective(("message",))
        if message:
            raise sub.error("message already specified", sub.tokens[0])
        message = sub.args_exactly(1)[0]
    handler: dict[str, Any] = {"handler": "error"}
    if message:
        handler["error"] = message
    if status:
        handler["status_code"] = weak_string(status)
    return handler


ERROR = ModuleSpec(id="http.handlers.error", config=ErrorConfig, directives={"error": Directive(_parse_error)})
