"""Config of the `http` transport (`http.reverse_proxy.transport.http`) and its parts.

The transport decides how rws talks to upstreams: dial and TLS settings, keep-alive
pooling, HTTP versions (`1.1` and `2` by default; `h2c` for cleartext HTTP/2 and `3` for
HTTP/3, which must then be the only version), an outbound proxy (`network_proxy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from rws.config.decode import Duration, Module
from rws.errors import ConfigError
from rws.handlers.reverse_proxy.dial_addresses import AddressError, parse_network_address
from rws.handlers.reverse_proxy.upstreams_config import UpstreamResolverConfig

HTTP_VERSIONS = ("1.1", "2", "h2c", "3")
RENEGOTIATION_LEVELS = ("never", "once", "freely")
PROXY_PROTOCOL_VERSIONS = ("v1", "v2")

NETWORK_PROXY = Module("caddy.network_proxy", inline_key="from")
CA_POOL_SOURCE = Module("tls.ca_pool.source", inline_key="provider")


def http_versions_problem(versions: tuple[str, ...] | list[str]) -> str | None:
    """Why a transport's `versions` list is unusable, or None."""
    for version in versions:
        if version not in HTTP_VERSIONS:
            return f"unsupported HTTP version {version!r}; supported versions: {', '.join(HTTP_VERSIONS)}"
    if "3" in versions and len(versions) > 1:
        return "if HTTP/3 is enabled to the upstream, no other HTTP versions are supported"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamTlsConfig:
    """TLS from rws to the upstreams; present (even empty) means TLS is on."""

    ca: Annotated[Any, CA_POOL_SOURCE] = None
    root_ca_pool: tuple[str, ...] = ()  # deprecated: base64 DER certificates
    root_ca_pem_files: tuple[str, ...] = ()  # deprecated: use `ca`
    client_certificate_file: str = ""
    client_certificate_key_file: str = ""
    client_certificate_automate: str = ""
    insecure_skip_verify: bool = False
    handshake_timeout: Duration = 0.0
    server_name: str = ""
    renegotiation: str = ""
    except_ports: tuple[str, ...] = ()
    curves: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        if bool(self.client_certificate_file) != bool(self.client_certificate_key_file):
            raise ConfigError(path, "client_certificate_file and client_certificate_key_file must be given together")
        if self.ca is not None and (self.root_ca_pool or self.root_ca_pem_files):
            raise ConfigError(f"{path}.ca", "conflicting config for root CA pool: use either ca or root_ca_pool/root_ca_pem_files")
        if self.renegotiation and self.renegotiation not in RENEGOTIATION_LEVELS:
            raise ConfigError(
                f"{path}.renegotiation",
                f"invalid TLS renegotiation level {self.renegotiation!r}; expected one of {', '.join(RENEGOTIATION_LEVELS)}",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeepAliveConfig:
    enabled: bool | None = None  # None means on
    probe_interval: Duration = 0.0  # 0 means the default, 30s
    max_idle_conns: int = 0
    max_idle_conns_per_host: int = 0  # 0 means the default, 32
    idle_timeout: Duration = 0.0  # 0 means the default, 2m


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpTransportConfig:
    resolver: UpstreamResolverConfig | None = None
    tls: UpstreamTlsConfig | None = None
    keep_alive: KeepAliveConfig | None = None
    compression: bool | None = None  # None means on
    max_conns_per_host: int = 0
    proxy_protocol: str = ""
    forward_proxy_url: str = ""  # deprecated: use network_proxy
    dial_timeout: Duration = 0.0  # 0 means the default, 3s
    dial_fallback_delay: Duration = 0.0
    response_header_timeout: Duration = 0.0
    expect_continue_timeout: Duration = 0.0
    max_response_header_size: int = 0
    write_buffer_size: int = 0
    read_buffer_size: int = 0
    read_timeout: Duration = 0.0
    write_timeout: Duration = 0.0
    versions: tuple[str, ...] = ()  # () means ("1.1", "2")
    local_address: str = ""
    network_proxy: Annotated[Any, NETWORK_PROXY] = None

    def validate(self, path: str) -> None:
        problem = http_versions_problem(self.versions)
        if problem:
            raise ConfigError(f"{path}.versions", problem)
        if self.proxy_protocol and self.proxy_protocol not in PROXY_PROTOCOL_VERSIONS:
            raise ConfigError(f"{path}.proxy_protocol", f"invalid proxy protocol version {self.proxy_protocol!r}; expected v1 or v2")
        if self.local_address:
            problem = local_address_problem(self.local_address)
            if problem:
                raise ConfigError(f"{path}.local_address", problem)


def local_address_problem(address: str) -> str | None:
    """Why `address` cannot be the source address of upstream connections, or None."""
    try:
        parsed = parse_network_address(address)
    except AddressError as exc:
        return str(exc)
    if parsed.end_port != parsed.start_port:
        return "local_address must be a single address, not a port range"
    if parsed.network.startswith("udp"):
        return "local_address must be a TCP address, not a UDP address"
    if parsed.network not in ("tcp", "tcp4", "tcp6", "unix", "unixgram", "unixpacket"):
        return f"unsupported network {parsed.network!r}"
    return None


# --- outbound proxies (`caddy.network_proxy.*`) ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkProxyUrlConfig:
    """Send upstream traffic through the proxy at `url` (placeholders allowed)."""

    url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkProxyNoneConfig:
    """Use no outbound proxy, whatever HTTP_PROXY/HTTPS_PROXY say."""
