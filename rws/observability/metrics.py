"""The process's metrics registry, rendered in the Prometheus text format (or
OpenMetrics): counters and gauges with labels, plus process metrics read on demand.

The `metrics` handler and the admin API's `/metrics` both expose `REGISTRY`; the HTTP
server counts its requests in `REQUESTS_TOTAL`, `REQUEST_ERRORS_TOTAL` and
`REQUESTS_IN_FLIGHT`. Metrics are per process: with worker processes, the admin API's
`/metrics` merges every process's `snapshot` (`merge`), while the `metrics` handler
answers with the metrics of the worker that serves the request.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any, Callable, Iterator

class MetricFamily:
    """A counter or gauge with labels; a sample per distinct label values."""

    def __init__(self, name: str, help: str, kind: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.help = help
        self.kind = kind
        self.labels = labels
        self.samples: dict[tuple[str, ...], float] = {}

    def inc(self, *values: str, amount: float = 1.0) -> None:
        self.samples[values] = self.samples.get(values, 0.0) + amount

    def add(self, values: tuple[str, ...], amount: float) -> None:
        """`inc` for a label tuple made once (the per-request path)."""
        samples = self.samples
        samples[values] = samples.get(values, 0.0) + amount

    def dec(self, *values: str) -> None:
        self.inc(*values, amount=-1.0)

    def set(self, value: float, *values: str) -> None:
        self.samples[values] = float(value)


class MetricsRegistry:
    """The metrics of this process, rendered for Prometheus."""

    def __init__(self) -> None:
        self.families: dict[str, MetricFamily] = {}
        self.collectors: list[Callable[[], Iterator[MetricFamily]]] = []

    def counter(self, name: str, help: str, labels: tuple[str, ...] = ()) -> MetricFamily:
        return self._add(MetricFamily(name, help, "counter", labels))

    def gauge(self, name: str, help: str, labels: tuple[str, ...] = ()) -> MetricFamily:
        return self._add(MetricFamily(name, help, "gauge", labels))

    def _add(self, family: MetricFamily) -> MetricFamily:
        return self.families.setdefault(family.name, family)

    def all(self) -> list[MetricFamily]:
        return [*self.families.values(), *(f for collect in self.collectors for f in collect())]

    def expose(self, openmetrics: bool = False) -> str:
        return render(self.all(), openmetrics)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every family as JSON, for `merge` in another process."""
        return snapshot(self.all())


def snapshot(families: list[MetricFamily]) -> list[dict[str, Any]]:
    return [{"name": f.name, "help": f.help, "kind": f.kind, "labels": f.labels,
             "samples": [[values, value] for values, value in f.samples.items()]} for f in families]


def counters(snapshot: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The counters of a snapshot (what stays counted after its process is gone)."""
    return [family for family in snapshot if family["kind"] == "counter"]


def merge(snapshots: list[list[dict[str, Any]]]) -> list[MetricFamily]:
    """The families of several processes as one server's: samples with the same labels
    add up (requests, memory, CPU time, open files), but for the start time, the earliest."""
    merged: dict[str, MetricFamily] = {}
    for snapshot in snapshots:
        for item in snapshot:
            family = merged.get(item["name"])
            if family is None:
                family = merged[item["name"]] = MetricFamily(item["name"], item["help"], item["kind"],
                                                             tuple(item["labels"]))
            for values, value in item["samples"]:
                key = tuple(values)
                seen = family.samples.get(key)
                if seen is None:
                    family.samples[key] = float(value)
                elif family.name == "process_start_time_seconds":
                    family.samples[key] = min(seen, float(value))
                else:
                    family.samples[key] = seen + float(value)
    return list(merged.values())


def render(families: list[MetricFamily], openmetrics: bool = False) -> str:
    lines: list[str] = []
    for family in sorted(families, key=lambda f: f.name):
        if family.samples:
            lines.extend(_family_lines(family, openmetrics))
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _family_lines(family: MetricFamily, openmetrics: bool) -> Iterator[str]:
    name = family.name
    if openmetrics:
        name = name.removesuffix("_total") if family.kind == "counter" else name
        yield f"# HELP {name} {_escape(family.help, quotes=True)}"
        yield f"# TYPE {name} {family.kind}"
    else:
        yield f"# HELP {name} {_escape(family.help, quotes=False)}"
        yield f"# TYPE {name} {family.kind}"
    for values, value in sorted(family.samples.items()):
        labels = ",".join(f'{k}="{_escape(v, quotes=True)}"' for k, v in sorted(zip(family.labels, values)))
        number = repr(float(value)) if openmetrics else _text_number(value)
        yield f"{family.name}{{{labels}}} {number}" if labels else f"{family.name} {number}"


def _escape(text: str, quotes: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quotes else text


def _text_number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _process_metrics() -> Iterator[MetricFamily]:
    start = MetricFamily("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", ())
    start.set(_STARTED)
    yield start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = MetricFamily("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", ())
    cpu.set(usage.ru_utime + usage.ru_stime)
    yield cpu
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = statm.read().split()
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        return  # not Linux: only the portable metrics
    page = os.sysconf("SC_PAGE_SIZE")
    for name, help, value in (
        ("process_resident_memory_bytes", "Resident memory size in bytes.", int(pages[1]) * page),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", int(pages[0]) * page),
        ("process_open_fds", "Number of open file descriptors.", fds),
    ):
        family = MetricFamily(name, help, "gauge", ())
        family.set(value)
        yield family


_STARTED = time.time()
REGISTRY = MetricsRegistry()
REGISTRY.collectors.append(_process_metrics)
HTTP_LABELS = ("server", "handler")
REQUESTS_TOTAL = REGISTRY.counter("caddy_http_requests_total", "Counter of HTTP(S) requests made.", HTTP_LABELS)
REQUEST_ERRORS_TOTAL = REGISTRY.counter(
    "caddy_http_request_errors_total", "Number of requests resulting in middleware errors.", HTTP_LABELS)
REQUESTS_IN_FLIGHT = REGISTRY.gauge(
    "caddy_http_requests_in_flight", "Number of requests currently handled by this server.", HTTP_LABELS)
