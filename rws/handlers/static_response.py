"""The `static_response` handler: a fixed response, a redirect, or a dropped connection.

Directives: `respond`, `redir` and `abort`. Also the helpers shared by the handlers whose
status code may be a number or a placeholder (`error`, `file_server`).

At run time (`StaticResponse`): header names and values and the status code expand
placeholders with unknown ones left empty; the body keeps unknown placeholders as written.
A body without a Content-Type gets `application/json` when it is a JSON object or array,
otherwise `text/plain; charset=utf-8`. The status defaults to 200, or to the error's
status inside error routes. `103` sends early hints and goes on with the next handler;
`close` closes the connection after the response; `abort` drops it without a response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rws.config.decode import WeakString
from rws.errors import ConfigError, HttpError
from rws.http.message import Headers, Next, Request, Response, canonical_header_key
from rws.http.placeholders import Template, compile_template
from rws.registry import ModuleSpec

if TYPE_CHECKING:
    from rws.http.routes import BuildContext
from rws.rwsfile.directives import Directive, Helper
from rws.rwsfile.dispenser import Dispenser

_GO_INT = re.compile(r"[+-]?\d+")


def go_atoi(text: str) -> int | None:
    """The integer `text` spells as Go's strconv.Atoi reads it, or None."""
    if not _GO_INT.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def weak_string(text: str) -> Any:
    """A WeakString value as Caddy writes it in JSON: booleans and integers unquoted."""
    if text in ("true", "false"):
        return text == "true"
    number = go_atoi(text)
    return text if number is None else number


def status_code_problem(value: str) -> str | None:
    """Why `value` is not usable as an HTTP status code (a placeholder always is); None if it is."""
    if "{" in value:
        return None
    number = go_atoi(value)
    if number is None:
        return f"bad status code {value!r}: expected a number or a placeholder"
    if not 100 <= number <= 999:
        return f"bad status code {value!r}: expected a number from 100 to 999"
    return None


def check_status_arg(d: Dispenser, value: str) -> None:
    """Raise a file:line error if the current token's `value` is not a status code."""
    problem = status_code_problem(value)
    if problem:
        raise d.error(problem)


def is_status_shorthand(arg: str) -> bool:
    """A lone argument of exactly three digits is a status code rather than a body/message."""
    number = go_atoi(arg) if len(arg) == 3 else None
    return number is not None and number > 0


def text_and_status(d: Dispenser) -> tuple[str, str]:
    """`<status>`, `<text>` or `<text> <status>`: the arguments of `respond` and `error`."""
    args = d.remaining_args()
    if len(args) == 1:
        if is_status_shorthand(args[0]):
            check_status_arg(d, args[0])
            return "", args[0]
        return args[0], ""
    if len(args) == 2:
        check_status_arg(d, args[1])
        return args[0], args[1]
    raise d.arg_error()


def validate_status_code(status_code: str, path: str) -> None:
    """The decode-time check of a `status_code` field."""
    problem = status_code_problem(status_code) if status_code else None
    if problem:
        raise ConfigError(f"{path}.status_code", problem)


# --- config ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticResponseConfig:
    status_code: WeakString = ""
    headers: dict[str, tuple[str, ...]] | None = None
    body: str = ""
    close: bool = False
    abort: bool = False

    def validate(self, path: str) -> None:
        validate_status_code(self.status_code, path)


# --- respond -----------------------------------------------------------------------------


def _parse_respond(h: Helper) -> Any:
    """`respond [<matcher>] <status>|<body> [<status>] { body <text>; close }`"""
    d = h.d
    body, status = text_and_status(d)
    close = False
    for sub in d.block():
        if sub.name == "body":
            if body:
                raise sub.error("body already specified", sub.tokens[0])
            body = sub.args_exactly(1)[0]
        elif sub.name == "close":
            if close:
                raise sub.error("close already specified", sub.tokens[0])
            sub.args_exactly(0)
            close = True
        else:
            raise sub.unknown_subdirective(("body", "close"))
    handler: dict[str, Any] = {"handler": "static_response"}
    if status:
        handler["status_code"] = weak_string(status)
    if body:
        handler["body"] = body
    if close:
        handler["close"] = True
    return handler


# --- abort -------------------------------------------------------------------------------


def _parse_abort(h: Helper) -> Any:
    """`abort [<matcher>]`"""
    d = h.d
    if d.next_arg():
        raise d.arg_error()
    if d.has_block:
        raise d.error("abort does not take a block")
    return {"handler": "static_response", "abort": True}


# --- redir -------------------------------------------------------------------------------

_HTML_REDIRECT = """<!DOCTYPE html>
<html>
\t<head>
\t\t<title>Redirecting...</title>
\t\t<script>window.location.replace("{0}");</script>
\t\t<meta http-equiv="refresh" content="0; URL='{0}'">
\t</head>
\t<body>Redirecting to <a href="{0}">{0}</a>...</body>
</html>
"""

_HTML_ESCAPES = str.maketrans({"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;"})


