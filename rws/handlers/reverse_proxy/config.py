"""Config of the `reverse_proxy` handler and of the modules it is built from.

The handler (`http.handlers.reverse_proxy`) names its upstreams (static `upstreams`, or a
`dynamic_upstreams` source), how to choose among them (`load_balancing`), how to check
them (`health_checks`), how to talk to them (`transport`) and what to change on the way
(`headers`, `rewrite`). `handle_response` runs routes instead of copying an upstream
response that matches; inside those routes `copy_response` and `copy_response_headers`
copy the held response after all.

This module holds the handler's classes and the `ModuleSpec` of every module of the
family; the policies, transports and upstream sources have their classes in
`selection_config.py`, `transport_config.py` and `upstreams_config.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from rws.config.decode import Duration, Module, ModuleMap, WeakString
from rws.errors import ConfigError
from rws.handlers.headers import HeadersConfig, ResponseMatcherConfig
from rws.handlers.reverse_proxy import directive, module_directives, transport_directive
from rws.handlers.reverse_proxy.selection_config import (
    SELECTION_POLICY,
    CookieHashConfig,
    HeaderHashConfig,
    NoOptionsPolicyConfig,
    QueryHashConfig,
    RandomChooseConfig,
    WeightedRoundRobinConfig,
)
from rws.handlers.reverse_proxy.transport_config import (
    HttpTransportConfig,
    NetworkProxyNoneConfig,
    NetworkProxyUrlConfig,
)
from rws.handlers.reverse_proxy.upstreams_config import (
    UPSTREAM_SOURCE,
    AUpstreamsConfig,
    FileUpstreamsConfig,
    MultiUpstreamsConfig,
    SrvUpstreamsConfig,
)
from rws.handlers.rewrite import RewriteConfig
from rws.http.regexp import regexp_problem
from rws.handlers.static_response import status_code_problem
from rws.http.config import RouteConfig
from rws.http.matchers.ip import range_problem
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive

TRANSPORT = Module("http.reverse_proxy.transport", inline_key="protocol")
CIRCUIT_BREAKER = Module("http.reverse_proxy.circuit_breakers", inline_key="type")


# --- upstreams, load balancing, health checks ----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    dial: str = ""  # a network address; may hold placeholders
    max_requests: int = 0  # 0 means no limit


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadBalancingConfig:
    selection_policy: Annotated[Any, SELECTION_POLICY] = None  # None means random
    retries: int = 0
    try_duration: Duration = 0.0
    try_interval: Duration = 0.0  # 0 means 250ms when try_duration is set
    retry_match: tuple[Annotated[Any, ModuleMap("http.matchers")], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveHealthChecksConfig:
    path: str = ""  # deprecated: use uri
    uri: str = ""
    upstream: str = ""
    port: int = 0
    headers: dict[str, tuple[str, ...]] | None = None
    method: str = ""  # "" means GET
    body: str = ""
    follow_redirects: bool = False
    interval: Duration = 0.0  # 0 means 30s
    timeout: Duration = 0.0  # 0 means 5s
    passes: int = 0  # below 1 means 1
    fails: int = 0  # below 1 means 1
    max_size: int = 0
    expect_status: int = 0  # 0 means any 2xx; one digit means a class
    expect_body: str = ""

    def validate(self, path: str) -> None:
        if self.expect_body:
            problem = regexp_problem(self.expect_body)
            if problem:
                raise ConfigError(f"{path}.expect_body", problem)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{path}.port", f"port out of range: {self.port}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PassiveHealthChecksConfig:
    fail_duration: Duration = 0.0  # 0 disables passive checks
    max_fails: int = 0  # 0 means 1
    unhealthy_request_count: int = 0
    unhealthy_status: tuple[int, ...] = ()
    unhealthy_latency: Duration = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChecksConfig:
    active: ActiveHealthChecksConfig | None = None
    passive: PassiveHealthChecksConfig | None = None


# --- handling upstream responses -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHandlerConfig:
    """When `match` matches the upstream response: replace its status, or run `routes` instead."""

    match: ResponseMatcherConfig | None = None
    status_code: WeakString = ""
    routes: tuple[RouteConfig, ...] = ()

    def validate(self, path: str) -> None:
        if self.status_code:
            problem = status_code_problem(self.status_code)
            if problem:
                raise ConfigError(f"{path}.status_code", problem)


# --- the handler ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReverseProxyConfig:
    transport: Annotated[Any, TRANSPORT] = None  # None means the http transport with defaults
    circuit_breaker: Annotated[Any, CIRCUIT_BREAKER] = None
    load_balancing: LoadBalancingConfig | None = None
    health_checks: HealthChecksConfig | None = None
    upstreams: tuple[UpstreamConfig, ...] = ()
    dynamic_upstreams: Annotated[Any, UPSTREAM_SOURCE] = None
    flush_interval: Duration = 0.0  # negative: flush after every write
    trusted_proxies: tuple[str, ...] = ()
    headers: HeadersConfig | None = None
    request_buffers: int = 0  # bytes; -1 means unlimited
    response_buffers: int = 0  # bytes; -1 means unlimited
    stream_timeout: Duration = 0.0
    stream_buffer_size: int = 0  # -1 (`unlimited`) or 0 means the default
    stream_close_delay: Duration = 0.0
    rewrite: RewriteConfig | None = None
    handle_response: tuple[ResponseHandlerConfig, ...] = ()
    verbose_logs: bool = False

    def validate(self, path: str) -> None:
        for i, entry in enumerate(self.trusted_proxies):
            problem = range_problem(entry)
            if problem:
                raise ConfigError(f"{path}.trusted_proxies[{i}]", problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyResponseConfig:
    status_code: WeakString = ""

    def validate(self, path: str) -> None:
        if self.status_code:
            problem = status_code_problem(self.status_code)
            if problem:
                raise ConfigError(f"{path}.status_code", problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyResponseHeadersConfig:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        if self.include and self.exclude:
            raise ConfigError(path, "cannot define both 'exclude' and 'include' lists at the same time")


# --- module declarations -------------------------------------------------------------------

REVERSE_PROXY = ModuleSpec(
    id="http.handlers.reverse_proxy",
    config=ReverseProxyConfig,
    runtime="rws.handlers.reverse_proxy.handler:build_reverse_proxy",
    directives={
        "reverse_proxy": Directive(directive.parse_reverse_proxy),
        "forward_auth": Directive(directive.parse_forward_auth),
    },
)
COPY_RESPONSE = ModuleSpec(
    id="http.handlers.copy_response",
    config=CopyResponseConfig,
    runtime="rws.handlers.reverse_proxy.response_handling:build_copy_response",
    directives={"copy_response": Directive(directive.parse_copy_response)},
)
COPY_RESPONSE_HEADERS = ModuleSpec(
    id="http.handlers.copy_response_headers",
    config=CopyResponseHeadersConfig,
    runtime="rws.handlers.reverse_proxy.response_handling:build_copy_response_headers",
    directives={"copy_response_headers": Directive(directive.parse_copy_response_headers)},
)

HTTP_TRANSPORT = ModuleSpec(
    id="http.reverse_proxy.transport.http",
    config=HttpTransportConfig,
    rwsfile=transport_directive.parse_http_transport,
    runtime="rws.handlers.reverse_proxy.upstream_pool:build_http_transport",
)

_POLICY = "http.reverse_proxy.selection_policies."
RANDOM = ModuleSpec(
    id=_POLICY + "random", config=NoOptionsPolicyConfig, rwsfile=module_directives.parse_no_options,
    runtime="rws.handlers.reverse_proxy.selection:build_random",
)
RANDOM_CHOOSE = ModuleSpec(
    id=_POLICY + "random_choose", config=RandomChooseConfig, rwsfile=module_directives.parse_random_choose,
    runtime="rws.handlers.reverse_proxy.selection:build_random_choose",
)
LEAST_CONN = ModuleSpec(
    id=_POLICY + "least_conn", config=NoOptionsPolicyConfig, rwsfile=module_directives.parse_no_options,
    runtime="rws.handlers.reverse_proxy.selection:build_least_conn",
)
ROUND_ROBIN = ModuleSpec(
    id=_POLICY + "round_robin", config=NoOptionsPolicyConfig, rwsfile=module_directives.parse_no_options,
    runtime="rws.handlers.reverse_proxy.selection:build_round_robin",
)
WEIGHTED_ROUND_ROBIN = ModuleSpec(
    id=_POLICY + "weighted_round_robin", config=WeightedRoundRobinConfig, rwsfile=module_directives.parse_weighted_round_robin,
    runtime="rws.handlers.reverse_proxy.selection:build_weighted_round_robin",
)
FIRST = ModuleSpec(
    id=_POLICY + "first", config=NoOptionsPolicyConfig, rwsfile=module_directives.parse_no_options,
    runtime="rws.handlers.reverse_proxy.selection:build_first",
)
IP_HASH = ModuleSpec(
    id=_POLICY + "ip_hash", config=NoOptionsPolicyConfig, rwsfile=module_directives.parse_no_options,
    runtime="rws.handlers.reverse_proxy.selection:build_ip_hash",
)
CLIENT_IP_HASH = ModuleSpec(
    id=_POLICY + "client_ip_hash", config=NoOptionsPolicyConfig, rwsfile=module_directives.parse_no_options,
    runtime="rws.handlers.reverse_proxy.selection:build_client_ip_hash",
)
URI_HASH = ModuleSpec(
    id=_POLICY + "uri_hash", config=NoOptionsPolicyConfig, rwsfile=module_directives.parse_no_options,
    runtime="rws.handlers.reverse_proxy.selection:build_uri_hash",
)
QUERY_HASH = ModuleSpec(
    id=_POLICY + "query", config=QueryHashConfig, rwsfile=module_directives.parse_query_hash,
    runtime="rws.handlers.reverse_proxy.selection:build_query_hash",
)
HEADER_HASH = ModuleSpec(
    id=_POLICY + "header", config=HeaderHashConfig, rwsfile=module_directives.parse_header_hash,
    runtime="rws.handlers.reverse_proxy.selection:build_header_hash",
)
COOKIE_HASH = ModuleSpec(
    id=_POLICY + "cookie", config=CookieHashConfig, rwsfile=module_directives.parse_cookie_hash,
    runtime="rws.handlers.reverse_proxy.selection:build_cookie_hash",
)

_SOURCE = "http.reverse_proxy.upstreams."
A_UPSTREAMS = ModuleSpec(
    id=_SOURCE + "a", config=AUpstreamsConfig, rwsfile=module_directives.parse_a_upstreams,
    runtime="rws.handlers.reverse_proxy.dynamic:build_a",
)
SRV_UPSTREAMS = ModuleSpec(
    id=_SOURCE + "srv", config=SrvUpstreamsConfig, rwsfile=module_directives.parse_srv_upstreams,
    runtime="rws.handlers.reverse_proxy.dynamic:build_srv",
)
FILE_UPSTREAMS = ModuleSpec(
    id=_SOURCE + "file",
    config=FileUpstreamsConfig,
    rwsfile=module_directives.parse_file_upstreams,
    runtime="rws.handlers.reverse_proxy.dynamic:build_file",
)
MULTI_UPSTREAMS = ModuleSpec(
    id=_SOURCE + "multi", config=MultiUpstreamsConfig, rwsfile=module_directives.parse_multi_upstreams,
    runtime="rws.handlers.reverse_proxy.dynamic:build_multi",
)

# Not yet in rws.registry.MODULES (the ACME issuer uses this namespace too).
NETWORK_PROXY_URL = ModuleSpec(id="caddy.network_proxy.url", config=NetworkProxyUrlConfig)
NETWORK_PROXY_NONE = ModuleSpec(id="caddy.network_proxy.none", config=NetworkProxyNoneConfig)
