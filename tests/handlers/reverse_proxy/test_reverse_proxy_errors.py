"""Bad `reverse_proxy`, `forward_auth` and `copy_response*` input: one RwsfileError naming file:line."""

from __future__ import annotations

import pytest


def proxy(*lines: str, upstreams: str = "localhost:9000") -> str:
    """A site whose `reverse_proxy` block holds `lines`; the first of them is on line 3."""
    body = "".join(f"\t\t{line}\n" for line in lines)
    return f":8080 {{\n\treverse_proxy {upstreams} {{\n{body}\t}}\n}}\n"


def transport(*lines: str) -> str:
    """A `transport http` block holding `lines`; the first of them is on line 4."""
    return proxy("transport http {", *(f"\t{line}" for line in lines), "}")


def line2(directive: str) -> str:
    return f":8080 {{\n\t{directive}\n}}\n"


UPSTREAMS = [
    ("http://localhost:9000/api", "for now, URLs for proxy upstreams only support scheme, host, and port components"),
    ("http://localhost:9000?x=1", "only support scheme, host, and port components"),
    ("http://localhost:9000#top", "only support scheme, host, and port components"),
    ("ws://localhost:9000", "the scheme ws:// is only supported in browsers; use http:// instead"),
    ("wss://localhost:9000", "the scheme wss:// is only supported in browsers; use https:// instead"),
    ("ftp://localhost:9000", "unsupported URL scheme ftp://"),
    ("https://localhost:80", "conflicting scheme (https://) and port (:80, the HTTP port)"),
    ("http://localhost:443", "conflicting scheme (http://) and port (:443, the HTTPS port)"),
    ("h2c://localhost:443", "conflicting scheme (h2c://) and port (:443, the HTTPS port)"),
    ("https://{http.request.host}", "placeholders are not allowed when an upstream address contains a scheme"),
    ("localhost:70000", 'invalid start port: parsing "70000": value out of range'),
    ("localhost:8000-65536", 'invalid end port: parsing "65536": value out of range'),
    ("localhost:9000-8000", "end port must not be less than start port"),
    ("localhost:http", 'invalid start port: parsing "http": invalid syntax'),
    ("http://localhost:abc", 'invalid port ":abc" after host'),
    ("http://localhost:1-2-3", "port range invalid: 1-2-3"),
    ("http://[::1", "missing ']' in host"),
    ("1http://localhost", "first path segment in URL cannot contain colon"),
    ("http://local%host", "invalid"),
    ("http://localhost:9000 https://localhost:9443",
     "all proxy upstreams must use the same scheme (transport protocol); expecting 'http://' but got 'https://'"),
    ("localhost:1 http://localhost:2 localhost:3", "expecting 'http://' but got '://'"),
    ("unix//run/app.sock|0444", "owner of the socket requires '-w-'"),
]


@pytest.mark.parametrize("upstreams, message", UPSTREAMS)
def test_bad_upstream_address(adapt_error, upstreams, message):
    err = adapt_error(line2(f"reverse_proxy {upstreams}"), 2)
    assert message in err.message
    assert err.message.startswith("parsing upstream '")


def test_bad_upstream_in_to_names_its_line(adapt_error):
    assert "the scheme ws://" in adapt_error(proxy("lb_policy first", "to ws://localhost"), 4).message


