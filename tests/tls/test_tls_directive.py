"""The `tls` site directive, through the real adapter."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Callable

import pytest

Adapt = Callable[[str], dict[str, Any]]
AdaptError = Callable[[str, int], Any]

DER = b"0\x82\x01\x0atest certificate bytes"
PEM = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(DER).decode() + "-----END CERTIFICATE-----\n"


def policies(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["apps"]["tls"]["automation"]["policies"]


def conn_policies(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["apps"]["http"]["servers"]["srv0"]["tls_connection_policies"]


def test_a_cert_file_used_by_two_sites_is_loaded_once_with_one_tag(adapt: Adapt) -> None:
    config = adapt("a.example {\n\ttls cert.pem key.pem\n}\nb.example {\n\ttls cert.pem key.pem\n}\n")
    assert config["apps"]["tls"]["certificates"] == {
        "load_files": [{"certificate": "cert.pem", "key": "key.pem", "tags": ["cert0"]}],
    }
    assert all(p.get("certificate_selection") in (None, {"any_tag": ["cert0"]}) for p in conn_policies(config))


def test_each_new_cert_file_gets_the_next_tag(adapt: Adapt) -> None:
    config = adapt("a.example {\n\ttls a.pem a.key\n}\nb.example {\n\ttls b.pem b.key\n}\nc.example {\n\ttls a.pem a.key\n}\n")
    files = config["apps"]["tls"]["certificates"]["load_files"]
    assert sorted((f["certificate"], f["tags"]) for f in files) == [("a.pem", ["cert0"]), ("b.pem", ["cert1"])]


def test_folders_from_several_sites_make_one_loader(adapt: Adapt) -> None:
    config = adapt("a.example {\n\ttls {\n\t\tload /certs/a\n\t}\n}\nbb.example {\n\ttls {\n\t\tload /certs/b /certs/c\n\t}\n}\n")
    assert sorted(config["apps"]["tls"]["certificates"]["load_folders"]) == ["/certs/a", "/certs/b", "/certs/c"]


def test_connection_policy_settings(adapt: Adapt) -> None:
    config = adapt(
        "a.example {\n\ttls {\n\t\tprotocols tls1.3\n\t\talpn h2 http/1.1\n\t\tinsecure_secrets_log /tmp/keys.log\n"
        "\t\tcurves x25519mlkem768 x25519\n\t}\n}\n"
    )
    assert conn_policies(config)[0] == {
        "match": {"sni": ["a.example"]}, "protocol_min": "tls1.3", "alpn": ["h2", "http/1.1"],
        "insecure_secrets_log": "/tmp/keys.log", "curves": ["x25519mlkem768", "x25519"],
    }


def test_trusted_ca_cert_file_is_inlined_as_base64_der(adapt: Adapt, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ca.pem").write_text(PEM + PEM)
    monkeypatch.chdir(tmp_path)
    config = adapt("a.example {\n\ttls {\n\t\tclient_auth {\n\t\t\ttrusted_ca_cert_file ca.pem\n"
                   "\t\t\ttrusted_leaf_cert_file ca.pem\n\t\t}\n\t}\n}\n")
    der = base64.b64encode(DER).decode()
    assert conn_policies(config)[0]["client_authentication"] == {
        "ca": {"provider": "inline", "trusted_ca_certs": [der, der]},
        "trusted_leaf_certs": [der, der],
    }


def test_a_trust_pool_replaces_the_legacy_fields(adapt: Adapt) -> None:
    config = adapt("a.example {\n\ttls {\n\t\tclient_auth {\n\t\t\ttrust_pool inline {\n\t\t\t\ttrust_der AAAA BBBB\n"
                   "\t\t\t}\n\t\t}\n\t}\n}\n")
    assert conn_policies(config)[0]["client_authentication"] == {
        "ca": {"provider": "inline", "trusted_ca_certs": ["AAAA", "BBBB"]},
    }


def test_client_auth_file_errors_name_the_line(adapt_error: AdaptError, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    err = adapt_error("a.example {\n\ttls {\n\t\tclient_auth {\n\t\t\ttrusted_ca_cert_file key.pem\n\t\t}\n\t}\n}\n", 4)
    assert "no CERTIFICATE pem block found in key.pem" in str(err)
    err = adapt_error("a.example {\n\ttls {\n\t\tclient_auth {\n\t\t\ttrusted_leaf_cert_file missing.pem\n\t\t}\n\t}\n}\n", 4)
    assert "reading 'missing.pem'" in str(err)
    err = adapt_error("a.example {\n\ttls {\n\t\tclient_auth {\n\t\t\ttrust_pool inline\n"
                      "\t\t\ttrusted_ca_cert AAAA\n\t\t}\n\t}\n}\n", 4)
    assert "no certificates specified" in str(err)


def test_eab_shortcut_without_email_uses_one_issuer(adapt: Adapt) -> None:
    config = adapt("a.example {\n\ttls {\n\t\teab key-id mac-key\n\t}\n}\n")
    assert policies(config) == [{
        "subjects": ["a.example"],
        "issuers": [{"module": "acme", "external_account": {"key_id": "key-id", "mac_key": "mac-key"}}],
    }]


def test_explicit_issuers_get_the_global_acme_defaults(adapt: Adapt) -> None:
    config = adapt("{\n\temail ops@a.example\n\tacme_ca_root /r.pem\n}\na.example {\n\ttls {\n\t\tissuer acme\n"
                   "\t\tissuer internal\n\t}\n}\n")
    assert policies(config)[0] == {
        "subjects": ["a.example"],
        "issuers": [{"module": "acme", "email": "ops@a.example", "trusted_roots_pem_files": ["/r.pem"]},
                    {"module": "internal"}],
    }


def test_acme_issuer_dns_options_without_a_provider_adapt_but_do_not_load() -> None:
    # as in Caddy, the adapter accepts them and loading the config fails (rws has no DNS providers)
    from rws.config.decode import decode
    from rws.errors import ConfigError
    from rws.rwsfile.adapt import adapt_text
    from rws.tls.config import TLSAppConfig

    text = "a.example {\n\ttls {\n\t\tissuer acme {\n\t\t\tpropagation_timeout -1\n\t\t\tresolvers 1.1.1.1\n\t\t}\n\t}\n}\n"
    config, _warnings = adapt_text(text, "Rwsfile")
    issuer = policies(config)[0]["issuers"][0]
    assert issuer["challenges"]["dns"] == {"propagation_timeout": -1, "resolvers": ["1.1.1.1"]}
    with pytest.raises(ConfigError) as info:
        decode(TLSAppConfig, config["apps"]["tls"], "apps.tls")
    assert info.value.path == "apps.tls.automation.policies[0].issuers[0].challenges.dns"


def test_get_certificate_and_on_demand_flags(adapt: Adapt) -> None:
    config = adapt("a.example {\n\ttls {\n\t\tget_certificate http https://certs.example/get\n\t\ton_demand\n"
                   "\t\treuse_private_keys\n\t\trenewal_window_ratio 0.4\n\t}\n}\n")
    assert policies(config) == [{
        "subjects": ["a.example"],
        "get_certificate": [{"via": "http", "url": "https://certs.example/get"}],
        "on_demand": True, "reuse_private_keys": True, "renewal_window_ratio": 0.4,
    }]


def test_force_automate_names_the_site_in_automate(adapt: Adapt) -> None:
    config = adapt("a.example {\n\ttls force_automate\n}\n")
    assert config["apps"]["tls"] == {"certificates": {"automate": ["a.example"]}}


@pytest.mark.parametrize(("text", "line", "message"), [
    ("a.example {\n\ttls {\n\t\tissuer acme {\n\t\t\temial x@y\n\t\t}\n\t}\n}\n", 4,
     "unrecognized subdirective 'emial' (did you mean 'email'?)"),
    ("a.example {\n\ttls {\n\t\tissuer acme https://a/dir {\n\t\t\tdir https://b/dir\n\t\t}\n\t}\n}\n", 4,
     "directory is already specified: https://a/dir"),
    ("a.example {\n\ttls {\n\t\tissuer acme {\n\t\t\tlifetime -1h\n\t\t}\n\t}\n}\n", 4, "lifetime must be >= 0"),
    ("a.example {\n\ttls {\n\t\tissuer acme {\n\t\t\talt_http_port eighty\n\t\t}\n\t}\n}\n", 4, "invalid port 'eighty'"),
    ("a.example {\n\ttls {\n\t\tissuer acme {\n\t\t\tdistributed true\n\t\t}\n\t}\n}\n", 4, "only accepted value is 'false'"),
    ("a.example {\n\ttls {\n\t\tissuer acme {\n\t\t\tdns route53\n\t\t}\n\t}\n}\n", 4, "DNS providers are not supported"),
    ("a.example {\n\ttls {\n\t\tissuer zerossl\n\t}\n}\n", 3, "wrong argument count"),
    ("a.example {\n\ttls {\n\t\tissuer internal {\n\t\t\tsign_with_roots\n\t\t}\n\t}\n}\n", 4,
     "(did you mean 'sign_with_root'?)"),
    ("a.example {\n\ttls {\n\t\tissuer acme {\n\t\t\tpreferred_chains smallest {\n\t\t\t\tany_common_name X\n"
     "\t\t\t}\n\t\t}\n\t}\n}\n", 4, "no more options are accepted when using the 'smallest' option"),
    ("a.example {\n\ttls {\n\t\tget_certificate http https://x {\n\t\t\turl y\n\t\t}\n\t}\n}\n", 3, "block not allowed here"),
    ("a.example {\n\ttls {\n\t\tget_certificate tailscale\n\t}\n}\n", 3, "unknown certificate manager 'tailscale'"),
    ("a.example {\n\ttls {\n\t\tclient_auth {\n\t\t\tverifier leaf file a.pem\n\t\t}\n\t}\n}\n", 4,
     "unknown client certificate verifier 'leaf'"),
    ("a.example {\n\ttls {\n\t\tclient_auth {\n\t\t\tmode sometimes\n\t\t}\n\t}\n}\n", 4, "client auth mode not recognized"),
    ("a.example {\n\ttls {\n\t\tcurves x448\n\t}\n}\n", 3, "wrong curve name or curve not supported: 'x448'"),
    ("a.example {\n\ttls {\n\t\tprotocols\n\t}\n}\n", 3, "protocols requires one or two arguments"),
    ("a.example {\n\ttls {\n\t\ton_demand now\n\t}\n}\n", 3, "wrong argument count"),
    ("a.example {\n\ttls {\n\t\teab only-key\n\t}\n}\n", 3, "wrong argument count"),
    ("a.example {\n\ttls {\n\t\trenewal_window_ratio half\n\t}\n}\n", 3, "invalid number 'half'"),
    ("a.example {\n\ttls a b c\n}\n", 2, "wrong argument count"),
    ("a.example {\n\ttls {\n\t}\n}\n", 2, "wrong argument count"),
])
def test_bad_tls_directives_name_the_line(text: str, line: int, message: str, adapt_error: AdaptError) -> None:
    assert message in str(adapt_error(text, line))
