"""The `vars` handler: set request variables (`{http.vars.*}`).

Directives: `vars`, `root` (the `root` variable), and `log_skip` with its deprecated
spelling `skip_log` (the `log_skip` variable, which keeps a request out of the access log).
"""

from __future__ import annotations

from typing import Any

from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper

# The handler's JSON is an object of variable names to values of any JSON type.
VarsConfig = dict[str, Any]


def _parse_vars(h: Helper) -> Any:
    """`vars [<matcher>] [<name> <value>] { <name> <value>... }`; values are typed."""
    d = h.d
    handler: dict[str, Any] = {"handler": "vars"}
    lines = []
    if d.next_arg():
        lines.append(d)
    lines.extend(d.block())
    for line in lines:
        name = line.val()
        if name == "handler":
            raise line.error("'handler' cannot be a variable name: it names the handler in the JSON config")
        if not line.next_arg():
            raise line.arg_error()
        handler[name] = line.scalar()
        if line.next_arg():
            raise line.arg_error()
    return handler


def _parse_root(h: Helper) -> list[ConfigValue]:
    """`root [<matcher>] <path>`: with one argument there is no matcher."""
    d = h.d
    count = d.count_remaining_args()
    if count == 0:
        raise d.error("too few arguments; must have at least a root path")
    if count > 2:
        raise d.error("too many arguments; should only be a matcher and a path")
    if d.has_block:
        raise d.error("root does not take a block")
    matcher_set = None
    if count == 2:
        matcher_set, is_matcher = h.matcher_token()
        if not is_matcher:
            raise d.error(f"expected a matcher before the root path, got {d.peek()!r}")
    d.next_arg()
    root = d.val()
    if matcher_set is None:
        h.block_state["root"] = root  # sibling directives (php_fastcgi) read the unmatched root
    return h.new_route(matcher_set, {"handler": "vars", "root": root})


def _parse_log_skip(h: Helper) -> Any:
    """`log_skip [<matcher>]`"""
    d = h.d
    if d.name == "skip_log":
        h.warn("the 'skip_log' directive is deprecated, please use 'log_skip' instead!")
    if d.next_arg():
        raise d.arg_error()
    if d.has_block:
        raise d.error("log_skip directive does not accept blocks")
    return {"handler": "vars", "log_skip": True}


VARS = ModuleSpec(
    id="http.handlers.vars",
    config=VarsConfig,
    directives={
        "vars": Directive(_parse_vars),
        "root": Directive(_parse_root, handler=False),
        "log_skip": Directive(_parse_log_skip),
        "skip_log": Directive(_parse_log_skip),
    },
)
