"""The `filter` log encoder: changes or removes fields before the wrapped encoder runs.

JSON: `{"format": "filter", "wrap": <encoder>, "fields": {"request>headers>Cookie":
{"filter": "cookie", ...}}}`, one filter per field (`delete`, `hash`, `replace`,
`ip_mask`, `query`, `cookie`, `set_cookie`, `regexp`, `multi_regexp`, `rename`).

In an Rwsfile, `format filter { wrap <encoder> ...; fields { <field> <filter> ... } }`; a
field line may also stand directly in the block, and several `regexp` filters of one
field become one `multi_regexp`. The filters themselves run in `log_filters.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rws.config.model import Encoder
from rws.errors import ConfigError
from rws.http.matchers.path import regexp_problem
from rws.observability.log_config import JSON, module_json, segment, suggest
from rws.registry import ModuleSpec
from rws.rwsfile.dispenser import Dispenser

_INT = re.compile(r"[+-]?\d+")

FIELD_FILTERS = ("delete", "hash", "replace", "ip_mask", "query", "cookie", "set_cookie", "regexp", "multi_regexp",
                 "rename")


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterEncoderConfig:
    """Changes or removes fields (`request>headers>Cookie`) before the wrapped encoder runs."""

    wrap: Encoder | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        for name, spec in self.fields.items():
            where = f"{path}.fields[{name!r}]"
            kind = spec.get("filter") if isinstance(spec, dict) else None
            if kind not in FIELD_FILTERS:
                raise ConfigError(f"{where}.filter", f"unknown field filter {kind!r}{suggest(str(kind), list(FIELD_FILTERS))}")
            patterns: list[str] = []
            if kind == "regexp":
                patterns = [spec.get("regexp", "")]
            elif kind == "multi_regexp":
                patterns = [op.get("regexp", "") for op in spec.get("operations") or () if isinstance(op, dict)]
            for pattern in patterns:
                problem = regexp_problem(str(pattern))
                if problem:
                    raise ConfigError(where, problem)


def _filter_actions(d: Dispenser, key: str) -> list[dict[str, str]]:
    """The `replace <k> <v>`, `hash <k>` and `delete <k>` lines of the query and cookie filters."""
    actions = []
    for sub in d.block():
        if sub.name not in ("replace", "hash", "delete"):
            raise sub.unknown_subdirective(("replace", "hash", "delete"))
        if not sub.next_arg():
            raise sub.arg_error()
        action = {"type": sub.name, key: sub.val()}
        if sub.name == "replace":
            if not sub.next_arg():
                raise sub.arg_error()
            if sub.val():
                action["value"] = sub.val()
        actions.append(action)
    return actions


def _mask_bits(d: Dispenser, text: str) -> int:
    if not _INT.fullmatch(text):
        raise d.error(f"error parsing {text}: invalid integer")
    return int(text)


def _parse_ip_mask(d: Dispenser, out: dict[str, Any]) -> None:
    args = d.remaining_args()
    if len(args) > 2:
        raise d.error("too many arguments")
    for key, text in zip(("ipv4_cidr", "ipv6_cidr"), args):
        out[key] = _mask_bits(d, text)
    for sub in d.block():
        if sub.name not in ("ipv4", "ipv6"):
            raise sub.unknown_subdirective(("ipv4", "ipv6"))
        if not sub.next_arg():
            raise sub.arg_error()
        out[f"{sub.name}_cidr"] = _mask_bits(sub, sub.val())
    for key in ("ipv4_cidr", "ipv6_cidr"):
        if not out.get(key):
            out.pop(key, None)


def _parse_field_filter(d: Dispenser) -> JSON:
    """One field filter; the current token is the filter's name."""
    kind = d.val()
    out: dict[str, Any] = {"filter": kind}
    if kind in ("delete", "hash"):
        return out  # Caddy reads nothing more for these
    if kind in ("replace", "rename"):
        if d.next_arg() and d.val():
            out["value" if kind == "replace" else "name"] = d.val()
    elif kind == "ip_mask":
        _parse_ip_mask(d, out)
    elif kind == "query":
        out["actions"] = _filter_actions(d, "parameter") or None
    elif kind in ("cookie", "set_cookie"):
        out["actions"] = _filter_actions(d, "name") or None
    elif kind == "regexp":
        for key in ("regexp", "value"):
            if d.next_arg() and d.val():
                out[key] = d.val()
        _check_filter_regexp(d, out.get("regexp", ""))
    elif kind == "multi_regexp":
        operations = []
        for sub in d.block():
            if sub.name != "regexp":
                raise sub.unknown_subdirective(("regexp",))
            if sub.count_remaining_args() != 2:
                raise sub.arg_error()
            pattern, value = sub.remaining_args()
            _check_filter_regexp(sub, pattern)
            operations.append({"regexp": pattern, "value": value} if value else {"regexp": pattern})
        if not operations:
            raise d.error("multi_regexp filter requires at least one regexp operation")
        out["operations"] = operations
    else:
        raise d.error(f"unknown field filter {kind!r}{suggest(kind, list(FIELD_FILTERS))}")
    return out


def _check_filter_regexp(d: Dispenser, pattern: str) -> None:
    if not pattern:
        raise d.error("regexp pattern cannot be empty")
    problem = regexp_problem(pattern)
    if problem:
        raise d.error(problem)


def _parse_filter_encoder(d: Dispenser) -> JSON:
    out: dict[str, Any] = {"format": "filter"}
    if d.next_arg():
        raise d.arg_error()
    fields: dict[str, Any] = {}
    regexps: dict[str, list[dict[str, str]]] = {}

    def parse_field(line: Dispenser) -> None:
        name = line.name
        if not line.next_arg():
            raise line.arg_error()
        spec = _parse_field_filter(segment(line))
        if spec["filter"] == "regexp":
            regexps.setdefault(name, []).append(spec)
            return
        if name in regexps:
            raise line.error(f"cannot mix regexp filters with other filter types for field {name}")
        if name in fields:
            raise line.error(f"field {name} already has a filter; multiple non-regexp filters per field are not supported")
        fields[name] = spec

    for sub in d.block():
        if sub.name == "wrap":
            if not sub.next_arg():
                raise sub.arg_error()
            out["wrap"] = module_json(sub, "caddy.logging.encoders", "log encoder")
        elif sub.name == "fields":
            for line in sub.block():
                parse_field(line)
        else:
            parse_field(sub)  # a field line may stand directly in the block
    for name, specs in regexps.items():
        if len(specs) == 1:
            fields[name] = specs[0]
        else:
            operations = [{k: v for k, v in s.items() if k != "filter"} for s in specs]
            fields[name] = {"filter": "multi_regexp", "operations": operations}
    if fields:
        out["fields"] = fields
    return out


FILTER_ENCODER = ModuleSpec(id="caddy.logging.encoders.filter", config=FilterEncoderConfig, rwsfile=_parse_filter_encoder)
