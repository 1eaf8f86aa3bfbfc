"""The client IP behind trusted proxies, as `{client_ip}` shows it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


def site(servers_block: str) -> str:
    return "{\n\tservers {\n" + servers_block + "\t}\n}\n:8080 {\n\trespond \"{client_ip}\"\n}\n"


@pytest.mark.parametrize(
    ("servers_block", "forwarded", "expected"),
    [
        ("", "203.0.113.9", "127.0.0.1"),  # untrusted peer: headers ignored
        ("\t\ttrusted_proxies static 127.0.0.1/8\n", "203.0.113.9, 10.0.0.1", "203.0.113.9"),
        ("\t\ttrusted_proxies static 127.0.0.1/8\n\t\ttrusted_proxies_strict\n", "203.0.113.9, 198.51.100.7", "198.51.100.7"),
        ("\t\ttrusted_proxies static private_ranges\n\t\ttrusted_proxies_strict\n", "203.0.113.9, 10.0.0.1", "203.0.113.9"),
        ("\t\ttrusted_proxies static 127.0.0.1/8\n", "not-an-ip", "127.0.0.1"),
    ],
)
def test_client_ip(serve: Any, servers_block: str, forwarded: str, expected: str) -> None:
    with serve(site(servers_block)) as server:
        response = httpx.get(server.url("/"), headers={"X-Forwarded-For": forwarded})
        assert response.text == expected


def test_custom_client_ip_headers(serve: Any) -> None:
    block = "\t\ttrusted_proxies static 127.0.0.1\n\t\tclient_ip_headers X-Real-IP\n"
    with serve(site(block)) as server:
        response = httpx.get(server.url("/"), headers={"X-Real-IP": "192.0.2.4", "X-Forwarded-For": "198.51.100.1"})
        assert response.text == "192.0.2.4"
