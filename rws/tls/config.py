"""Config of the `tls` and `pki` apps, TLS connection policies, issuers and the small
modules they name (certificate loaders, handshake matchers, CA pools, ...).

The classes mirror the JSON that Caddy's `tls` and `pki` apps take, field for field. The
Rwsfile forms (the `tls` directive, the TLS global options, `issuer acme { ... }` and
friends) live in `rws.tls.directive`, `rws.tls.options` and `rws.tls.forms`; the
adapter step that builds `apps.tls` and `apps.pki` from site blocks is `rws.tls.adapt`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field
from typing import Annotated, Any

from rws.config.decode import Duration, Module, ModuleMap
from rws.errors import ConfigError
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive
from rws.tls import directive, forms, options

# --- vocabularies --------------------------------------------------------------------

KEY_TYPES = ("ed25519", "p256", "p384", "rsa2048", "rsa4096")
PROTOCOLS = ("tls1.2", "tls1.3")
CURVES = ("x25519mlkem768", "x25519", "secp256r1", "secp384r1", "secp521r1")
CIPHER_SUITES = (
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
)
CLIENT_AUTH_MODES = ("request", "require", "verify_if_given", "require_and_verify")
PUBLIC_KEY_ALGORITHMS = ("rsa", "dsa", "ecdsa")


def _check_key_type(value: str, path: str) -> None:
    if value and "{" not in value and value not in KEY_TYPES:
        raise ConfigError(path, f"unrecognized key type {value!r}: expected one of {', '.join(KEY_TYPES)}")


def _check_ranges(ranges: tuple[str, ...], path: str) -> None:
    for i, text in enumerate(ranges):
        if "{" in text:
            continue  # a placeholder, resolved at provision time
        try:
            if "/" in text:
                ipaddress.ip_network(text, strict=False)
            else:
                ipaddress.ip_address(text)
        except ValueError:
            raise ConfigError(f"{path}[{i}]", f"invalid IP address or CIDR range {text!r}") from None


# --- issuers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalAccountConfig:
    key_id: str = ""
    mac_key: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPChallengeConfig:
    disabled: bool = False
    alternate_port: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DNSChallengeConfig:
    provider: Annotated[Any, Module("dns.providers", "name")] | None = None
    ttl: Duration = 0
    propagation_delay: Duration = 0
    propagation_timeout: Duration = 0
    resolvers: tuple[str, ...] = ()
    override_domain: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChallengesConfig:
    http: HTTPChallengeConfig | None = None
    tls_alpn: HTTPChallengeConfig | None = field(default=None, metadata={"json": "tls-alpn"})
    dns: DNSChallengeConfig | None = None
    bind_host: str = ""
    distributed: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainPreferenceConfig:
    smallest: bool | None = None
    root_common_name: tuple[str, ...] = ()
    any_common_name: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ACMEIssuerConfig:
    ca: str = ""
    test_ca: str = ""
    email: str = ""
    profile: str = ""
    account_key: str = ""
    external_account: ExternalAccountConfig | None = None
    acme_timeout: Duration = 0
    challenges: ChallengesConfig | None = None
    trusted_roots_pem_files: tuple[str, ...] = ()
    preferred_chains: ChainPreferenceConfig | None = None
    certificate_lifetime: Duration = 0
    network_proxy: Annotated[Any, Module("caddy.network_proxy", "from")] | None = None

    def validate(self, path: str) -> None:
        if self.challenges is not None and self.challenges.dns is not None and self.challenges.dns.provider is None:
            raise ConfigError(f"{path}.challenges.dns", "DNS challenge enabled, but no DNS provider configured")
        if self.certificate_lifetime < 0:
            raise ConfigError(f"{path}.certificate_lifetime", "lifetime must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class InternalIssuerConfig:
    ca: str = ""
    lifetime: Duration = 0
    sign_with_root: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ZeroSSLIssuerConfig:
    api_key: str = ""
    validity_days: int = 0
    listen_host: str = ""
    alternate_http_port: int = 0
    cname_validation: DNSChallengeConfig | None = None

    def validate(self, path: str) -> None:
        if not self.api_key:
            raise ConfigError(f"{path}.api_key", "API key is required")


# --- certificate loaders -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CertKeyFilePairConfig:
    certificate: str
    key: str
    format: str = ""
    tags: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        if self.format not in ("", "pem"):
            raise ConfigError(f"{path}.format", f"unrecognized certificate/key encoding format: {self.format!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CertKeyPEMPairConfig:
    certificate: str
    key: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageLoaderConfig:
    pairs: tuple[CertKeyFilePairConfig, ...] = ()


# --- automation ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitConfig:
    """Caddy 2.6's on-demand rate limit: at most `burst` certificates per `interval`."""

    interval: Duration = 0
    burst: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class OnDemandConfig:
    ask: str = ""
    permission: Annotated[Any, Module("tls.permission", "module")] | None = None
    rate_limit: RateLimitConfig | None = None

    def validate(self, path: str) -> None:
        if self.ask and self.permission is not None:
            raise ConfigError(path, "on-demand TLS config conflict: both 'ask' endpoint and a 'permission' "
                                    "module are specified; 'ask' is deprecated, so use only the permission module")


