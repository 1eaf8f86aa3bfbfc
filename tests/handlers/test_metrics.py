"""`metrics` and `tracing`: the metrics and tracing handlers."""

from __future__ import annotations

import pytest

from rws.config.decode import decode
from rws.errors import ConfigError
from rws.handlers.metrics import MetricsConfig, TracingConfig


@pytest.mark.parametrize("text", [
    ":80\nmetrics /metrics\n",
    ":80\nmetrics {\n\tdisable_openmetrics\n}\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_tracing_always_writes_the_span(site_handlers):
    [(handler, match)] = site_handlers(":80\ntracing /api/*\n")
    assert handler == {"handler": "tracing", "span": ""}
    assert match == [[{"path": ["/api/*"]}]]


def test_tracing_span_and_attributes(site_handlers):
    [(handler, _)] = site_handlers(":80\ntracing {\n\tspan api\n\tspan_attributes {\n\t\tenv prod\n\t\thost {host}\n\t}\n}\n")
    assert handler == {"handler": "tracing", "span": "api",
                       "span_attributes": {"env": "prod", "host": "{http.request.host}"}}


@pytest.mark.parametrize("text, line, message", [
    (":80\nmetrics /m x\n", 2, "wrong argument count or unexpected line ending after 'x'"),
    (":80\nmetrics {\n\tdisable_open_metrics\n}\n", 3, "unrecognized subdirective 'disable_open_metrics' (did you mean 'disable_openmetrics'?)"),
    (":80\nmetrics {\n\tdisable_openmetrics yes\n}\n", 3, "wrong argument count"),
    (":80\ntracing /x y\n", 2, "wrong argument count"),
    (":80\ntracing {\n\tspan\n}\n", 3, "wrong argument count"),
    (":80\ntracing {\n\tspan a b\n}\n", 3, "wrong argument count"),
    (":80\ntracing {\n\tspan_attributes {\n\t\tenv\n\t}\n}\n", 4, "wrong argument count"),
    (":80\ntracing {\n\tspam x\n}\n", 3, "unrecognized subdirective 'spam' (did you mean 'span'?)"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


def test_configs_decode():
    assert decode(MetricsConfig, {"disable_openmetrics": True}, "h").disable_openmetrics
    assert decode(TracingConfig, {"span": "s", "span_attributes": {"a": "b"}}, "h").span_attributes == {"a": "b"}


@pytest.mark.parametrize("cls, value, path", [
    (MetricsConfig, {"disable_openmetrics": "yes"}, "h.disable_openmetrics"),
    (TracingConfig, {"span_attributes": {"a": 1}}, "h.span_attributes.a"),
    (TracingConfig, {"name": "x"}, "h.name"),
])
def test_config_rejects_bad_values(cls, value, path):
    with pytest.raises(ConfigError) as info:
        decode(cls, value, "h")
    assert info.value.path == path
