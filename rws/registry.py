"""Every built-in module: its ID and where its declaration lives.

A declaration is a `ModuleSpec` value in the named module. It says what JSON the module
takes (`config`, an annotation for `rws.config.decode`), which Rwsfile directives and
global options it owns, and (for later use) where its runtime builder lives. Reading
this table tells you what the build contains; `rws list-modules` prints it without
importing anything.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    id: str
    config: Any
    directives: dict[str, Any] = field(default_factory=dict)  # name -> rws.rwsfile.directives.Directive
    options: dict[str, Callable[..., Any]] = field(default_factory=dict)  # global option name -> parser
    rwsfile: Callable[..., Any] | None = None  # parser of the module's own Rwsfile form (matchers, writers, ...)
    runtime: str | None = None  # "package.module:builder", imported only when serving


# module ID -> "import.path:ATTRIBUTE" of its ModuleSpec
MODULES: dict[str, str] = {
    # apps
    "http": "rws.http.config:HTTP_APP",
    "tls": "rws.tls.config:TLS_APP",
    "pki": "rws.tls.config:PKI_APP",
    # storage
    "caddy.storage.file_system": "rws.config.model:FILE_SYSTEM_STORAGE",
    # logging
    "caddy.logging.writers.stdout": "rws.observability.log_config:STDOUT_WRITER",
    "caddy.logging.writers.stderr": "rws.observability.log_config:STDERR_WRITER",
    "caddy.logging.writers.discard": "rws.observability.log_config:DISCARD_WRITER",
    "caddy.logging.writers.file": "rws.observability.log_config:FILE_WRITER",
    "caddy.logging.writers.net": "rws.observability.log_config:NET_WRITER",
    "caddy.logging.encoders.json": "rws.observability.log_config:JSON_ENCODER",
    "caddy.logging.encoders.console": "rws.observability.log_config:CONSOLE_ENCODER",
    "caddy.logging.encoders.filter": "rws.observability.log_filter_config:FILTER_ENCODER",
    # listener wrappers and IP sources
    "caddy.listeners.http_redirect": "rws.http.config:HTTP_REDIRECT_WRAPPER",
    "caddy.listeners.tls": "rws.http.config:TLS_WRAPPER",
    "caddy.listeners.proxy_protocol": "rws.http.config:PROXY_PROTOCOL_WRAPPER",
    "http.ip_sources.static": "rws.http.config:STATIC_IP_SOURCE",
    # request matchers
    "http.matchers.path": "rws.http.matchers.path:PATH",
    "http.matchers.path_regexp": "rws.http.matchers.path:PATH_REGEXP",
    "http.matchers.host": "rws.http.matchers.host:HOST",
    "http.matchers.method": "rws.http.matchers.request:METHOD",
    "http.matchers.protocol": "rws.http.matchers.request:PROTOCOL",
    "http.matchers.tls": "rws.http.matchers.request:TLS",
    "http.matchers.header": "rws.http.matchers.header:HEADER",
    "http.matchers.header_regexp": "rws.http.matchers.header:HEADER_REGEXP",
    "http.matchers.query": "rws.http.matchers.query:QUERY",
    "http.matchers.remote_ip": "rws.http.matchers.ip:REMOTE_IP",
    "http.matchers.client_ip": "rws.http.matchers.ip:CLIENT_IP",
    "http.matchers.not": "rws.http.matchers.logic:NOT",
    "http.matchers.expression": "rws.http.matchers.logic:EXPRESSION",
    "http.matchers.file": "rws.http.matchers.file:FILE",
    "http.matchers.vars": "rws.http.matchers.vars:VARS",
    "http.matchers.vars_regexp": "rws.http.matchers.vars:VARS_REGEXP",
    # handlers
    "http.handlers.subroute": "rws.handlers.subroute:SUBROUTE",
    "http.handlers.invoke": "rws.handlers.subroute:INVOKE",
    "http.handlers.static_response": "rws.handlers.static_response:STATIC_RESPONSE",
    "http.handlers.error": "rws.handlers.error:ERROR",
    "http.handlers.file_server": "rws.handlers.file_server:FILE_SERVER",
    "http.handlers.headers": "rws.handlers.headers:HEADERS",
    "http.handlers.rewrite": "rws.handlers.rewrite:REWRITE",
    "http.handlers.encode": "rws.handlers.encode:ENCODE",
    "http.handlers.authentication": "rws.handlers.authentication:AUTHENTICATION",
    "http.handlers.vars": "rws.handlers.vars:VARS",
    "http.handlers.map": "rws.handlers.map:MAP",
    "http.handlers.request_body": "rws.handlers.request_body:REQUEST_BODY",
    "http.handlers.metrics": "rws.handlers.metrics:METRICS",
    "http.handlers.tracing": "rws.handlers.metrics:TRACING",
    "http.handlers.reverse_proxy": "rws.handlers.reverse_proxy.config:REVERSE_PROXY",
    "http.handlers.copy_response": "rws.handlers.reverse_proxy.config:COPY_RESPONSE",
    "http.handlers.copy_response_headers": "rws.handlers.reverse_proxy.config:COPY_RESPONSE_HEADERS",
    # handler sub-modules
    "http.encoders.gzip": "rws.handlers.encode:GZIP",
    "http.encoders.zstd": "rws.handlers.encode:ZSTD",
    "http.encoders.br": "rws.handlers.encode:BROTLI",
    "http.precompressed.gzip": "rws.handlers.file_server:PRECOMPRESSED_GZIP",
    "http.precompressed.zstd": "rws.handlers.file_server:PRECOMPRESSED_ZSTD",
    "http.precompressed.br": "rws.handlers.file_server:PRECOMPRESSED_BR",
    "http.authentication.providers.http_basic": "rws.handlers.authentication:HTTP_BASIC",
    "http.authentication.hashes.bcrypt": "rws.handlers.authentication:BCRYPT",
    "http.reverse_proxy.transport.http": "rws.handlers.reverse_proxy.config:HTTP_TRANSPORT",
    "http.reverse_proxy.selection_policies.random": "rws.handlers.reverse_proxy.config:RANDOM",
    "http.reverse_proxy.selection_policies.random_choose": "rws.handlers.reverse_proxy.config:RANDOM_CHOOSE",
    "http.reverse_proxy.selection_policies.least_conn": "rws.handlers.reverse_proxy.config:LEAST_CONN",
    "http.reverse_proxy.selection_policies.round_robin": "rws.handlers.reverse_proxy.config:ROUND_ROBIN",
    "http.reverse_proxy.selection_policies.weighted_round_robin": "rws.handlers.reverse_proxy.config:WEIGHTED_ROUND_ROBIN",
    "http.reverse_proxy.selection_policies.first": "rws.handlers.reverse_proxy.config:FIRST",
    "http.reverse_proxy.selection_policies.ip_hash": "rws.handlers.reverse_proxy.config:IP_HASH",
    "http.reverse_proxy.selection_policies.client_ip_hash": "rws.handlers.reverse_proxy.config:CLIENT_IP_HASH",
    "http.reverse_proxy.selection_policies.uri_hash": "rws.handlers.reverse_proxy.config:URI_HASH",
    "http.reverse_proxy.selection_policies.query": "rws.handlers.reverse_proxy.config:QUERY_HASH",
    "http.reverse_proxy.selection_policies.header": "rws.handlers.reverse_proxy.config:HEADER_HASH",
    "http.reverse_proxy.selection_policies.cookie": "rws.handlers.reverse_proxy.config:COOKIE_HASH",
    "http.reverse_proxy.upstreams.a": "rws.handlers.reverse_proxy.config:A_UPSTREAMS",
    "http.reverse_proxy.upstreams.srv": "rws.handlers.reverse_proxy.config:SRV_UPSTREAMS",
    "http.reverse_proxy.upstreams.multi": "rws.handlers.reverse_proxy.config:MULTI_UPSTREAMS",
    "http.reverse_proxy.upstreams.file": "rws.handlers.reverse_proxy.config:FILE_UPSTREAMS",
    # outbound proxies (the reverse proxy's http transport)
    "caddy.network_proxy.url": "rws.handlers.reverse_proxy.config:NETWORK_PROXY_URL",
    "caddy.network_proxy.none": "rws.handlers.reverse_proxy.config:NETWORK_PROXY_NONE",
    # TLS
    "tls.issuance.acme": "rws.tls.config:ACME_ISSUER",
    "tls.issuance.internal": "rws.tls.config:INTERNAL_ISSUER",
    "tls.issuance.zerossl": "rws.tls.config:ZEROSSL_ISSUER",
    "tls.certificates.load_files": "rws.tls.config:LOAD_FILES",
    "tls.certificates.load_folders": "rws.tls.config:LOAD_FOLDERS",
    "tls.certificates.load_pem": "rws.tls.config:LOAD_PEM",
    "tls.certificates.load_storage": "rws.tls.config:LOAD_STORAGE",
    "tls.certificates.automate": "rws.tls.config:AUTOMATE",
    "tls.handshake_match.sni": "rws.tls.config:MATCH_SNI",
    "tls.handshake_match.remote_ip": "rws.tls.config:MATCH_REMOTE_IP",
    "tls.handshake_match.local_ip": "rws.tls.config:MATCH_LOCAL_IP",
    "tls.permission.http": "rws.tls.config:PERMISSION_HTTP",
    "tls.get_certificate.http": "rws.tls.config:GET_CERTIFICATE_HTTP",
    "tls.ca_pool.source.file": "rws.tls.config:CA_POOL_FILE",
    "tls.ca_pool.source.inline": "rws.tls.config:CA_POOL_INLINE",
    "tls.stek.standard": "rws.tls.config:STEK_STANDARD",
}


# Rwsfile directives and global options that configure no single module (the access
# `log`, `bind`, the core options), declared the same way: "import.path:ATTRIBUTE".
SYNTAX: tuple[str, ...] = (
    "rws.rwsfile.options:CORE_SYNTAX",
    "rws.observability.log_config:LOG_DIRECTIVES",
)


_loaded: dict[str, ModuleSpec] = {}


def find(module_id: str) -> ModuleSpec | None:
    """The declaration of a module, imported on first use; None if rws has no such module."""
    spec = _loaded.get(module_id)
    if spec is not None:
        return spec
    target = MODULES.get(module_id)
    if target is None:
        return None
    path, _, attr = target.partition(":")
    declared: ModuleSpec = getattr(importlib.import_module(path), attr)
    if declared.id != module_id:
        raise RuntimeError(f"registry: {target} declares {declared.id!r}, expected {module_id!r}")
    _loaded[module_id] = declared
    return declared


def names_in(namespace: str) -> list[str]:
    """The short names of the modules directly in a namespace ("http.handlers" -> ["file_server", ...])."""
    prefix = namespace + "." if namespace else ""
    out = []
    for module_id in MODULES:
        if module_id.startswith(prefix) and "." not in module_id[len(prefix):]:
            out.append(module_id[len(prefix):])
    return sorted(out)


def all_specs() -> list[ModuleSpec]:
    out = []
    for module_id in MODULES:
        spec = find(module_id)
        assert spec is not None
        out.append(spec)
    return out


def syntax_specs() -> list[ModuleSpec]:
    """Every declaration that may own Rwsfile directives or global options."""
    out = all_specs()
    for target in SYNTAX:
        path, _, attr = target.partition(":")
        out.append(getattr(importlib.import_module(path), attr))
    return out
