"""`metrics` (Prometheus exposition) and `tracing` (trace-context propagation) at run time."""

from __future__ import annotations

import gzip
import re

import httpx
import pytest

from rws.handlers.metrics import parse_traceparent, wants_openmetrics
from rws.observability.metrics import REGISTRY, REQUESTS_TOTAL, MetricsRegistry

from .conftest import Seen, build, request, run

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? \S+$')


def test_the_text_format_has_help_type_and_samples() -> None:
    REQUESTS_TOTAL.inc("srv-test", "static_response")
    response = run(build({"handler": "metrics"}), request())
    text = response.body.decode() if isinstance(response.body, bytes) else ""
    assert response.headers.get("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE caddy_http_requests_total counter\n" in text
    assert 'caddy_http_requests_total{handler="static_response",server="srv-test"} ' in text
    assert "# TYPE process_start_time_seconds gauge\n" in text
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.match(line), line


def test_openmetrics_when_the_scraper_prefers_it() -> None:
    accept = "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    response = run(build({"handler": "metrics"}), request(Accept=accept))
    text = response.body.decode() if isinstance(response.body, bytes) else ""
    assert response.headers.get("Content-Type") == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert text.endswith("# EOF\n") and "# TYPE process_cpu_seconds counter\n" in text


def test_disable_openmetrics_always_answers_text() -> None:
    response = run(build({"handler": "metrics", "disable_openmetrics": True}),
                   request(Accept="application/openmetrics-text"))
    assert response.headers.get("Content-Type", "").startswith("text/plain")


@pytest.mark.parametrize(("accept", "expected"), [
    (None, False),
    ("text/plain", False),
    ("application/openmetrics-text", True),
    ("text/plain;q=0.9, application/openmetrics-text", True),
    ("application/openmetrics-text;version=2.0.0", False),
    ("application/openmetrics-text;q=0", False),
])
def test_format_negotiation(accept: str | None, expected: bool) -> None:
    assert wants_openmetrics(accept) is expected


def test_gzip_when_accepted() -> None:
    response = run(build({"handler": "metrics"}), request(Accept_Encoding="gzip, br"))
    assert response.headers.get("Content-Encoding") == "gzip" and isinstance(response.body, bytes)
    assert b"# TYPE" in gzip.decompress(response.body)


def test_the_handler_answers_without_calling_next() -> None:
    seen = Seen()
    assert run(build({"handler": "metrics"}), request(), seen).status == 200 and seen.request is None


def test_label_values_and_help_are_escaped() -> None:
    registry = MetricsRegistry()
    registry.counter("x_total", "help with \\ and\nnewline", ("l",)).inc('a"b\\c\nd')
    assert registry.expose().splitlines() == [
        "# HELP x_total help with \\\\ and\\nnewline", "# TYPE x_total counter", 'x_total{l="a\\"b\\\\c\\nd"} 1']


def test_metrics_over_a_socket(serve) -> None:
    with serve(":80\nmetrics /metrics\nrespond /other ok\n") as server:
        response = httpx.get(server.url("/metrics"))
    assert response.status_code == 200 and "process_cpu_seconds_total" in response.text
    assert REGISTRY.families  # the exporting registry is this process's


# --- tracing -----------------------------------------------------------------------------

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def traced(**headers: str) -> tuple[object, dict[str, object]]:
    seen = Seen()
    req = request(**headers)
    run(build({"handler": "tracing", "span": "op"}), req, seen)
    assert seen.request is not None
    return seen.request.headers.get("Traceparent"), req.vars


def test_an_incoming_trace_is_continued_with_a_new_span() -> None:
    header, variables = traced(traceparent=PARENT)
    assert isinstance(header, str)
    version, trace_id, span_id, flags = header.split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert span_id != "00f067aa0ba902b7" and re.fullmatch("[0-9a-f]{16}", span_id)
    assert variables == {"trace_id": trace_id, "span_id": span_id}


def test_an_unsampled_parent_stays_unsampled() -> None:
    header, _ = traced(traceparent=PARENT[:-2] + "00")
    assert isinstance(header, str) and header.endswith("-00")


def test_without_a_valid_parent_a_sampled_trace_starts() -> None:
    header, variables = traced(traceparent="00-" + "0" * 32 + "-00f067aa0ba902b7-01")
    assert isinstance(header, str) and re.fullmatch("00-[0-9a-f]{32}-[0-9a-f]{16}-01", header)
    assert variables["trace_id"] != "0" * 32


@pytest.mark.parametrize(("header", "valid"), [
    (PARENT, True),
    (PARENT.upper(), False),
    ("ff" + PARENT[2:], False),
    (PARENT + "-extra", False),
    ("01" + PARENT[2:] + "-extra", True),
    (PARENT[:-2] + "03", False),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", False),
    ("garbage", False),
])
def test_traceparent_validation(header: str, valid: bool) -> None:
    assert (parse_traceparent(header) is not None) is valid


def test_tracing_sets_placeholders_over_a_socket(serve) -> None:
    with serve(":80\ntracing\nrespond \"{vars.trace_id}\"\n") as server:
        response = httpx.get(server.url("/"), headers={"traceparent": PARENT})
    assert response.text == "4bf92f3577b34da6a3ce929d0e0e4736"
