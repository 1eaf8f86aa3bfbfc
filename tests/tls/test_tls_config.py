"""The config classes of the tls and pki apps decode the JSON Caddy takes, and reject bad
values with a ConfigError that names the JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from rws import registry
from rws.config.decode import decode
from rws.errors import ConfigError
from rws.tls.config import ConnectionPolicyConfig, PKIAppConfig, TLSAppConfig

FULL_TLS_APP: dict[str, Any] = {
    "certificates": {
        "load_files": [{"certificate": "c.pem", "key": "k.pem", "format": "pem", "tags": ["cert0"]}],
        "load_folders": ["/etc/certs"],
        "load_pem": [{"certificate": "-----BEGIN...", "key": "-----BEGIN...", "tags": ["x"]}],
        "load_storage": {"pairs": [{"certificate": "a", "key": "b"}]},
        "automate": ["a.example"],
    },
    "automation": {
        "policies": [
            {
                "subjects": ["a.example"],
                "issuers": [
                    {
                        "module": "acme", "ca": "https://ca/dir", "test_ca": "https://test/dir", "email": "a@b.c",
                        "profile": "shortlived", "account_key": "PEM", "acme_timeout": "30s",
                        "external_account": {"key_id": "k", "mac_key": "m"},
                        "challenges": {"http": {"disabled": True, "alternate_port": 8080},
                                       "tls-alpn": {"alternate_port": 8443}, "bind_host": "127.0.0.1",
                                       "distributed": False},
                        "trusted_roots_pem_files": ["/r.pem"],
                        "preferred_chains": {"smallest": True},
                        "certificate_lifetime": 86400000000000,
                    },
                    {"module": "internal", "ca": "local", "lifetime": "12h", "sign_with_root": True},
                    {"module": "zerossl", "api_key": "key", "validity_days": 90, "alternate_http_port": 8080},
                ],
                "get_certificate": [{"via": "http", "url": "https://certs/get"}],
                "key_type": "p384",
                "on_demand": True,
                "reuse_private_keys": True,
                "renewal_window_ratio": 0.25,
                "disable_ocsp_stapling": True,
                "ocsp_overrides": {"http://ocsp.a": "http://ocsp.b"},
            },
            {"issuers": [{"module": "internal"}]},
        ],
        "on_demand": {"permission": {"module": "http", "endpoint": "https://ask"}},
        "ocsp_interval": 3600000000000,
        "renew_interval": "10m",
        "storage_clean_interval": "24h",
    },
    "session_tickets": {"key_source": {"provider": "standard"}, "rotation_interval": "12h", "max_keys": 4},
    "cache": {"capacity": 100},
    "disable_ocsp_stapling": True,
    "disable_storage_check": True,
    "disable_storage_clean": True,
    "resolvers": ["1.1.1.1"],
}


def test_a_full_tls_app_decodes() -> None:
    app = decode(TLSAppConfig, FULL_TLS_APP, "apps.tls")
    assert app.automation.policies[0].issuers[0].config.challenges.tls_alpn.alternate_port == 8443
    assert app.automation.policies[0].issuers[1].config.lifetime == 12 * 3600
    assert app.certificates["load_files"].config[0].tags == ("cert0",)


def test_a_full_connection_policy_decodes() -> None:
    policy = {
        "match": {"sni": ["a.example"], "remote_ip": {"ranges": ["10.0.0.0/8"], "not_ranges": ["10.1.0.0/16"]},
                  "local_ip": {"ranges": ["127.0.0.1"]}},
        "certificate_selection": {"serial_number": ["123"], "subject_organization": ["Org"],
                                  "public_key_algorithm": "ecdsa", "any_tag": ["cert0"], "all_tags": ["x"]},
        "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], "curves": ["x25519"], "alpn": ["h2"],
        "protocol_min": "tls1.2", "protocol_max": "tls1.3", "drop": False,
        "client_authentication": {"ca": {"provider": "file", "pem_files": ["/ca.pem"]}, "mode": "require_and_verify",
                                  "trusted_leaf_certs": ["AAAA"]},
        "default_sni": "a.example", "fallback_sni": "b.example", "insecure_secrets_log": "/tmp/keys",
    }
    decoded = decode(ConnectionPolicyConfig, policy, "p")
    assert decoded.match["sni"].config == ("a.example",)
    decode(ConnectionPolicyConfig, {"client_authentication": {"ca": {"provider": "inline", "trusted_ca_certs": ["AAAA"]}}}, "p")


def test_a_pki_app_decodes() -> None:
    pki = {"certificate_authorities": {"local": {
        "name": "CA", "root_common_name": "R", "intermediate_common_name": "I", "intermediate_lifetime": "168h",
        "install_trust": False, "root": {"certificate": "/c", "private_key": "/k", "format": "pem_file"},
        "maintenance_interval": "10m", "renewal_window_ratio": 0.5}}}
    assert decode(PKIAppConfig, pki, "apps.pki").certificate_authorities["local"].install_trust is False


@pytest.mark.parametrize(("value", "path", "message"), [
    ({"automation": {"policies": [{"issuers": [{"module": "acme", "emial": "x"}]}]}},
     "apps.tls.automation.policies[0].issuers[0].emial", "did you mean 'email'"),
    ({"automation": {"policies": [{"key_type": "rsa1024"}]}},
     "apps.tls.automation.policies[0].key_type", "unrecognized key type"),
    ({"automation": {"policies": [{"issuers": [{"module": "letsencrypt"}]}]}},
     "apps.tls.automation.policies[0].issuers[0].module", "unknown module 'tls.issuance.letsencrypt'"),
    ({"automation": {"policies": [{"issuers": [{"module": "acme", "challenges": {"dns": {"ttl": "1m"}}}]}]}},
     "apps.tls.automation.policies[0].issuers[0].challenges.dns", "no DNS provider"),
    ({"automation": {"policies": [{"issuers": [
        {"module": "acme", "challenges": {"dns": {"provider": {"name": "cloudflare"}}}}]}]}},
     "apps.tls.automation.policies[0].issuers[0].challenges.dns.provider.name", "unknown module 'dns.providers.cloudflare'"),
    ({"automation": {"policies": [{}, {}]}}, "apps.tls.automation.policies[1]", "second policy that acts as default"),
    ({"automation": {"policies": [{"subjects": ["a"]}, {"subjects": ["a"]}]}},
     "apps.tls.automation.policies[1]", "cannot apply more than one automation policy to host: a"),
    ({"automation": {"renew_interval": "soon"}}, "apps.tls.automation.renew_interval", "invalid duration"),
    ({"automation": {"on_demand": {"ask": "http://a", "permission": {"module": "http", "endpoint": "http://b"}}}},
     "apps.tls.automation.on_demand", "on-demand TLS config conflict"),
    ({"automation": {"on_demand": {"permission": {"module": "http"}}}},
     "apps.tls.automation.on_demand.permission.endpoint", "endpoint URL is required"),
    ({"cache": {"capacity": -1}}, "apps.tls.cache.capacity", "must be >= 0"),
    ({"encrypted_client_hello": {"configs": []}}, "apps.tls.encrypted_client_hello", "not supported"),
    ({"certificates": {"load_files": [{"certificate": "c.pem"}]}}, "apps.tls.certificates.load_files[0].key", "required"),
    ({"certificates": {"load_web": []}}, "apps.tls.certificates.load_web", "unknown module"),
    ({"automation": {"policies": [{"get_certificate": [{"via": "tailscale"}]}]}},
     "apps.tls.automation.policies[0].get_certificate[0].via", "unknown module 'tls.get_certificate.tailscale'"),
    ({"session_tickets": {"key_source": {"provider": "distributed"}}}, "apps.tls.session_tickets.key_source.provider",
     "unknown module"),
])
def test_bad_tls_app_values_name_their_path(value: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(TLSAppConfig, value, "apps.tls")
    assert info.value.path == path
    assert message in info.value.message


@pytest.mark.parametrize(("value", "path", "message"), [
    ({"protocol_min": "tls1.1"}, "p.protocol_min", "unsupported protocol"),
    ({"protocol_min": "tls1.3", "protocol_max": "tls1.2"}, "p", "cannot be greater"),
    ({"cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]}, "p.cipher_suites[0]", "unsupported cipher suite"),
    ({"curves": ["x448"]}, "p.curves[0]", "unsupported curve"),
    ({"client_authentication": {"mode": "maybe"}}, "p.client_authentication.mode", "not recognized"),
    ({"client_authentication": {"ca": {"provider": "file"}, "trusted_ca_certs": ["AAAA"]}},
     "p.client_authentication", "conflicting config"),
    ({"client_authentication": {"ca": {"provider": "inline", "trusted_ca_certs": ["not base64!"]}}},
     "p.client_authentication.ca.trusted_ca_certs[0]", "base64"),
    ({"client_authentication": {"ca": {"provider": "system"}}}, "p.client_authentication.ca.provider", "unknown module"),
    ({"certificate_selection": {"serial_number": ["12x"]}}, "p.certificate_selection.serial_number[0]", "big integer"),
    ({"certificate_selection": {"public_key_algorithm": "ed448"}}, "p.certificate_selection.public_key_algorithm",
     "unrecognized public key algorithm"),
    ({"match": {"remote_ip": {"ranges": ["10.0.0.0/33"]}}}, "p.match.remote_ip.ranges[0]", "invalid IP"),
    ({"match": {"sni_regexp": {"pattern": "x"}}}, "p.match.sni_regexp", "unknown module"),
])
def test_bad_connection_policies_name_their_path(value: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(ConnectionPolicyConfig, value, "p")
    assert info.value.path == path
    assert message in info.value.message


def test_bad_pki_values_name_their_path() -> None:
    with pytest.raises(ConfigError) as info:
        decode(PKIAppConfig, {"certificate_authorities": {"local": {"root": {"format": "der"}}}}, "apps.pki")
    assert info.value.path == "apps.pki.certificate_authorities.local.root.format"
    with pytest.raises(ConfigError) as info:
        decode(PKIAppConfig, {"certificate_authorities": {"local": {"install_trust": "no"}}}, "apps.pki")
    assert info.value.path == "apps.pki.certificate_authorities.local.install_trust"


def test_every_tls_module_is_declared_where_the_registry_says() -> None:
    ids = [m for m in registry.MODULES if m in ("tls", "pki") or m.startswith("tls.")]
    assert len(ids) == 18
    for module_id in ids:
        spec = registry.find(module_id)
        assert spec is not None and spec.id == module_id
