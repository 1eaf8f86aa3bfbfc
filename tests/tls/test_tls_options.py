"""The TLS and PKI global options, through the real adapter."""

from __future__ import annotations

from typing import Any, Callable

import pytest

Adapt = Callable[[str], dict[str, Any]]
AdaptError = Callable[[str, int], Any]

HOSTLESS = "\n:8443 {\n}\n"  # a hostless site, so the catch-all policy shows


def tls_app(config: dict[str, Any]) -> dict[str, Any]:
    return config["apps"]["tls"]


def test_global_acme_options_fill_the_catch_all_issuer(adapt: Adapt) -> None:
    config = adapt("{\n\tacme_ca https://ca.example/dir\n\tacme_eab {\n\t\tkey_id kid\n\t\tmac_key mac\n\t}\n"
                   "\temail ops@example.com\n\tcert_lifetime 3d\n}\n" + HOSTLESS)
    assert tls_app(config)["automation"]["policies"] == [{"issuers": [{
        "module": "acme", "ca": "https://ca.example/dir", "email": "ops@example.com",
        "external_account": {"key_id": "kid", "mac_key": "mac"}, "certificate_lifetime": 3 * 86400 * 10**9,
    }]}]


def test_http_ports_become_the_acme_challenge_ports(adapt: Adapt) -> None:
    config = adapt("{\n\thttp_port 8080\n\thttps_port 8443\n\tacme_ca https://ca.example/dir\n}\n" + HOSTLESS)
    (issuer,) = tls_app(config)["automation"]["policies"][0]["issuers"]
    assert issuer["challenges"] == {"http": {"alternate_port": 8080}, "tls-alpn": {"alternate_port": 8443}}


def test_cert_issuer_repeats_in_fallback_order(adapt: Adapt) -> None:
    config = adapt("{\n\tcert_issuer internal\n\tcert_issuer acme\n}\n" + HOSTLESS)
    assert tls_app(config)["automation"]["policies"] == [{"issuers": [{"module": "internal"}, {"module": "acme"}]}]


def test_preferred_chains_smallest(adapt: Adapt) -> None:
    config = adapt("{\n\tpreferred_chains smallest\n}\n" + HOSTLESS)
    issuer = {"module": "acme", "preferred_chains": {"smallest": True}}
    assert tls_app(config)["automation"]["policies"] == [{"issuers": [issuer]}]


def test_on_demand_ask_becomes_an_http_permission(adapt: Adapt) -> None:
    config = adapt("{\n\ton_demand_tls {\n\t\task http://localhost:9000/ask\n\t}\n}\n" + HOSTLESS)
    assert tls_app(config)["automation"]["on_demand"] == {
        "permission": {"module": "http", "endpoint": "http://localhost:9000/ask"}}


def test_ocsp_and_storage_options(adapt: Adapt) -> None:
    config = adapt("{\n\tocsp_stapling off\n\tocsp_interval 2h\n\tstorage_clean_interval 36h\n}\n" + HOSTLESS)
    assert tls_app(config) == {
        "disable_ocsp_stapling": True,
        "automation": {"policies": [{"disable_ocsp_stapling": True}], "ocsp_interval": 2 * 3600 * 10**9,
                       "storage_clean_interval": 36 * 3600 * 10**9},
    }


def test_key_type_applies_to_every_policy(adapt: Adapt) -> None:
    config = adapt("{\n\tkey_type rsa2048\n}\na.example {\n\ttls internal\n}\n" + HOSTLESS)
    assert tls_app(config)["automation"]["policies"] == [
        {"subjects": ["a.example"], "issuers": [{"module": "internal"}], "key_type": "rsa2048"},
        {"key_type": "rsa2048"},
    ]


def test_a_later_pki_option_replaces_an_earlier_one(adapt: Adapt) -> None:
    config = adapt("{\n\tpki {\n\t\tca one {\n\t\t\tname One\n\t\t}\n\t}\n\tpki {\n\t\tca two\n\t}\n}\nlocalhost {\n}\n")
    assert config["apps"]["pki"] == {"certificate_authorities": {"two": {}}}


def test_skip_install_trust_makes_a_local_ca_unless_auto_https_is_off(adapt: Adapt) -> None:
    config = adapt("{\n\tskip_install_trust\n}\nlocalhost {\n}\n")
    assert config["apps"]["pki"] == {"certificate_authorities": {"local": {"install_trust": False}}}
    config = adapt("{\n\tskip_install_trust\n\tauto_https off\n}\nlocalhost {\n}\n")
    assert "pki" not in config.get("apps", {})


def test_an_empty_pki_option_adds_no_app(adapt: Adapt) -> None:
    assert "pki" not in adapt("{\n\tpki\n}\nlocalhost {\n}\n").get("apps", {})


@pytest.mark.parametrize(("text", "line", "message"), [
    ("{\n\tacme_eab {\n\t\tkey kid\n\t}\n}\n", 3, "unrecognized subdirective 'key'"),
    ("{\n\tacme_eab kid mac\n}\n", 2, "wrong argument count"),
    ("{\n\temail\n}\n", 2, "wrong argument count"),
    ("{\n\tacme_ca https://a https://b\n}\n", 2, "wrong argument count"),
    ("{\n\tdns cloudflare token\n}\n", 2, "dns: DNS providers are not supported"),
    ("{\n\tech public.example\n}\n", 2, "ech: encrypted ClientHello is not supported"),
    ("{\n\tcert_issuer\n}\n", 2, "wrong argument count"),
    ("{\n\tcert_issuer internal {\n\t\tlifetime forever\n\t}\n}\n", 3, "bad duration value 'forever'"),
    ("{\n\tcert_lifetime 90\n}\n", 2, "bad duration value '90'"),
    ("{\n\tstorage_clean_interval never\n}\n", 2, "bad duration value 'never'"),
    ("{\n\tpreferred_chains {\n\t}\n}\n", 2, "no options for preferred_chains received"),
    ("{\n\tpreferred_chains {\n\t\troot_common_name A\n\t\tany_common_name B\n\t}\n}\n", 4,
     "can't set any_common_name when root_common_name is already set"),
    ("{\n\ton_demand_tls {\n\t\task http://a\n\t\tpermission http http://b\n\t}\n}\n", 4,
     "on-demand TLS permission module (or 'ask') already specified"),
    ("{\n\ton_demand_tls {\n\t\tpermission ldap\n\t}\n}\n", 3, "unknown permission module 'ldap'"),
    ("{\n\ton_demand_tls {\n\t\tburst 5\n\t}\n}\n", 3, "'burst' option is no longer supported"),
    ("{\n\trenewal_window_ratio 0\n}\n", 2, "must be between 0 and 1 (exclusive)"),
    ("{\n\tpki {\n\t\tca {\n\t\t\trenewal_window_ratio 2\n\t\t}\n\t}\n}\n", 4, "must be a number in (0, 1]"),
    ("{\n\tpki {\n\t\tauthority x\n\t}\n}\n", 3, "unrecognized subdirective 'authority'"),
    ("{\n\tpki {\n\t\tca {\n\t\t\troot {\n\t\t\t\tcertificate x\n\t\t\t}\n\t\t}\n\t}\n}\n", 5,
     "unrecognized subdirective 'certificate'"),
    ("{\n\ttls_resolvers\n}\n", 2, "wrong argument count"),
])
def test_bad_options_name_the_line(text: str, line: int, message: str, adapt_error: AdaptError) -> None:
    assert message in str(adapt_error(text + "a.example {\n}\n", line))
