"""The `static_response` handler: a fixed response, a redirect, or a dropped connection.

Directives: `respond`, `redir` and `abort`. Also the helpers shared by the handlers whose
status code may be a number or a placeholder (`error`, `file_server`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rws.config.decode import WeakString
from rws.errors import ConfigError
from rws.registry import ModuleSpec
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


STATIC_RESPONSE = ModuleSpec(
    id="http.handlers.static_response",
    config=StaticResponseConfig,
    directives={
        "respond": Directive(_parse_respond),
        "abort": Directive(_parse_abort),
        "redir": Directive(_parse_redir),
    },
)