SUBDIRECTIVES = [
    # unknown names, with a suggestion where one is close
    (proxy("lb_polcy first"), 3, "unrecognized subdirective 'lb_polcy' (did you mean 'lb_policy'?)"),
    (proxy("healthuri /"), 3, "(did you mean 'health_uri'?)"),
    (proxy("buffer_requests"), 3, "(Caddy 2.6 syntax; use 'request_buffers')"),
    (proxy("max_buffer_size 1MB"), 3, "unrecognized subdirective 'max_buffer_size'"),
    # argument counts
    (proxy("to"), 3, "wrong argument count or unexpected line ending after 'to'"),
    (proxy("lb_retries"), 3, "wrong argument count"),
    (proxy("lb_try_duration 5s 6s"), 3, "wrong argument count"),
    (proxy("health_uri"), 3, "wrong argument count"),
    (proxy("health_follow_redirects yes"), 3, "wrong argument count"),
    (proxy("method"), 3, "wrong argument count"),
    (proxy("rewrite /a /b"), 3, "wrong argument count"),
    (proxy("header_up"), 3, "wrong argument count"),
    (proxy("header_down A b c d"), 3, "wrong argument count"),
    (proxy("unhealthy_status"), 3, "wrong argument count"),
    (proxy("request_buffers 1MB 2MB"), 3, "wrong argument count"),
    (proxy("trusted_proxies"), 3, "wrong argument count"),
    (proxy("verbose_logs please"), 3, "wrong argument count"),
    (proxy("health_headers X {", "\tHost a", "}"), 3, "wrong argument count"),
    # values
    (proxy("lb_retries many"), 3, "bad lb_retries number 'many': expected an integer"),
    (proxy("lb_try_duration 5"), 3, "bad duration value '5': expected a duration"),
    (proxy("lb_try_interval soon"), 3, "bad interval value 'soon'"),
    (proxy("health_interval 30"), 3, "bad interval value '30'"),
    (proxy("health_timeout 1x"), 3, "bad timeout value '1x'"),
    (proxy("health_status ok"), 3, "bad status value 'ok'"),
    (proxy("health_status axx"), 3, "bad status value 'axx'"),
    (proxy("health_port http"), 3, "bad port number 'http'"),
    (proxy("health_port 70000"), 3, "bad port number '70000': out of range"),
    (proxy("health_passes two"), 3, "bad passes count 'two'"),
    (proxy("health_fails 1.5"), 3, "bad fails count '1.5'"),
    (proxy("health_upstream localhost"), 3, "health_upstream is malformed 'localhost'"),
    (proxy("health_upstream localhost:http"), 3, "bad port number 'localhost:http'"),
    (proxy("health_upstream localhost:9100", "health_port 9101"), 4,
     "the 'health_port' subdirective is ignored if 'health_upstream' is used!"),
    (proxy("max_fails x"), 3, "bad maximum fail count 'x'"),
    (proxy("fail_duration 10"), 3, "bad duration value '10'"),
    (proxy("unhealthy_status 500 5x"), 3, "bad status value '5x'"),
    (proxy("unhealthy_request_count lots"), 3, "bad maximum connection count 'lots'"),
    (proxy("unhealthy_latency fast"), 3, "bad duration value 'fast'"),
    (proxy("flush_interval often"), 3, "bad duration value 'often'"),
    (proxy("stream_close_delay later"), 3, "bad duration value 'later'"),
    (proxy("request_buffers lots"), 3, "invalid byte size 'lots'"),
    (proxy("stream_buffer_size -1"), 3, "invalid byte size '-1'"),
    (proxy("trusted_proxies 10.0.0.0/33"), 3, "prefix length out of range"),
    (proxy("trusted_proxies not-an-ip"), 3, "not-an-ip"),
    (proxy("header_up ?X-Default v"), 3, "the default header modifier ('?') can only be used on response headers"),
    (proxy("header_down ?X-Default v"), 3, "the default header modifier ('?') can only be used on response headers"),
    (proxy("verbose_logs", "verbose_logs"), 4, "verbose_logs already specified"),
    (proxy("lb_retry_match"), 3, "lb_retry_match needs a matcher"),
    (proxy("lb_retry_match pathh /x"), 3, "unrecognized matcher type 'pathh' (did you mean 'path'?)"),
    # load balancing policies
    (proxy("lb_policy"), 3, "wrong argument count"),
    (proxy("lb_policy roundrobin"), 3, "unrecognized load balancing policy 'roundrobin' (did you mean 'round_robin'?)"),
    (proxy("lb_policy first extra"), 3, "wrong argument count or unexpected line ending after 'extra'"),
    (proxy("lb_policy first", "lb_policy random"), 4, "load balancing selection policy already specified"),
    (proxy("lb_policy round_robin {", "\tfallback first", "}"), 4, "policy 'round_robin' takes no options block"),
    (proxy("lb_policy random_choose"), 3, "wrong argument count"),
    (proxy("lb_policy random_choose two"), 3, "bad choice value 'two'"),
    (proxy("lb_policy random_choose 1"), 3, "choose must be at least 2"),
    (proxy("lb_policy weighted_round_robin"), 3, "wrong argument count"),
    (proxy("lb_policy weighted_round_robin 1 -1"), 3, "invalid weight value '-1': weight should be non-negative"),
    (proxy("lb_policy weighted_round_robin 0 0"), 3, "requires at least one upstream with a positive weight"),
    (proxy("lb_policy header"), 3, "wrong argument count"),
    (proxy("lb_policy query"), 3, "wrong argument count"),
    (proxy("lb_policy query k {", "\tfallbak first", "}"), 4, "unrecognized query policy option 'fallbak' (did you mean 'fallback'?)"),
    (proxy("lb_policy header X {", "\tfallback nothing", "}"), 4, "unrecognized fallback load balancing policy 'nothing'"),
    (proxy("lb_policy header X {", "\tfallback first", "\tfallback random", "}"), 5, "fallback selection policy already specified"),
    (proxy("lb_policy cookie a b c"), 3, "wrong argument count"),
    (proxy("lb_policy cookie {", "\tmax_age -5m", "}"), 4, "max_age should be non-zero and positive"),
    (proxy("lb_policy cookie {", "\tmax_age 1h", "\tmax_age 2h", "}"), 5, "cookie max_age already specified"),
    (proxy("lb_policy cookie {", "\tmax_age", "}"), 4, "wrong argument count"),
    # dynamic upstreams
    (proxy("dynamic"), 3, "wrong argument count"),
    (proxy("dynamic dns"), 3, "unrecognized dynamic upstream source 'dns'"),
    (proxy("dynamic a x", "dynamic srv y"), 4, "dynamic upstreams already specified"),
    (proxy("dynamic a name 80 extra"), 3, "wrong argument count"),
    (proxy("dynamic a {", "\tversions ipv5", "}"), 4, "unsupported version: 'ipv5'"),
    (proxy("dynamic a {", "\tversions", "}"), 4, "must specify at least one version"),
    (proxy("dynamic a name {", "\tname other", "}"), 4, "a name has already been specified"),
    (proxy("dynamic a {", "\tresolvers", "}"), 4, "must specify at least one resolver address"),
    (proxy("dynamic a {", "\trefresh never", "}"), 4, "bad refresh interval 'never'"),
    (proxy("dynamic a {", "\tprot 80", "}"), 4, "unrecognized a option 'prot' (did you mean 'port'?)"),
    (proxy("dynamic srv a b"), 3, "wrong argument count"),
    (proxy("dynamic srv {", "\tservice a", "\tservice b", "}"), 5, "srv service has already been specified"),
    (proxy("dynamic srv {", "\tgrace_period forever", "}"), 4, "bad grace period value 'forever'"),
    (proxy("dynamic multi x"), 3, "wrong argument count"),
    (proxy("dynamic multi {", "\tdns x", "}"), 4, "unrecognized upstream source 'dns'"),
    # transports
    (proxy("transport"), 3, "wrong argument count"),
    (proxy("transport htp"), 3, "unrecognized transport 'htp' (did you mean 'http'?)"),
    (proxy("transport fastcgi"), 3, "the fastcgi transport is not supported by rws"),
    (proxy("transport http", "transport http"), 4, "transport already specified"),
    (proxy("transport http extra"), 3, "wrong argument count"),
    (transport("dial_timout 1s"), 4, "unrecognized http transport option 'dial_timout' (did you mean 'dial_timeout'?)"),
    (transport("dial_timeout"), 4, "wrong argument count"),
    (transport("dial_timeout 3"), 4, "bad timeout value '3'"),
    (transport("read_buffer big"), 4, "invalid read buffer size 'big'"),
    (transport("max_response_header 1 MB"), 4, "wrong argument count"),
    (transport("versions"), 4, "wrong argument count"),
    (transport("versions 1.0"), 4, "unsupported HTTP version '1.0'; supported versions: 1.1, 2, h2c, 3"),
    (transport("versions 2 3"), 4, "if HTTP/3 is enabled to the upstream, no other HTTP versions are supported"),
    (transport("tls_renegotiation sometimes"), 4, "bad tls_renegotiation value 'sometimes'"),
    (transport("tls_client_auth a b c"), 4, "wrong argument count"),
    (transport("tls_insecure_skip_verify yes"), 4, "wrong argument count"),
    (transport("tls_timeout 10"), 4, "bad timeout value '10'"),
    (transport("tls_curves"), 4, "wrong argument count"),
    (transport("tls_except_ports"), 4, "wrong argument count"),
    (transport("tls_trusted_ca_certs"), 4, "wrong argument count"),
    (transport("tls_trust_pool"), 4, "wrong argument count"),
    (transport("tls_trust_pool system"), 4, "unsupported trust pool source 'system'"),
    (transport("tls_trust_pool file"), 4, "no certificates specified"),
    (transport("tls_trust_pool inline {", "\ttrust_pem x", "}"), 5, "unrecognized inline trust pool option 'trust_pem'"),
    (transport("tls_trust_pool file a.pem", "tls_trusted_ca_certs b.pem"), 5,
     "cannot specify both 'tls_trust_pool' and 'tls_trusted_ca_certs'"),
    (transport("tls_trusted_ca_certs b.pem", "tls_trust_pool file a.pem"), 5,
     "cannot specify both 'tls_trust_pool' and 'tls_trusted_ca_certs'"),
    (transport("tls_trust_pool file a.pem", "tls_trust_pool file b.pem"), 5, "cannot specify 'tls_trust_pool' twice"),
    (transport("keepalive"), 4, "wrong argument count"),
    (transport("keepalive forever"), 4, "bad duration value 'forever'"),
    (transport("keepalive_idle_conns lots"), 4, "bad integer value 'lots'"),
    (transport("max_conns_per_host many"), 4, "bad integer value 'many'"),
    (transport("compression maybe"), 4, "bad compression value 'maybe'"),
    (transport("proxy_protocol v3"), 4, "invalid proxy protocol version 'v3'"),
    (transport("network_proxy socks5 x"), 4, "unrecognized network proxy source 'socks5'"),
    (transport("network_proxy url"), 4, "wrong argument count"),
    (transport("network_proxy none extra"), 4, "wrong argument count"),
    (transport("resolvers"), 4, "must specify at least one resolver address"),
    (transport("local_address 10.0.0.1:1000-2000"), 4, "local_address must be a single address, not a port range"),
    (transport("local_address udp/10.0.0.1"), 4, "local_address must be a TCP address"),
    (proxy("transport http {", "\ttls", "}", upstreams="http://localhost:9000"), 3,
     "upstream address scheme is HTTP but transport is configured for HTTP+TLS (HTTPS)"),
    # response matchers, handle_response, replace_status
    (proxy("@a status 200", "@a status 300"), 4, "matcher is defined more than once: @a"),
    (proxy("@a code 200"), 3, "unrecognized response matcher 'code'"),
    (proxy("@a status ok"), 3, "bad status value 'ok'"),
    (proxy("@a status"), 3, "wrong argument count"),
    (proxy("@a header X"), 3, "malformed header matcher: expected both field and value"),
    (proxy("handle_response header Foo {", "\trespond x", "}"), 3,
     "too many arguments for 'handle_response': only a single response matcher name is allowed, but got: [header Foo]"),
    (proxy("handle_response ok {", "\trespond x", "}"), 3, "must use a named response matcher, starting with '@'"),
    (proxy("handle_response @nope {", "\trespond x", "}"), 3, "no named response matcher defined with name 'nope'"),
    (proxy("handle_response {", "\trespnd x", "}"), 4, "unrecognized directive: respnd"),
    (proxy("replace_status"), 3, "must have one or two arguments: an optional response matcher, and a status code"),
    (proxy("replace_status @a 200 300"), 3, "must have one or two arguments"),
    (proxy("replace_status a 200"), 3, "must use a named response matcher, starting with '@'"),
    (proxy("replace_status @a 200", "@a status 500"), 3, "no named response matcher defined with name 'a'"),
    (proxy("replace_status teapot"), 3, "bad status code 'teapot'"),
    (proxy("replace_status 200 {", "\trespond x", "}"), 3, "cannot define routes for 'replace_status', use 'handle_response' instead."),
]


