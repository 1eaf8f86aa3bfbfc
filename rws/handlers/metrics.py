"""The `metrics` handler (serves Prometheus metrics) and the `tracing` handler (OpenTelemetry spans).

Directives: `metrics [<matcher>] { disable_openmetrics }` and
`tracing [<matcher>] { span <name>; span_attributes { <key> <value>... } }`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    disable_openmetrics: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TracingConfig:
    span: str = ""
    span_attributes: dict[str, str] | None = None


def _parse_metrics(h: Helper) -> Any:
    d = h.d
    if d.next_arg():
        raise d.arg_error()
    handler: dict[str, Any] = {"handler": "metrics"}
    for sub in d.block():
        if sub.name != "disable_openmetrics":
            raise sub.unknown_subdirective(("disable_openmetrics",))
        sub.args_exactly(0)
        handler["disable_openmetrics"] = True
    return handler


def _parse_tracing(h: Helper) -> Any:
    d = h.d
    if d.next_arg():
        raise d.arg_error()
    handler: dict[str, Any] = {"handler": "tracing", "span": ""}  # Caddy always writes `span`
    for sub in d.block():
        if sub.name == "span":
            handler["span"] = sub.args_exactly(1)[0]
        elif sub.name == "span_attributes":
            sub.args_exactly(0)
            attributes = handler.setdefault("span_attributes", {})
            for line in sub.block():
                key = line.name
                attributes[key] = line.args_exactly(1)[0]
        else:
            raise sub.unknown_subdirective(("span", "span_attributes"))
    if handler.get("span_attributes") == {}:
        del handler["span_attributes"]
    return handler


METRICS = ModuleSpec(id="http.handlers.metrics", config=MetricsConfig, directives={"metrics": Directive(_parse_metrics)})
TRACING = ModuleSpec(id="http.handlers.tracing", config=TracingConfig, directives={"tracing": Directive(_parse_tracing)})
