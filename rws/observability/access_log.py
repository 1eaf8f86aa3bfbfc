"""Access logs: one record per request, with Caddy's fields, to the loggers the server's
`logs` config chooses.

The connection layer calls, once per finished request (and only when the server has a
`logs` config at all, so servers without access logs pay nothing):

    access_logger.log(request, status, resp_headers, size, bytes_read, duration)

with the original `Request`, the status and header fields that were sent, the number of
body bytes written and read, and the seconds the request took. The record goes to the
logger `http.log.access` (or `http.log.access.<name>`, by the request's host through
`logger_names`, else `default_logger_name`; the `access_logger_names` variable set by
`log_name` overrides both), at ERROR level for statuses from 500 up and INFO otherwise,
with message `handled request` (`NOP` when no route handled the request and the
`unhandled` variable is set). Requests are skipped when the `log_skip` variable is true,
when their host is in `skip_hosts`, or when `skip_unmapped_hosts` is on and no
`logger_names` entry matches. `Cookie`, `Set-Cookie`, `Authorization` and
`Proxy-Authorization` values are logged as `REDACTED` unless `should_log_credentials`.

Handlers add fields of their own (`log_append`, the request's UUID, trace IDs) with
`add_field(request, key, value)`; they follow the standard fields in the record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Iterable

from rws.http.message import Headers, Request, canonical_header_key
from rws.http.placeholders import lookup, to_string
from rws.observability.logs import ERROR, INFO, LOGS_KEY, Duration, Logs, current

ACCESS_LOGGER = "http.log.access"
LOG_SKIP_VAR = "log_skip"
LOGGER_NAMES_VAR = "access_logger_names"
UNHANDLED_VAR = "unhandled"
EXTRA_FIELDS = "http.log.extra_fields"  # request.values key: dict of extra fields
CREDENTIALS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization"})
_REQUEST_SKIPPED = frozenset({"host", "transfer-encoding"})  # Go moves these out of the header map


def add_field(request: Request, key: str, value: Any) -> None:
    """Add (or replace) a field of this request's access log record."""
    extra = request.values.get(EXTRA_FIELDS)
    if not isinstance(extra, dict):
        extra = request.values[EXTRA_FIELDS] = {}
    extra[key] = value


class AccessLogger:
    """Built once per server from its `logs` config (a `ServerLogConfig`)."""

    def __init__(self, config: Any, ctx: Any = None, *, logs: Logs | None = None) -> None:
        if logs is None and ctx is not None:
            logs = ctx.shared.get(LOGS_KEY)
        self._logs = logs  # None: whatever logs the process has installed
        self.default_names = (_logger_name(config.default_logger_name),)
        self.logger_names: dict[str, tuple[str, ...]] = {
            host: tuple(_logger_name(n) for n in ((names,) if isinstance(names, str) else names))
            for host, names in (config.logger_names or {}).items()}
        self.skip_hosts = tuple(config.skip_hosts or ())
        self.skip_unmapped_hosts = bool(config.skip_unmapped_hosts)
        self.log_credentials = bool(config.should_log_credentials)
        self._decisions: dict[str, bool] = {}

    @property
    def logs(self) -> Logs:
        return self._logs if self._logs is not None else current()

    def log(self, request: Request, status: int, resp_headers: Headers, size: int, bytes_read: int,
            duration: float) -> None:
        """Write the access log record of one finished request (see the module docstring)."""
        variables = request.vars
        if variables.get(LOG_SKIP_VAR) is True:
            return
        host = host_without_port(request.hostport)
        if not self.should_log(host):
            return
        logs = self.logs
        unhandled = variables.get(UNHANDLED_VAR) is True
        if unhandled:
            status = size = 0  # nothing was written by a handler; Caddy records status 0
        level = ERROR if status >= 500 else INFO
        msg = "NOP" if unhandled else "handled request"
        fields: dict[str, Any] | None = None
        now = time.time()
        for name in self.loggers_for(request, host):
            if not logs.enabled(name, level):
                continue
            if fields is None:
                fields = self.fields(request, status, resp_headers, size, bytes_read, duration)
            logs.log(name, level, msg, fields, ts=now)

    def should_log(self, host: str) -> bool:
        """Caddy's shouldLogRequest for a host (without port)."""
        decision = self._decisions.get(host)
        if decision is None:
            if any(match_wildcard(host, name) for name in self.logger_names):
                decision = True
            elif any(match_wildcard(host, skipped) for skipped in self.skip_hosts):
                decision = False
            else:
                decision = not self.skip_unmapped_hosts
            if len(self._decisions) > 4096:
                self._decisions.clear()
            self._decisions[host] = decision
        return decision

    def loggers_for(self, request: Request, host: str) -> tuple[str, ...]:
        names = request.vars.get(LOGGER_NAMES_VAR)
        if isinstance(names, (list, tuple)):
            return tuple(_logger_name(n) for n in names if isinstance(n, str))
        found = self.logger_names.get(host)
        if found is not None:
            return found
        labels = host.split(".")
        for i, label in enumerate(labels):
            if label:
                labels[i] = "*"
                found = self.logger_names.get(".".join(labels))
                if found is not None:
                    return found
        return self.default_names

    def fields(self, request: Request, status: int, resp_headers: Headers, size: int, bytes_read: int,
               duration: float) -> dict[str, Any]:
        user_id, found = lookup(request, "http.auth.user.id")
        fields: dict[str, Any] = {
            "request": request_fields(request, self.log_credentials),
            "bytes_read": bytes_read,
            "user_id": to_string(user_id) if found else "",
            "duration": Duration(duration),
            "size": size,
            "status": status,
            "resp_headers": header_fields(resp_headers, self.log_credentials),
        }
        extra = request.values.get(EXTRA_FIELDS)
        if isinstance(extra, dict):
            fields.update(extra)
        return fields


