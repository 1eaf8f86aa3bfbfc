"""Building apps.tls and apps.pki from the sites: which automation policies exist, how
they merge, and when the apps are left out."""

from __future__ import annotations

from typing import Any, Callable

from rws.rwsfile.addresses import parse_address
from rws.rwsfile.directives import AdaptState, ConfigValue
from rws.rwsfile.parse import Token
from rws.rwsfile.sites import ListenerAddress, Pairing, SiteBlock
from rws.tls.adapt import build_pki_app, build_tls_app

Adapt = Callable[[str], dict[str, Any]]


def apps(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("apps", {})


def test_plain_sites_need_no_tls_app(adapt: Adapt) -> None:
    config = adapt("example.com {\n\trespond hi\n}\nlocalhost {\n}\n")
    assert "tls" not in apps(config) and "pki" not in apps(config)


def test_http_only_servers_get_no_policies(adapt: Adapt) -> None:
    config = adapt("http://a.example {\n}\nhttp://b.example:9000 {\n}\n:8080 {\n\ttls internal\n}\n")
    assert apps(config)["tls"]["automation"]["policies"] == [{"issuers": [{"module": "internal"}]}]


def test_a_specific_name_under_a_wildcard_keeps_its_own_policy(adapt: Adapt) -> None:
    # the wildcard's policy differs (on-demand), so foo.tld must not fall through to it
    config = adapt("{\n\tlocal_certs\n}\n*.tld, *.*.tld {\n\ttls {\n\t\ton_demand\n\t}\n}\nfoo.tld, www.foo.tld {\n}\n")
    assert apps(config)["tls"]["automation"]["policies"] == [
        {"subjects": ["foo.tld", "www.foo.tld"], "issuers": [{"module": "internal"}]},
        {"subjects": ["*.*.tld", "*.tld"], "issuers": [{"module": "internal"}], "on_demand": True},
        {"issuers": [{"module": "internal"}]},
    ]


def test_global_email_with_hostless_sites_makes_one_catch_all(adapt: Adapt) -> None:
    config = adapt("{\n\temail me@example.com\n}\n:82 {\n\trespond hi\n}\n:83 {\n\trespond hi\n}\nabc.de {\n\trespond hi\n}\n")
    assert apps(config)["tls"]["automation"]["policies"] == [{"issuers": [
        {"module": "acme", "email": "me@example.com"},
        {"module": "acme", "ca": "https://acme.zerossl.com/v2/DV90", "email": "me@example.com"},
    ]}]


def test_internal_names_never_get_the_default_acme_issuers(adapt: Adapt) -> None:
    config = adapt("{\n\temail me@example.com\n}\nlocalhost {\n}\nexample.com {\n}\n")
    assert apps(config)["tls"]["automation"]["policies"] == [{
        "subjects": ["example.com"],
        "issuers": [{"module": "acme", "email": "me@example.com"},
                    {"module": "acme", "ca": "https://acme.zerossl.com/v2/DV90", "email": "me@example.com"}],
    }]


def test_same_settings_merge_into_one_policy(adapt: Adapt) -> None:
    config = adapt("a.a {\n\ttls internal\n}\nhttp://b.b https://b.b:8443 {\n\ttls internal\n}\n")
    assert apps(config)["tls"]["automation"]["policies"] == [
        {"subjects": ["a.a", "b.b"], "issuers": [{"module": "internal"}]},
    ]


def test_the_same_ca_shortcut_on_several_ports_is_one_policy(adapt: Adapt) -> None:
    site = " {\n\ttls {\n\t\tca https://foobar\n\t}\n}\n"
    config = adapt("example.com" + site + "example.com:8443" + site + "example.com:8444" + site)
    assert apps(config)["tls"]["automation"]["policies"] == [
        {"subjects": ["example.com"], "issuers": [{"module": "acme", "ca": "https://foobar"}]},
    ]


# --- build_pki_app with CAs that sites define ("pki.ca" values, as acme_server would add) --


def _site(key: str, values: list[ConfigValue]) -> SiteBlock:
    block = SiteBlock(keys=(Token(key, "Rwsfile", 1),), entries=(), addresses=[parse_address(key).normalize()])
    for value in values:
        block.pile.setdefault(value.cls, []).append(value)
    return block


def test_sites_add_cas_without_replacing_the_global_ones() -> None:
    site = _site("acme.example", [ConfigValue("pki.ca", {"id": "local", "name": "ignored"}),
                                  ConfigValue("pki.ca", {"id": "acme", "name": "ACME CA"})])
    pairings = [Pairing([ListenerAddress(":443", ())], [site])]
    options = {"pki": {"local": {"name": "Mine"}}, "skip_install_trust": True}
    assert build_pki_app(pairings, options, AdaptState(options=options)) == {"certificate_authorities": {
        "local": {"name": "Mine", "install_trust": False},
        "acme": {"name": "ACME CA", "install_trust": False},
    }}
    assert options["pki"] == {"local": {"name": "Mine"}}  # the parsed options stay as they were


def test_build_tls_app_is_none_without_anything_to_say() -> None:
    site = _site("example.com", [])
    pairings = [Pairing([ListenerAddress(":443", ())], [site])]
    assert build_tls_app(pairings, {}, AdaptState(options={})) is None
    assert build_pki_app(pairings, {}, AdaptState(options={})) is None
