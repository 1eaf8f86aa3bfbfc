"""consolidate_conn_policies: how a server's TLS connection policies are merged."""

from __future__ import annotations

import pytest

from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text
from rws.tls.adapt import consolidate_conn_policies, policy_settings_empty


def test_catch_all_policies_move_after_matching_ones() -> None:
    policies = [{"alpn": ["h2"]}, {"match": {"sni": ["a.example"]}, "protocol_min": "tls1.3"}]
    assert consolidate_conn_policies(policies) == [
        {"match": {"sni": ["a.example"]}, "protocol_min": "tls1.3"},
        {"alpn": ["h2"]},
    ]


def test_identical_policies_collapse_into_one() -> None:
    policies = [{"match": {"sni": ["a.example"]}}, {"match": {"sni": ["a.example"]}}, {}]
    assert consolidate_conn_policies(policies) == [{"match": {"sni": ["a.example"]}}, {}]


def test_neighbours_with_equal_settings_join_their_sni_lists() -> None:
    policies = [
        {"match": {"sni": ["a.example"]}, "protocol_min": "tls1.3"},
        {"match": {"sni": ["b.example"]}, "protocol_min": "tls1.3"},
        {},
    ]
    assert consolidate_conn_policies(policies) == [
        {"match": {"sni": ["a.example", "b.example"]}, "protocol_min": "tls1.3"},
        {},
    ]


def test_policies_with_different_settings_stay_apart() -> None:
    policies = [
        {"match": {"sni": ["a.example"]}, "protocol_min": "tls1.3"},
        {"match": {"sni": ["b.example"]}, "protocol_min": "tls1.2"},
    ]
    assert consolidate_conn_policies(policies) == policies


def test_same_match_merges_fields_and_any_tags() -> None:
    policies = [
        {"match": {"sni": ["a.example"]}, "certificate_selection": {"any_tag": ["cert0"]}},
        {"match": {"sni": ["a.example"]}, "alpn": ["h2"], "certificate_selection": {"any_tag": ["cert1"]}},
    ]
    assert consolidate_conn_policies(policies) == [
        {"match": {"sni": ["a.example"]}, "alpn": ["h2"], "certificate_selection": {"any_tag": ["cert0", "cert1"]}},
    ]


@pytest.mark.parametrize(("key", "a", "b", "message"), [
    ("alpn", ["h2"], ["http/1.1"], "conflicting ALPN: [h2] vs. [http/1.1]"),
    ("cipher_suites", ["TLS_AES_128_GCM_SHA256"], ["TLS_AES_256_GCM_SHA384"],
     "conflicting cipher suites: [TLS_AES_128_GCM_SHA256] vs. [TLS_AES_256_GCM_SHA384]"),
    ("curves", ["x25519"], ["secp256r1"], "conflicting curves: [x25519] vs. [secp256r1]"),
    ("protocol_min", "tls1.2", "tls1.3", "conflicting min protocol: tls1.2 vs. tls1.3"),
    ("protocol_max", "tls1.2", "tls1.3", "conflicting max protocol: tls1.2 vs. tls1.3"),
    ("default_sni", "a.example", "b.example", "conflicting default SNI: a.example vs. b.example"),
    ("fallback_sni", "a.example", "b.example", "conflicting fallback SNI: a.example vs. b.example"),
])
def test_same_match_with_conflicting_values_is_an_error(key: str, a: object, b: object, message: str) -> None:
    policies = [{"match": {"sni": ["x.example"]}, key: a}, {"match": {"sni": ["x.example"]}, key: b}]
    with pytest.raises(ValueError) as info:
        consolidate_conn_policies(policies)
    assert str(info.value) == "two policies with same match criteria have " + message


def test_client_auth_only_in_the_later_policy_conflicts() -> None:
    policies = [{"match": {"sni": ["x.example"]}, "alpn": ["h2"]},
                {"match": {"sni": ["x.example"]}, "client_authentication": {"mode": "require"}}]
    with pytest.raises(ValueError, match="conflicting client auth configuration"):
        consolidate_conn_policies(policies)


def test_conflicting_cert_selections_are_an_error() -> None:
    policies = [{"match": {"sni": ["x.example"]}, "certificate_selection": {"all_tags": ["a"]}},
                {"match": {"sni": ["x.example"]}, "certificate_selection": {"all_tags": ["b"]}}]
    with pytest.raises(ValueError, match="conflicting cert selections"):
        consolidate_conn_policies(policies)


def test_settings_empty_ignores_the_match() -> None:
    assert policy_settings_empty({"match": {"sni": ["a.example"]}})
    assert policy_settings_empty({})
    assert not policy_settings_empty({"alpn": ["h2"]})


def test_conflicting_tls_settings_for_one_site_name_fail_the_adapt() -> None:
    text = (
        "https://a.example:8443 {\n"
        "\ttls {\n"
        "\t\tprotocols tls1.3\n"
        "\t}\n"
        "}\n"
        "https://a.example:8443/api/* {\n"
        "\ttls {\n"
        "\t\tprotocols tls1.2\n"
        "\t}\n"
        "}\n"
    )
    with pytest.raises(RwsfileError, match="conflicting min protocol"):
        adapt_text(text, "Rwsfile")
