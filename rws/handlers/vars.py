"""The `vars` handler: set request variables (`{http.vars.*}`).

Directives: `vars`, `root` (the `root` variable), and `log_skip` with its deprecated
spelling `skip_log` (the `log_skip` variable, which keeps a request out of the access log).

At run time (`Vars`) each name and each string value expands placeholders (unknown ones
become empty); other values (numbers, booleans, null, lists) are stored as they are, in
`request.vars`, which every copy of the request shares. Setting `http.auth.user.id` also
sets that placeholder, as the access log reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rws.http.message import Next, Request, Response
from rws.http.placeholders import Template, compile_template
from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper

if TYPE_CHECKING:
    from rws.http.routes import BuildContext

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


class Vars:
    """The runtime of `vars`: sets variables, then calls the next handler."""

    __slots__ = ("items",)

    def __init__(self, config: VarsConfig) -> None:
        items: list[tuple[Template, Any, bool]] = []
        for name, value in config.items():
            if isinstance(value, str):
                items.append((compile_template(name), compile_template(value), True))
            else:
                items.append((compile_template(name), value, False))
        self.items = tuple(items)

    async def handle(self, request: Request, next: Next) -> Response:
        for name_template, value, is_template in self.items:
            name = name_template.render(request)
            if is_template:
                value = value.render(request)
            request.vars[name] = value
            if name == "http.auth.user.id":
                request.values[name] = value
        return await next(request)


def build_vars(config: VarsConfig, ctx: BuildContext) -> Vars:
    return Vars(config)


VARS = ModuleSpec(
    id="http.handlers.vars",
    config=VarsConfig,
    directives={
        "vars": Directive(_parse_vars),
        "root": Directive(_parse_root, handler=False),
        "log_skip": Directive(_parse_log_skip),
        "skip_log": Directive(_parse_log_skip),
    },
    runtime="rws.handlers.vars:build_vars",
)
