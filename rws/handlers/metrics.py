"""The `metrics` handler (serves Prometheus metrics) and the `tracing` handler (OpenTelemetry spans).

Directives: `metrics [<matcher>] { disable_openmetrics }` and
`tracing [<matcher>] { span <name>; span_attributes { <key> <value>... } }`.

At run time `MetricsHandler` answers with the process's metrics (`REGISTRY`) in the
Prometheus text format, or in OpenMetrics when the client's Accept header prefers it
(unless `disable_openmetrics`), gzipped when the client accepts gzip. What is exported:

- `caddy_http_requests_total`, `caddy_http_request_errors_total` (counters) and
  `caddy_http_requests_in_flight` (gauge), labelled `server` and `handler` as in Caddy;
  the server layer counts them;
- `process_start_time_seconds`, `process_cpu_seconds_total`, and on Linux
  `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`.

`Tracing` implements W3C trace-context propagation, which is what Caddy's tracing handler
does visibly when no OpenTelemetry exporter is reachable: it continues the trace of an
incoming `traceparent` (or starts one, sampled), hands the next handler a request whose
`Traceparent` names a new span, and sets `{http.vars.trace_id}` and `{http.vars.span_id}`.
rws exports no spans (no OpenTelemetry SDK is configured), so `span` and
`span_attributes` have no visible effect.
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rws.http.message import Next, Request, Response
from rws.observability.metrics import REGISTRY
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper

if TYPE_CHECKING:
    from rws.http.routes import BuildContext


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


# --- the metrics handler -----------------------------------------------------------------

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_FORMAT = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _accepted(header: str | None) -> list[tuple[str, dict[str, str]]]:
    """Media ranges of an Accept header, most preferred first, without q=0."""
    ranges = []
    for item in (header or "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        options = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in params)}
        try:
            quality = float(options.get("q", "1"))
        except ValueError:
            quality = 0.0
        if media and quality > 0:
            ranges.append((quality, media.lower(), options))
    ranges.sort(key=lambda r: -r[0])
    return [(media, options) for _, media, options in ranges]


def wants_openmetrics(accept: str | None) -> bool:
    """Whether a scraper's Accept header prefers OpenMetrics to the text format."""
    for media, options in _accepted(accept):
        version = options.get("version", "")
        if media == "text/plain" and version in ("", "0.0.4"):
            return False
        if media == "application/openmetrics-text" and version in ("", "0.0.1", "1.0.0"):
            return True
    return False


def _accepts_gzip(accept_encoding: str | None) -> bool:
    return any(media == "gzip" for media, _ in _accepted(accept_encoding))


class MetricsHandler:
    """The runtime of `metrics`: answers every request with the metrics."""

    __slots__ = ("openmetrics",)

    def __init__(self, config: MetricsConfig) -> None:
        self.openmetrics = not config.disable_openmetrics

    async def handle(self, request: Request, next: Next) -> Response:
        openmetrics = self.openmetrics and wants_openmetrics(request.headers.get("Accept"))
        body = REGISTRY.expose(openmetrics).encode("utf-8")
        headers = request.response_headers
        headers.set("Content-Type", OPENMETRICS_FORMAT if openmetrics else TEXT_FORMAT)
        if _accepts_gzip(request.headers.get("Accept-Encoding")):
            headers.set("Content-Encoding", "gzip")
            body = gzip.compress(body)
        return Response(200, headers, body)


def build_metrics(config: MetricsConfig, ctx: BuildContext) -> MetricsHandler:
    return MetricsHandler(config)


# --- tracing -----------------------------------------------------------------------------

_LOWER_HEX = frozenset("0123456789abcdef")


def _hex_part(text: str, length: int) -> bool:
    return len(text) == length and all(c in _LOWER_HEX for c in text)


def parse_traceparent(header: str | None) -> tuple[str, bool] | None:
    """(trace ID, sampled) of a valid W3C `traceparent`, read as OpenTelemetry's Go
    propagator reads it; None when it is missing or invalid."""
    parts = (header or "").split("-", 4)
    if len(parts) < 4 or not all(_hex_part(p, n) for p, n in zip(parts, (2, 32, 16, 2))):
        return None
    version, trace_id, span_id, flags = parts[:4]
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    if version == "00" and (len(parts) > 4 or int(flags, 16) > 2):
        return None
    return trace_id, bool(int(flags, 16) & 1)


def _random_id(bits: int) -> str:
    value = 0
    while value == 0:
        value = random.getrandbits(bits)
    return f"{value:0{bits // 4}x}"


class Tracing:
    """The runtime of `tracing` (trace-context propagation; see the module docstring)."""

    __slots__ = ()

    async def handle(self, request: Request, next: Next) -> Response:
        parent = parse_traceparent(request.headers.get("traceparent"))
        trace_id, sampled = parent if parent is not None else (_random_id(128), True)
        span_id = _random_id(64)
        headers = request.headers.copy()
        headers.set("Traceparent", f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}")
        request.vars["trace_id"] = trace_id
        request.vars["span_id"] = span_id
        return await next(request.with_changes(headers=headers))


def build_tracing(config: TracingConfig, ctx: BuildContext) -> Tracing:
    return Tracing()


METRICS = ModuleSpec(
    id="http.handlers.metrics",
    config=MetricsConfig,
    directives={"metrics": Directive(_parse_metrics)},
    runtime="rws.handlers.metrics:build_metrics",
)
TRACING = ModuleSpec(
    id="http.handlers.tracing",
    config=TracingConfig,
    directives={"tracing": Directive(_parse_tracing)},
    runtime="rws.handlers.metrics:build_tracing",
)