@dataclass(frozen=True, slots=True, kw_only=True)
class AutomationPolicyConfig:
    subjects: tuple[str, ...] = ()
    issuers: tuple[Annotated[Any, Module("tls.issuance", "module")], ...] = ()
    get_certificate: tuple[Annotated[Any, Module("tls.get_certificate", "via")], ...] = ()
    must_staple: bool = False
    renewal_window_ratio: float = 0.0
    key_type: str = ""
    storage: Annotated[Any, Module("caddy.storage", "module")] | None = None
    on_demand: bool = False
    reuse_private_keys: bool = False
    disable_ocsp_stapling: bool = False
    ocsp_overrides: dict[str, str] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        _check_key_type(self.key_type, f"{path}.key_type")
        if not 0 <= self.renewal_window_ratio < 1:
            raise ConfigError(f"{path}.renewal_window_ratio", "must be between 0 and 1 (exclusive)")


@dataclass(frozen=True, slots=True, kw_only=True)
class AutomationConfig:
    policies: tuple[AutomationPolicyConfig, ...] = ()
    on_demand: OnDemandConfig | None = None
    ocsp_interval: Duration = 0
    renew_interval: Duration = 0
    storage_clean_interval: Duration = 0

    def validate(self, path: str) -> None:
        seen: dict[str, int] = {}
        catch_all = False
        for i, policy in enumerate(self.policies):
            if not policy.subjects:
                if catch_all:
                    raise ConfigError(f"{path}.policies[{i}]", f"automation policy {i} is the second policy that "
                                                               "acts as default/catch-all, but will never be used")
                catch_all = True
            for subject in policy.subjects:
                if subject in seen:
                    raise ConfigError(f"{path}.policies[{i}]", f"automation policy {i}: cannot apply more than one "
                                      f"automation policy to host: {subject} (first match in policy {seen[subject]})")
                seen[subject] = i


