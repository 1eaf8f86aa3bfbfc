"""The `map` handler: compute placeholders from another placeholder's value.

Directive: `map [<matcher>] <source> <destinations...> { [~]<input> <outputs...>; default <outputs...> }`.
An input starting with `~` is a regular expression; an output `-` means "no value".

At run time (`Map`) the source is expanded and every destination placeholder is set in
`request.values` when the handler runs; Caddy computes a destination only when something
reads it, which differs only if the source changes later in the chain. The first mapping
whose input equals the source (or whose regexp finds a match in it; its output may use
`${1}` and `${name}` but no placeholders) and whose output for that destination is not
null gives the value; otherwise the default, otherwise an empty value. A destination that
already has a value (another provider's placeholder, or an earlier `map`) keeps it, since
in Caddy the first provider that knows a placeholder answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rws.errors import ConfigError
from rws.http.message import Next, Request, Response
from rws.http.placeholders import Template, compile_template, lookup, to_string
from rws.http.regexp import TemplatePart, compile_regexp, expand, go_template, regexp_problem
from rws.registry import ModuleSpec
from rws.rwsfile.directives import SIMPLE_SHORTHANDS, Directive, Helper

if TYPE_CHECKING:
    from rws.http.routes import BuildContext


@dataclass(frozen=True, slots=True, kw_only=True)
class MappingConfig:
    input: str = ""
    input_regexp: str = ""
    outputs: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MapConfig:
    source: str = ""
    destinations: tuple[str, ...] = ()
    mappings: tuple[MappingConfig, ...] = ()
    defaults: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        for i, dest in enumerate(self.destinations):
            if dest.count("{") != 1 or not dest.startswith("{"):
                raise ConfigError(f"{path}.destinations[{i}]", "destination must be a placeholder and only a placeholder")
        n_dest = len(self.destinations)
        if self.defaults and len(self.defaults) != n_dest:
            raise ConfigError(f"{path}.defaults", f"{n_dest} destinations != {len(self.defaults)} defaults")
        seen: dict[str, int] = {}
        for i, m in enumerate(self.mappings):
            where = f"{path}.mappings[{i}]"
            if m.input and m.input_regexp:
                raise ConfigError(where, "mapping has both input and input_regexp fields specified, which is confusing")
            key = m.input_regexp or m.input
            if key in seen:
                raise ConfigError(where, f"mapping has a duplicate input {key!r} previously used with mapping {seen[key]}")
            seen[key] = i
            if len(m.outputs) != n_dest:
                raise ConfigError(f"{where}.outputs", f"mapping has {len(m.outputs)} outputs but there are {n_dest} destinations defined")
            if m.input_regexp:
                problem = regexp_problem(m.input_regexp)
                if problem:
                    raise ConfigError(f"{where}.input_regexp", problem)


def shorthand_for(token: str) -> str:
    """The shorthand (`{path}`) whose expansion `token` is, or "" if it is none."""
    bare = token.strip("{}")
    for short, full in SIMPLE_SHORTHANDS.items():
        if bare == full.strip("{}"):
            return short
    return ""


def _parse_map(h: Helper) -> Any:
    d = h.d
    if not d.next_arg():
        raise d.arg_error()
    handler: dict[str, Any] = {"handler": "map", "source": d.val()}
    destinations = d.remaining_args()
    if not destinations:
        raise d.error("missing destination argument(s)")
    for dest in destinations:
        short = shorthand_for(dest)
        if short:
            raise d.error(f"destination {short} conflicts with an Rwsfile placeholder shorthand")
        if dest.count("{") != 1 or not dest.startswith("{"):
            raise d.error(f"destination {dest!r} must be a placeholder and only a placeholder, like {{my_name}}")
    handler["destinations"] = destinations
    mappings: list[dict[str, Any]] = []
    defaults: list[str] = []
    seen: dict[str, int] = {}
    for sub in d.block():
        if sub.name == "default":
            if defaults:
                raise sub.error("defaults already defined", sub.tokens[0])
            defaults = sub.remaining_args()
            if len(defaults) > len(destinations):
                raise sub.error("too many defaults")
            defaults += [""] * (len(destinations) - len(defaults))
            continue
        text = sub.name
        outputs: list[Any] = []
        while sub.next_arg():
            value = sub.scalar()
            outputs.append(None if value == "-" else value)
        if len(outputs) > len(destinations):
            raise sub.error("too many outputs")
        outputs += [None] * (len(destinations) - len(outputs))
        mapping: dict[str, Any] = {}
        if text.startswith("~"):
            problem = regexp_problem(text[1:])
            if problem:
                raise sub.error(problem, sub.tokens[0])
            key = text[1:]
            if key:
                mapping["input_regexp"] = key
        else:
            key = text
            if key:
                mapping["input"] = key
        if key in seen:
            raise sub.error(f"duplicate input {key!r}: already mapped on an earlier line", sub.tokens[0])
        seen[key] = len(mappings)
        mapping["outputs"] = outputs
        mappings.append(mapping)
    if mappings:
        handler["mappings"] = mappings
    if defaults:
        handler["defaults"] = defaults
    return handler


# --- runtime -----------------------------------------------------------------------------

Output = Template | tuple[TemplatePart, ...] | None  # a placeholder template, a regexp template, or no value


class _Mapping:
    __slots__ = ("input", "pattern", "outputs")

    def __init__(self, config: MappingConfig) -> None:
        self.input = config.input
        self.pattern = compile_regexp(config.input_regexp) if config.input_regexp else None
        outputs: list[Output] = []
        for value in config.outputs:
            if value is None:
                outputs.append(None)
            elif self.pattern is not None:
                outputs.append(go_template(to_string(value)))
            else:
                outputs.append(compile_template(to_string(value)))
        self.outputs = tuple(outputs)

    def output(self, index: int, source: str, request: Request) -> str | None:
        """This mapping's value for one destination, or None when it does not apply."""
        output = self.outputs[index]
        if output is None:
            return None
        if isinstance(output, Template):
            return output.render(request) if source == self.input else None
        assert self.pattern is not None
        match = self.pattern.search(source)
        return expand(output, match) if match else None


class Map:
    """The runtime of `map`: sets its destination placeholders, then calls the next handler."""

    __slots__ = ("source", "destinations", "mappings", "defaults")

    def __init__(self, config: MapConfig) -> None:
        self.source = compile_template(config.source)
        self.destinations = tuple(d.strip("{}") for d in config.destinations)
        self.mappings = tuple(_Mapping(m) for m in config.mappings)
        self.defaults = tuple(compile_template(d) for d in config.defaults)

    async def handle(self, request: Request, next: Next) -> Response:
        source: str | None = None
        for index, key in enumerate(self.destinations):
            if lookup(request, key)[1]:
                continue
            if source is None:
                source = self.source.render(request)
            request.values[key] = self._value(index, source, request)
        return await next(request)

    def _value(self, index: int, source: str, request: Request) -> str | None:
        for mapping in self.mappings:
            value = mapping.output(index, source, request)
            if value is not None:
                return value
        if index < len(self.defaults):
            return self.defaults[index].render(request)
        return None


def build_map(config: MapConfig, ctx: BuildContext) -> Map:
    return Map(config)


MAP = ModuleSpec(
    id="http.handlers.map",
    config=MapConfig,
    directives={"map": Directive(_parse_map)},
    runtime="rws.handlers.map:build_map",
)
