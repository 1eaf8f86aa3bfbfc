"""The `map` handler: compute placeholders from another placeholder's value.

Directive: `map [<matcher>] <source> <destinations...> { [~]<input> <outputs...>; default <outputs...> }`.
An input starting with `~` is a regular expression; an output `-` means "no value".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rws.errors import ConfigError
from rws.http.regexp import regexp_problem
from rws.registry import ModuleSpec
from rws.rwsfile.directives import SIMPLE_SHORTHANDS, Directive, Helper


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


MAP = ModuleSpec(id="http.handlers.map", config=MapConfig, directives={"map": Directive(_parse_map)})