@pytest.mark.parametrize("text, line, message", SUBDIRECTIVES)
def test_bad_subdirective(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


OTHER_DIRECTIVES = [
    (line2("copy_response"), 2, "copy_response is only valid inside reverse_proxy's handle_response blocks"),
    (line2("copy_response_headers"), 2, "copy_response_headers is only valid inside reverse_proxy's handle_response blocks"),
    (proxy("handle_response {", "\tcopy_response 200 300", "}"), 4, "wrong argument count"),
    (proxy("handle_response {", "\tcopy_response ok", "}"), 4, "bad status code 'ok': expected a positive number"),
    (proxy("handle_response {", "\tcopy_response {", "\t\tstatus", "\t}", "}"), 5, "wrong argument count"),
    (proxy("handle_response {", "\tcopy_response {", "\t\tstatus abc", "\t}", "}"), 5, "bad status code 'abc'"),
    (proxy("handle_response {", "\tcopy_response {", "\t\tcode 200", "\t}", "}"), 5, "unrecognized subdirective 'code'"),
    (proxy("handle_response {", "\tcopy_response 201 {", "\t\tstatus 202", "\t}", "}"), 4, "not both"),
    (proxy("handle_response {", "\tcopy_response_headers X", "}"), 4, "wrong argument count"),
    (proxy("handle_response {", "\tcopy_response_headers {", "\t\tinclude A", "\t\texclude B", "\t}", "}"), 4,
     "cannot define both 'exclude' and 'include' lists at the same time"),
    (proxy("handle_response {", "\tcopy_response_headers {", "\t\tinclde A", "\t}", "}"), 5,
     "unrecognized subdirective 'inclde' (did you mean 'include'?)"),
    (":8080 {\n\tforward_auth localhost:9091\n}\n", 2, "the 'uri' subdirective is required"),
    (":8080 {\n\tforward_auth localhost:9091 {\n\t\tcopy_headers A\n\t}\n}\n", 2, "the 'uri' subdirective is required"),
    (":8080 {\n\tforward_auth localhost:9091 {\n\t\turi /a\n\t\turi /b\n\t}\n}\n", 4, "cannot re-declare uri: /b"),
    (":8080 {\n\tforward_auth localhost:9091 {\n\t\turi\n\t}\n}\n", 3, "wrong argument count"),
    (":8080 {\n\tforward_auth localhost:9091 {\n\t\turi /a /b\n\t}\n}\n", 3, "wrong argument count"),
    (":8080 {\n\tforward_auth localhost:9091 {\n\t\turi /a\n\t\tcopy_headers\n\t}\n}\n", 4, "wrong argument count"),
    (":8080 {\n\tforward_auth localhost:9091 {\n\t\turi /a\n\t\tcopy_header A\n\t}\n}\n", 4,
     "unrecognized subdirective 'copy_header'"),
    (":8080 {\n\tforward_auth localhost:9091 {\n\t\turi /a\n\t\ttransport http {\n\t\t\turi /b\n\t\t}\n\t}\n}\n", 5,
     "unrecognized http transport option 'uri'"),
    (":8080 {\n\tforward_auth ws://localhost:9091 {\n\t\turi /a\n\t}\n}\n", 2, "the scheme ws://"),
]


@pytest.mark.parametrize("text, line, message", OTHER_DIRECTIVES)
def test_bad_related_directive(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message
