"""Upstream and network addresses read as Caddy reads them.

The expectations were produced by Go's net.SplitHostPort and net/url.Parse running
Caddy's parseUpstreamDialAddress/ParseNetworkAddress logic on the same inputs.
"""

from __future__ import annotations

import pytest

from rws.handlers.reverse_proxy.dial_addresses import (
    AddressError,
    NetworkAddress,
    join_host_port,
    parse_network_address,
    parse_upstream,
    split_host_port,
)

# input -> (scheme, dials), or None when Caddy rejects it
UPSTREAMS = {
    "localhost:80": ("", ["localhost:80"]),
    "localhost": ("", ["localhost:80"]),
    "[::1]:80": ("", ["[::1]:80"]),
    "::1": ("", ["[::1]:80"]),
    ":80": ("", [":80"]),
    "a:b:c": ("", ["[a:b:c]:80"]),
    "localhost:": ("", ["localhost:80"]),
    "localhost:8001-8003": ("", ["localhost:8001", "localhost:8002", "localhost:8003"]),
    "unix//run/x.sock": ("", ["unix//run/x.sock"]),
    "unix+h2c//run/x.sock": ("h2c", ["unix//run/x.sock"]),
    "tcp/localhost:8000-8001": ("", ["localhost:8000", "localhost:8001"]),
    "fd/3": ("", ["fd/3"]),
    "http://localhost": ("http", ["localhost:80"]),
    "https://[::1]:8443": ("https", ["[::1]:8443"]),
    "http://localhost:9000-9002": ("http", ["localhost:9000", "localhost:9001", "localhost:9002"]),
    "http://[::1]:9000-9001": ("http", ["[::1]:9000", "[::1]:9001"]),
    "h2c://x": ("h2c", ["x:80"]),
    "HTTP://Example.com:8080": ("http", ["Example.com:8080"]),
    "{upstream}": ("", ["{upstream}"]),
    "{upstream}:80": ("", ["{upstream}:80"]),
    "localhost:{port}": ("", ["localhost:{port}"]),
    "{host}:8001-8002": ("", ["{host}:8001", "{host}:8002"]),
    "http://user@host:81": ("http", ["host:81"]),
    "http://host:80?": ("http", ["host:80"]),
    "http://host:80#": ("http", ["host:80"]),
    "https://%C3%A9.example": ("https", ["é.example:443"]),
    "localhost:9-5": None,
    "localhost:65536": None,
    "localhost:+80": None,
    "[a]b:80": None,
    "http://local%host": None,
    "http://u[x]@host": None,
    "http://host:1-2-3": None,
    "http://host/": None,
}


@pytest.mark.parametrize("address", sorted(UPSTREAMS))
def test_upstream_address(address):
    expected = UPSTREAMS[address]
    if expected is None:
        with pytest.raises(AddressError):
            parse_upstream(address)
        return
    upstream = parse_upstream(address)
    assert (upstream.scheme, list(upstream.dials)) == expected


@pytest.mark.parametrize("hostport, expected", [
    ("localhost:80", ("localhost", "80")),
    ("[::1]:80", ("::1", "80")),
    (":80", ("", "80")),
    ("localhost:", ("localhost", "")),
    ("{host}:8001-8002", ("{host}", "8001-8002")),
    ("[fe80::1%25eth0]:80", ("fe80::1%25eth0", "80")),
])
def test_split_host_port(hostport, expected):
    assert split_host_port(hostport) == expected


@pytest.mark.parametrize("hostport, reason", [
    ("localhost", "missing port in address"),
    ("::1", "too many colons in address"),
    ("[::1]", "missing port in address"),
    ("[::1", "missing ']' in address"),
    ("[a]b:80", "missing port in address"),
    ("[a]:b:80", "too many colons in address"),
    ("a]:80", "unexpected ']' in address"),
    ("a[:80", "unexpected '[' in address"),
])
def test_split_host_port_errors(hostport, reason):
    with pytest.raises(AddressError) as info:
        split_host_port(hostport)
    assert reason in str(info.value)


def test_join_host_port_brackets_ipv6():
    assert join_host_port("::1", "80") == "[::1]:80"
    assert join_host_port("localhost", "80") == "localhost:80"


@pytest.mark.parametrize("address, network, port, expected", [
    ("localhost:8000-8010", "tcp", 0, NetworkAddress("tcp", "localhost", 8000, 8010)),
    ("localhost", "tcp", 0, NetworkAddress("tcp", "localhost", 0, 0)),
    ("1.1.1.1", "udp", 53, NetworkAddress("udp", "1.1.1.1", 53, 53)),
    ("UDP/[::1]:5353", "udp", 53, NetworkAddress("udp", "::1", 5353, 5353)),
    ("unix//run/a.sock", "tcp", 0, NetworkAddress("unix", "/run/a.sock")),
])
def test_parse_network_address(address, network, port, expected):
    assert parse_network_address(address, network, port) == expected
