"""The `error` handler: raise an HTTP error for the error routes to handle.

Directive: `error [<matcher>] <status>|<message> [<status>] { message <text> }`.

At run time (`StaticError`) the handler raises `HttpError` with the configured status
(500 when none is set; placeholders allowed) and the message with its known placeholders
expanded (unknown ones stay as written), which error routes read as `{http.error.*}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rws.config.decode import WeakString
from rws.errors import HttpError
from rws.handlers.static_response import StatusCode, text_and_status, validate_status_code, weak_string
from rws.http.message import Next, Request, Response
from rws.http.placeholders import compile_template
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper

if TYPE_CHECKING:
    from rws.http.routes import BuildContext


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


class StaticError:
    """The runtime of `error`: never calls the next handler."""

    __slots__ = ("status", "message")

    def __init__(self, config: ErrorConfig) -> None:
        self.status = StatusCode(config.status_code)
        self.message = compile_template(config.error)

    async def handle(self, request: Request, next: Next) -> Response:
        status = self.status.resolve(request) or 500
        raise HttpError(status, self.message.render(request, keep_unknown=True))


def build_error(config: ErrorConfig, ctx: BuildContext) -> StaticError:
    return StaticError(config)


ERROR = ModuleSpec(
    id="http.handlers.error",
    config=ErrorConfig,
    directives={"error": Directive(_parse_error)},
    runtime="rws.handlers.error:build_error",
)