def _parse_redir(h: Helper) -> Any:
    """`redir [<matcher>] <to> [<code>]`; code: permanent, temporary, html, 3xx, 401 or a placeholder."""
    d = h.d
    if not d.next_arg():
        raise d.arg_error()
    to = d.val()
    code = d.val() if d.next_arg() else ""
    if d.next_arg():
        raise d.arg_error()
    if d.has_block:
        raise d.error("redir does not take a block")
    body = ""
    headers: dict[str, list[str]]
    if code == "permanent":
        code = "301"
    elif code in ("temporary", ""):
        code = "302"
    elif code == "html":
        body = _HTML_REDIRECT.format(to.translate(_HTML_ESCAPES))
        code = "200"  # browsers follow the page's script; other clients see no redirect
    elif not code.startswith("{"):
        number = go_atoi(code)
        if number is None:
            raise d.error(f"not a supported redir code type or not a valid integer: {code!r}")
        if number < 300 or (number > 399 and number != 401):
            raise d.error(f"redir code not in the 3xx range or 401: {code!r}")
    if code == "200":
        headers = {"Content-Type": ["text/html; charset=utf-8"]}
    else:
        headers = {"Location": [to]}
    handler: dict[str, Any] = {"handler": "static_response", "status_code": weak_string(code), "headers": headers}
    if body:
        handler["body"] = body
    return handler


# --- runtime -----------------------------------------------------------------------------


class StatusCode:
    """A configured status code: a number, or a placeholder expanded per request."""

    __slots__ = ("number", "template")

    def __init__(self, text: str) -> None:
        self.template: Template | None = None
        self.number = go_atoi(text) if text else None
        if text and self.number is None:
            self.template = compile_template(text)

    @property
    def configured(self) -> bool:
        return self.number is not None or self.template is not None

    def resolve(self, request: Request) -> int | None:
        """The code for this request; None when none is configured.

        A placeholder that does not expand to an integer from 100 to 999 is the server's
        error (500), as Caddy reports a failed conversion.
        """
        if self.template is None:
            return self.number
        text = self.template.render(request)
        number = go_atoi(text)
        if number is None:
            raise HttpError(500, f"strconv.Atoi: parsing {text!r}: invalid syntax")
        if not 100 <= number <= 999:
            raise HttpError(500, f"invalid status code {number}")
        return number


def _looks_like_json(body: str) -> bool:
    """A body that is a JSON object or array (Caddy then answers `application/json`)."""
    content = body.strip()
    if len(content) <= 2 or (content[0], content[-1]) not in (("{", "}"), ("[", "]")):
        return False
    try:
        json.loads(content, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # nesting too deep for Python counts as not JSON
        return False
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Go's decoder refuses NaN and Infinity


class StaticResponse:
    """The runtime of `static_response`: answers without calling the next handler."""

    __slots__ = ("status", "headers", "body", "close", "abort", "static_body")

    def __init__(self, config: StaticResponseConfig) -> None:
        self.status = StatusCode(config.status_code)
        headers: list[tuple[str | Template, tuple[Template, ...]]] = []
        for name, values in (config.headers or {}).items():
            name_template = compile_template(name)
            key: str | Template = canonical_header_key(name_template.text_value) if name_template.static else name_template
            headers.append((key, tuple(compile_template(v) for v in values)))
        self.headers = tuple(headers)
        self.body = compile_template(config.body) if config.body else None
        # A body without placeholders is encoded (and its Content-Type decided) once.
        self.static_body: tuple[bytes, str] | None = None
        if self.body is not None and self.body.static:
            text = self.body.text_value
            self.static_body = (text.encode("utf-8"),
                                "application/json" if _looks_like_json(text) else "text/plain; charset=utf-8")
        self.close = config.close
        self.abort = config.abort

    async def handle(self, request: Request, next: Next) -> Response:
        if self.abort:
            return Response(0, Headers(), abort=True)
        headers = request.response_headers
        for key, values in self.headers:
            name = key if isinstance(key, str) else canonical_header_key(key.render(request))
            headers.set_all(name, [v.render(request) for v in values])
        if self.static_body is not None:
            data, content_type = self.static_body
            if data and "Content-Type" not in headers:
                headers.add("Content-Type", content_type)
        else:
            body = self.body.render(request, keep_unknown=True) if self.body is not None else ""
            data = body.encode("utf-8")
            if body and "Content-Type" not in headers:
                headers.add("Content-Type", "application/json" if _looks_like_json(body) else "text/plain; charset=utf-8")
        status = self.status.resolve(request)
        if status is None:
            status = request.error.status if request.error is not None and request.error.status > 0 else 200
        if status == 103:
            # Early hints go out at once; the final response comes from the next handlers.
            if request.informational is not None:
                request.informational(103, headers.items())
            return await next(request)
        return Response(status, headers, data, close=self.close)


def build_static_response(config: StaticResponseConfig, ctx: BuildContext) -> StaticResponse:
    return StaticResponse(config)


STATIC_RESPONSE = ModuleSpec(
    id="http.handlers.static_response",
    config=StaticResponseConfig,
    directives={
        "respond": Directive(_parse_respond),
        "abort": Directive(_parse_abort),
        "redir": Directive(_parse_redir),
    },
    runtime="rws.handlers.static_response:build_static_response",
)