def _logger_name(name: str) -> str:
    return f"{ACCESS_LOGGER}.{name}" if name else ACCESS_LOGGER


def request_fields(request: Request, log_credentials: bool) -> dict[str, Any]:
    """The `request` object of an access log record, from the request as it arrived."""
    fields: dict[str, Any] = {
        "remote_ip": request.remote_ip,
        "remote_port": str(request.remote_port) if request.remote_port else "",
    }
    client_ip = request.vars.get("client_ip")
    if isinstance(client_ip, str):
        fields["client_ip"] = client_ip
    fields["proto"] = _proto(request.version)
    fields["method"] = request.orig_method
    fields["host"] = request.hostport
    fields["uri"] = request.orig_target
    fields["headers"] = header_fields(request.headers, log_credentials, _REQUEST_SKIPPED)
    if request.chunked:
        fields["transfer_encoding"] = ["chunked"]
    tls = tls_fields(request.tls)
    if tls is not None:
        fields["tls"] = tls
    return fields


def _proto(version: str) -> str:
    """Go's spelling: HTTP/2.0 and HTTP/3.0."""
    return version + ".0" if version in ("HTTP/2", "HTTP/3") else version


_canonical: dict[str, str] = {}


def header_fields(headers: Iterable[tuple[str, str]], log_credentials: bool,
                  skipped: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Header fields as Go's header map: canonical names, each with its list of values."""
    out: dict[str, list[str]] = {}
    for name, value in headers:
        key = _canonical.get(name)
        if key is None:
            if len(_canonical) > 4096:
                _canonical.clear()
            key = _canonical[name] = canonical_header_key(name)
        if key.startswith(":") or key.lower() in skipped:
            continue
        values = out.get(key)
        if values is None:
            out[key] = [value]
        else:
            values.append(value)
    if not log_credentials:
        for key in out:
            if key.lower() in CREDENTIALS:
                out[key] = ["REDACTED"]
    return out


def host_without_port(hostport: str) -> str:
    """Go's net.SplitHostPort host, or the whole text where that fails."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end > 0 and hostport[end + 1:end + 2] == ":":
            return hostport[1:end]
        return hostport
    host, sep, _ = hostport.rpartition(":")
    return host if sep and ":" not in host else hostport


def match_wildcard(subject: str, wildcard: str) -> bool:
    """certmagic.MatchWildcard: equal names, or `*` labels replacing labels from the left."""
    subject, wildcard = subject.lower(), wildcard.lower()
    if subject == wildcard:
        return True
    if "*" not in wildcard:
        return False
    labels = subject.split(".")
    for i, label in enumerate(labels):
        if label:
            labels[i] = "*"
            if ".".join(labels) == wildcard:
                return True
    return False


# --- TLS -----------------------------------------------------------------------------------

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_CIPHER_SUITES = {  # OpenSSL names -> IANA numbers, as Go logs them
    "TLS_AES_128_GCM_SHA256": 0x1301, "TLS_AES_256_GCM_SHA384": 0x1302, "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B, "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C, "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9, "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
}


def tls_fields(tls: Any) -> dict[str, Any] | None:
    """The `tls` object: from a mapping with Caddy's keys (resumed, version, cipher_suite,
    proto, server_name, ...), or read off an `ssl.SSLObject`; None for plain HTTP."""
    if tls is None:
        return None
    if isinstance(tls, Mapping):
        return dict(tls)
    version = getattr(tls, "version", None)
    if not callable(version):
        return None
    cipher = tls.cipher() if callable(getattr(tls, "cipher", None)) else None
    return {
        "resumed": bool(getattr(tls, "session_reused", False)),
        "version": _TLS_VERSIONS.get(version() or "", 0),
        "cipher_suite": _CIPHER_SUITES.get(cipher[0], 0) if cipher else 0,
        "proto": tls.selected_alpn_protocol() or "" if callable(getattr(tls, "selected_alpn_protocol", None)) else "",
        "server_name": getattr(tls, "sni", "") or "",
        "ech": False,
    }
