"""The TLS parts of `rws adapt` equal those of the installed `caddy adapt` (2.6.2), for
constructs on which 2.6.2 and the latest Caddy agree. (Where they differ, the latest's
output is pinned by golden pairs in tests/rwsfile/cases/tls_*.)"""

from __future__ import annotations

from typing import Any, Callable

import pytest

CASES = {
    "tls_internal": """
        localhost {
            tls internal
        }
    """,
    "cert_and_key_files": """
        example.com {
            tls cert.pem key.pem
        }
    """,
    "two_cert_files_get_two_tags": """
        a.example.com {
            tls a.pem a.key
        }
        b.example.com {
            tls b.pem b.key
        }
    """,
    "protocols": """
        example.com {
            tls {
                protocols tls1.2 tls1.3
            }
        }
    """,
    "ciphers_curves_alpn": """
        example.com {
            tls {
                ciphers TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                curves x25519 secp256r1
                alpn h2
            }
        }
    """,
    "local_certs_without_email": """
        {
            local_certs
        }
        example.com {
        }
        localhost {
        }
    """,
    "local_certs_with_key_type": """
        {
            local_certs
            key_type p384
        }
        example.com {
        }
    """,
    "local_certs_with_email": """
        {
            local_certs
            email admin@example.com
        }
        example.com {
        }
    """,
    "public_and_internal_names_in_one_site": """
        localhost, example.com {
        }
    """,
    "tls_internal_for_public_and_internal_names": """
        localhost, example.com {
            tls internal
        }
    """,
    "load_folders": """
        example.com {
            tls {
                load /etc/certs /etc/more-certs
            }
        }
    """,
    "ca_shortcut": """
        example.com {
            tls {
                ca https://ca.example/dir
            }
        }
    """,
    "ca_and_ca_root_shortcuts": """
        example.com {
            tls {
                ca https://ca.example/dir
                ca_root /root.pem
            }
        }
    """,
    "issuer_acme_block": """
        example.com {
            tls {
                issuer acme {
                    dir https://x.example/dir
                    test_dir https://y.example/dir
                    timeout 30s
                    disable_http_challenge
                    alt_tlsalpn_port 8443
                    eab kid mac
                    trusted_roots /a.pem /b.pem
                }
            }
        }
    """,
    "issuer_internal_block": """
        example.com {
            tls {
                issuer internal {
                    ca myca
                    lifetime 1h
                }
            }
        }
    """,
    "fallback_issuers": """
        example.com {
            tls {
                issuer acme
                issuer internal
            }
        }
    """,
    "site_key_type_and_plain_site": """
        example.com {
            tls {
                key_type rsa4096
            }
        }
        b.example.com {
        }
    """,
    "ocsp_stapling_off": """
        {
            ocsp_stapling off
        }
        example.com {
        }
    """,
    "automation_intervals": """
        {
            renew_interval 30m
            ocsp_interval 2h
            storage_clean_interval 48h
        }
        example.com {
        }
    """,
    "skip_install_trust": """
        {
            skip_install_trust
        }
        localhost {
        }
    """,
    "hosts_sharing_a_block_with_a_hostless_key": """
        :443, example.com, localhost {
        }
    """,
    "hostless_https_site_with_tls_internal": """
        https:// {
            tls internal
        }
    """,
    "hostless_on_demand_site_with_global_issuer": """
        {
            local_certs
        }
        :443 {
            tls {
                on_demand
            }
        }
        example.com {
        }
    """,
    "http_only_site_has_no_tls_app": """
        http://example.com {
        }
    """,
    "wildcard_with_covered_subdomain": """
        *.example.com {
            tls internal
        }
        foo.example.com {
        }
    """,
    "preferred_chains_in_issuer": """
        example.com {
            tls {
                issuer acme {
                    preferred_chains {
                        root_common_name "ISRG Root X1"
                    }
                }
            }
        }
    """,
    "client_auth_mode": """
        example.com {
            tls {
                client_auth {
                    mode require
                }
            }
        }
    """,
    "ip_addresses_are_internal": """
        127.0.0.1 {
        }
        10.1.1.1, example.com {
        }
    """,
    "on_demand_double_wildcard": """
        *.*.example.com {
            tls {
                on_demand
            }
        }
    """,
    "same_host_on_two_ports": """
        example.com:8443 {
            tls internal
        }
        example.com {
            tls internal
        }
    """,
    "auto_https_off": """
        {
            auto_https off
        }
        :443, example.com {
        }
    """,
    "global_internal_issuer_with_options": """
        {
            cert_issuer internal {
                lifetime 2h
            }
        }
        example.com {
        }
    """,
    "global_issuers_in_fallback_order": """
        {
            cert_issuer acme https://a.example/dir
            cert_issuer internal
        }
        example.com {
        }
        foo.example.com {
            tls {
                key_type ed25519
            }
        }
    """,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tls_parts_match_caddy(name: str, same_tls_as_caddy: Callable[[str], dict[str, Any]]) -> None:
    same_tls_as_caddy(CASES[name])