# --- session tickets, cache, the app -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTicketsConfig:
    key_source: Annotated[Any, Module("tls.stek", "provider")] | None = None
    rotation_interval: Duration = 0
    max_keys: int = 0
    disable_rotation: bool = False
    disabled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StandardSTEKConfig:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    capacity: int = 0

    def validate(self, path: str) -> None:
        if self.capacity < 0:
            raise ConfigError(f"{path}.capacity", "cache capacity must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSAppConfig:
    certificates: Annotated[Any, ModuleMap("tls.certificates")] | None = None
    automation: AutomationConfig | None = None
    session_tickets: SessionTicketsConfig | None = None
    cache: CacheConfig | None = None
    disable_ocsp_stapling: bool = False
    disable_storage_check: bool = False
    disable_storage_clean: bool = False
    encrypted_client_hello: Any = None
    dns: Annotated[Any, Module("dns.providers", "name")] | None = None
    resolvers: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        if self.encrypted_client_hello is not None:
            raise ConfigError(f"{path}.encrypted_client_hello", "encrypted ClientHello (ECH) is not supported by rws")


# --- connection policies -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CertSelectionConfig:
    serial_number: tuple[str, ...] = ()
    subject_organization: tuple[str, ...] = ()
    public_key_algorithm: str = ""
    any_tag: tuple[str, ...] = ()
    all_tags: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        for i, serial in enumerate(self.serial_number):
            if not serial.lstrip("+-").isdecimal():
                raise ConfigError(f"{path}.serial_number[{i}]", f"not a valid big integer: {serial!r}")
        if self.public_key_algorithm and self.public_key_algorithm.lower() not in PUBLIC_KEY_ALGORITHMS:
            raise ConfigError(f"{path}.public_key_algorithm", f"unrecognized public key algorithm: "
                              f"{self.public_key_algorithm!r} (expected one of {', '.join(PUBLIC_KEY_ALGORITHMS)})")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientAuthenticationConfig:
    ca: Annotated[Any, Module("tls.ca_pool.source", "provider")] | None = None
    trusted_ca_certs: tuple[str, ...] = ()
    trusted_ca_certs_pem_files: tuple[str, ...] = ()
    trusted_leaf_certs: tuple[str, ...] = ()
    verifiers: tuple[Annotated[Any, Module("tls.client_auth.verifier", "verifier")], ...] = ()
    mode: str = ""

    def validate(self, path: str) -> None:
        if self.mode and self.mode not in CLIENT_AUTH_MODES:
            raise ConfigError(f"{path}.mode", f"client auth mode not recognized: {self.mode!r} "
                                              f"(expected one of {', '.join(CLIENT_AUTH_MODES)})")
        if self.ca is not None and (self.trusted_ca_certs or self.trusted_ca_certs_pem_files):
            raise ConfigError(path, "conflicting config for client authentication trust CA")
        for key in ("trusted_ca_certs", "trusted_leaf_certs"):
            for i, cert in enumerate(getattr(self, key)):
                _check_base64(cert, f"{path}.{key}[{i}]")


def _check_base64(text: str, path: str) -> None:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(path, "expected a base64-encoded DER certificate") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionPolicyConfig:
    match: Annotated[Any, ModuleMap("tls.handshake_match")] | None = None
    certificate_selection: CertSelectionConfig | None = None
    cipher_suites: tuple[str, ...] = ()
    curves: tuple[str, ...] = ()
    alpn: tuple[str, ...] = ()
    protocol_min: str = ""
    protocol_max: str = ""
    drop: bool = False
    client_authentication: ClientAuthenticationConfig | None = None
    default_sni: str = ""
    fallback_sni: str = ""
    insecure_secrets_log: str = ""
    handshake_context: Annotated[Any, Module("tls.context", "module")] | None = None

    def validate(self, path: str) -> None:
        for i, name in enumerate(self.cipher_suites):
            if name not in CIPHER_SUITES:
                raise ConfigError(f"{path}.cipher_suites[{i}]", f"unsupported cipher suite: {name}")
        for i, name in enumerate(self.curves):
            if name not in CURVES:
                raise ConfigError(f"{path}.curves[{i}]", f"unsupported curve: {name}")
        for key in ("protocol_min", "protocol_max"):
            value = getattr(self, key)
            if value and value not in PROTOCOLS:
                raise ConfigError(f"{path}.{key}", f"unsupported protocol {value!r}: expected one of {', '.join(PROTOCOLS)}")
        if self.protocol_min and self.protocol_max and self.protocol_min > self.protocol_max:
            raise ConfigError(path, f"protocol min ({self.protocol_min}) cannot be greater than "
                                    f"protocol max ({self.protocol_max})")


# --- handshake matchers, permission, certificate getters, CA pools -------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchRemoteIPConfig:
    ranges: tuple[str, ...] = ()
    not_ranges: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        _check_ranges(self.ranges, f"{path}.ranges")
        _check_ranges(self.not_ranges, f"{path}.not_ranges")


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchLocalIPConfig:
    ranges: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        _check_ranges(self.ranges, f"{path}.ranges")


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionByHTTPConfig:
    endpoint: str = ""

    def validate(self, path: str) -> None:
        if not self.endpoint:
            raise ConfigError(f"{path}.endpoint", "an endpoint URL is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPCertGetterConfig:
    url: str = ""

    def validate(self, path: str) -> None:
        if not self.url:
            raise ConfigError(f"{path}.url", "URL is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileCAPoolConfig:
    pem_files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class InlineCAPoolConfig:
    trusted_ca_certs: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        for i, cert in enumerate(self.trusted_ca_certs):
            _check_base64(cert, f"{path}.trusted_ca_certs[{i}]")


# --- the pki app ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPairConfig:
    certificate: str = ""
    private_key: str = ""
    format: str = ""

    def validate(self, path: str) -> None:
        if self.format not in ("", "pem_file"):
            raise ConfigError(f"{path}.format", f"unsupported format {self.format!r}: expected 'pem_file'")


@dataclass(frozen=True, slots=True, kw_only=True)
class CAConfig:
    name: str = ""
    root_common_name: str = ""
    intermediate_common_name: str = ""
    intermediate_lifetime: Duration = 0
    install_trust: bool | None = None
    root: KeyPairConfig | None = None
    intermediate: KeyPairConfig | None = None
    maintenance_interval: Duration = 0
    renewal_window_ratio: float = 0.0
    storage: Annotated[Any, Module("caddy.storage", "module")] | None = None

    def validate(self, path: str) -> None:
        if not 0 <= self.renewal_window_ratio <= 1:
            raise ConfigError(f"{path}.renewal_window_ratio", "must be a number in (0, 1]")


@dataclass(frozen=True, slots=True, kw_only=True)
class PKIAppConfig:
    certificate_authorities: dict[str, CAConfig] = field(default_factory=dict)


# --- module declarations -------------------------------------------------------------

TLS_APP = ModuleSpec(
    "tls",
    TLSAppConfig,
    directives={"tls": Directive(directive.parse_tls, handler=False)},
    options=options.TLS_OPTIONS,
)
PKI_APP = ModuleSpec("pki", PKIAppConfig, options={"pki": options.parse_pki})

ACME_ISSUER = ModuleSpec("tls.issuance.acme", ACMEIssuerConfig, rwsfile=forms.parse_acme_issuer)
INTERNAL_ISSUER = ModuleSpec("tls.issuance.internal", InternalIssuerConfig, rwsfile=forms.parse_internal_issuer)
ZEROSSL_ISSUER = ModuleSpec("tls.issuance.zerossl", ZeroSSLIssuerConfig, rwsfile=forms.parse_zerossl_issuer)

LOAD_FILES = ModuleSpec("tls.certificates.load_files", tuple[CertKeyFilePairConfig, ...])
LOAD_FOLDERS = ModuleSpec("tls.certificates.load_folders", tuple[str, ...])
LOAD_PEM = ModuleSpec("tls.certificates.load_pem", tuple[CertKeyPEMPairConfig, ...])
LOAD_STORAGE = ModuleSpec("tls.certificates.load_storage", StorageLoaderConfig)
AUTOMATE = ModuleSpec("tls.certificates.automate", tuple[str, ...])

MATCH_SNI = ModuleSpec("tls.handshake_match.sni", tuple[str, ...], rwsfile=forms.parse_match_sni)
MATCH_REMOTE_IP = ModuleSpec("tls.handshake_match.remote_ip", MatchRemoteIPConfig, rwsfile=forms.parse_match_remote_ip)
MATCH_LOCAL_IP = ModuleSpec("tls.handshake_match.local_ip", MatchLocalIPConfig, rwsfile=forms.parse_match_local_ip)

PERMISSION_HTTP = ModuleSpec("tls.permission.http", PermissionByHTTPConfig, rwsfile=forms.parse_permission_http)
GET_CERTIFICATE_HTTP = ModuleSpec("tls.get_certificate.http", HTTPCertGetterConfig, rwsfile=forms.parse_get_certificate_http)

CA_POOL_FILE = ModuleSpec("tls.ca_pool.source.file", FileCAPoolConfig, rwsfile=forms.parse_ca_pool_file)
CA_POOL_INLINE = ModuleSpec("tls.ca_pool.source.inline", InlineCAPoolConfig, rwsfile=forms.parse_ca_pool_inline)

STEK_STANDARD = ModuleSpec("tls.stek.standard", StandardSTEKConfig)
