"""`reverse_proxy`, `forward_auth`, `copy_response` and `copy_response_headers` as the latest
Caddy adapts them, where Caddy 2.6.2 cannot be the reference (see also the golden pairs
tests/rwsfile/cases/reverse_proxy_*)."""

from __future__ import annotations

from typing import Any

from rws.rwsfile.adapt import adapt_text


def handlers(text: str) -> list[dict[str, Any]]:
    """The handlers of the first server's routes, in order (site subroutes walked)."""
    config, _ = adapt_text(text, "Rwsfile")
    server = next(iter(config["apps"]["http"]["servers"].values()))
    out = []

    def walk(routes: list[dict[str, Any]]) -> None:
        for route in routes:
            for handler in route["handle"]:
                if handler["handler"] == "subroute":
                    walk(handler.get("routes", []))
                else:
                    out.append(handler)

    walk(server["routes"])
    return out


def proxy(text: str) -> dict[str, Any]:
    [handler] = [h for h in handlers(text) if h["handler"] == "reverse_proxy"]
    return handler


def warnings_of(text: str) -> list[str]:
    _, warnings = adapt_text(text, "Rwsfile")
    return [str(w) for w in warnings]


# --- upstreams -----------------------------------------------------------------------------


def test_a_port_range_becomes_one_upstream_per_port():
    assert proxy(":80\nreverse_proxy localhost:8001-8003\n")["upstreams"] == [
        {"dial": "localhost:8001"}, {"dial": "localhost:8002"}, {"dial": "localhost:8003"}]


def test_a_port_range_with_a_network_dials_plain_addresses_like_caddy():
    assert proxy(":80\nreverse_proxy tcp/localhost:8001-8002\n")["upstreams"] == [
        {"dial": "localhost:8001"}, {"dial": "localhost:8002"}]


def test_inline_upstreams_come_before_those_of_to():
    handler = proxy(":80\nreverse_proxy a:1 {\n\tto b:2 c:3\n\tto d:4\n}\n")
    assert [u["dial"] for u in handler["upstreams"]] == ["a:1", "b:2", "c:3", "d:4"]


def test_url_upstreams_get_the_scheme_port_and_keep_ipv6_brackets():
    assert proxy(":80\nreverse_proxy https://[::1] https://[2001:db8::1]:8443\n")["upstreams"] == [
        {"dial": "[::1]:443"}, {"dial": "[2001:db8::1]:8443"}]


def test_upstream_scheme_is_case_insensitive():
    assert proxy(":80\nreverse_proxy HTTPS://example.com\n")["transport"] == {"protocol": "http", "tls": {}}


def test_unix_socket_with_a_permission_mode_is_kept_whole():
    assert proxy(":80\nreverse_proxy unix//run/app.sock|0222\n")["upstreams"] == [{"dial": "unix//run/app.sock|0222"}]


def test_no_upstreams_at_all_is_allowed():
    assert proxy(":80\nreverse_proxy\n") == {"handler": "reverse_proxy"}


# --- transport defaults that depend on the whole directive --------------------------------


def test_https_upstream_turns_tls_on_in_a_given_transport():
    handler = proxy(":80\nreverse_proxy https://example.com {\n\ttransport http {\n\t\tdial_timeout 2s\n\t}\n}\n")
    assert handler["transport"] == {"protocol": "http", "dial_timeout": 2_000_000_000, "tls": {}}


def test_h2c_upstream_overrides_the_versions():
    handler = proxy(":80\nreverse_proxy h2c://localhost {\n\ttransport http {\n\t\tversions 3\n\t}\n}\n")
    assert handler["transport"] == {"protocol": "http", "versions": ["h2c", "2"]}


def test_a_transport_with_only_zero_values_is_left_out():
    text = ":80\nreverse_proxy localhost:1 {\n\ttransport http {\n\t\tdial_timeout 0s\n\t\tmax_conns_per_host 0\n\t}\n}\n"
    assert "transport" not in proxy(text)


def test_keepalive_options_create_keep_alive_even_when_zero():
    text = ":80\nreverse_proxy localhost:1 {\n\ttransport http {\n\t\tkeepalive_idle_conns 0\n\t}\n}\n"
    assert proxy(text)["transport"] == {"protocol": "http", "keep_alive": {}}


def test_compression_on_keeps_the_default():
    text = ":80\nreverse_proxy localhost:1 {\n\ttransport http {\n\t\tcompression on\n\t}\n}\n"
    assert "transport" not in proxy(text)


def test_a_later_network_proxy_replaces_an_earlier_one():
    text = ":80\nreverse_proxy localhost:1 {\n\ttransport http {\n\t\tforward_proxy_url http://a\n\t\tnetwork_proxy none\n\t}\n}\n"
    assert proxy(text)["transport"] == {"protocol": "http", "network_proxy": {"from": "none"}}


# --- subdirectives -------------------------------------------------------------------------


def test_zero_values_are_omitted_but_their_objects_stay():
    text = ":80\nreverse_proxy localhost:1 {\n\tlb_retries 0\n\thealth_port 0\n\tmax_fails 0\n}\n"
    handler = proxy(text)
    assert handler["load_balancing"] == {}
    assert handler["health_checks"] == {"active": {}, "passive": {}}


def test_durations_given_as_bare_integers_are_nanoseconds():
    handler = proxy(":80\nreverse_proxy localhost:1 {\n\tflush_interval 1500\n\tstream_timeout 0\n\tstream_close_delay 1d\n}\n")
    assert handler["flush_interval"] == 1500
    assert "stream_timeout" not in handler
    assert handler["stream_close_delay"] == 86_400_000_000_000


def test_buffers_take_sizes_or_unlimited():
    handler = proxy(":80\nreverse_proxy localhost:1 {\n\trequest_buffers 1MiB\n\tresponse_buffers 0\n\tstream_buffer_size unlimited\n}\n")
    assert handler["request_buffers"] == 1_048_576
    assert "response_buffers" not in handler
    assert handler["stream_buffer_size"] == -1


def test_health_headers_keep_the_written_names_and_collect_values():
    text = ":80\nreverse_proxy localhost:1 {\n\thealth_headers {\n\t\tx-probe a\n\t\tx-probe b c\n\t\tX-Empty\n\t}\n}\n"
    assert proxy(text)["health_checks"]["active"]["headers"] == {"x-probe": ["a", "b", "c"], "X-Empty": [""]}


def test_health_upstream_and_the_latest_health_options():
    text = (":80\nreverse_proxy localhost:1 {\n\thealth_port 9000\n\thealth_upstream 10.0.0.1:9100\n\thealth_method HEAD\n"
            "\thealth_request_body ping\n\thealth_follow_redirects\n\thealth_passes 2\n\thealth_fails 3\n}\n")
    assert proxy(text)["health_checks"]["active"] == {
        "port": 9000, "upstream": "10.0.0.1:9100", "method": "HEAD", "body": "ping",
        "follow_redirects": True, "passes": 2, "fails": 3}


def test_header_ops_replace_and_delete_keep_the_written_field():
    text = ":80\nreverse_proxy localhost:1 {\n\theader_up -x-secret\n\theader_up x-path ^/a /b\n\theader_up +x-tag one two\n}\n"
    assert proxy(text)["headers"] == {"request": {
        "delete": ["x-secret"],
        "replace": {"x-path": [{"search_regexp": "^/a", "replace": "/b"}]},
        "add": {"X-Tag": ["one"]},
    }}


def test_header_up_set_later_overrides_earlier():
    text = ":80\nreverse_proxy localhost:1 {\n\theader_up X-A 1\n\theader_up x-a 2\n}\n"
    assert proxy(text)["headers"] == {"request": {"set": {"X-A": ["2"]}}}


def test_policies_with_fallbacks_nest():
    text = (":80\nreverse_proxy localhost:1 {\n\tlb_policy header X-User {\n\t\tfallback cookie sticky {\n"
            "\t\t\tfallback query q\n\t\t}\n\t}\n}\n")
    assert proxy(text)["load_balancing"]["selection_policy"] == {
        "policy": "header", "field": "X-User",
        "fallback": {"policy": "cookie", "name": "sticky", "fallback": {"policy": "query", "key": "q"}},
    }


def test_random_choose_zero_means_the_default():
    text = ":80\nreverse_proxy localhost:1 {\n\tlb_policy random_choose 0\n}\n"
    assert proxy(text)["load_balancing"] == {"selection_policy": {"policy": "random_choose"}}


def test_retry_match_shorthands_and_blocks():
    text = (":80\nreverse_proxy localhost:1 {\n\tlb_retry_match method PUT\n"
            "\tlb_retry_match {\n\t\tpath /a\n\t\tpath /b\n\t}\n}\n")
    assert proxy(text)["load_balancing"]["retry_match"] == [
        {"method": ["PUT"]},
        {"path": ["/a", "/b"]},
    ]


def test_dynamic_a_versions_and_srv_grace_period():
    a = proxy(":80\nreverse_proxy {\n\tdynamic a svc 80 {\n\t\tversions ipv6\n\t}\n}\n")
    assert a["dynamic_upstreams"] == {"source": "a", "name": "svc", "port": "80", "versions": {"ipv6": True}}
    srv = proxy(":80\nreverse_proxy {\n\tdynamic srv {\n\t\tname svc\n\t\tgrace_period 1m\n\t}\n}\n")
    assert srv["dynamic_upstreams"] == {"source": "srv", "name": "svc", "grace_period": 60_000_000_000}


# --- responses -----------------------------------------------------------------------------


def test_replace_status_entries_come_before_handle_response_and_unmatched_ones_last():
    text = (":80\nreverse_proxy localhost:1 {\n\thandle_response {\n\t\trespond a\n\t}\n\t@e status 5xx\n"
            "\thandle_response @e {\n\t\trespond b\n\t}\n\treplace_status 299\n\treplace_status @e {vars.code}\n}\n")
    entries = proxy(text)["handle_response"]
    assert [(e.get("match"), e.get("status_code"), "routes" in e) for e in entries] == [
        ({"status_code": [5]}, "{http.vars.code}", False),
        ({"status_code": [5]}, None, True),
        (None, 299, False),
        (None, None, True),
    ]


def test_handle_response_may_name_a_matcher_defined_after_it():
    text = ":80\nreverse_proxy localhost:1 {\n\thandle_response @late {\n\t\trespond x\n\t}\n\t@late header X-Late *\n}\n"
    assert proxy(text)["handle_response"][0]["match"] == {"headers": {"X-Late": ["*"]}}


def test_response_matcher_on_one_line_and_negated_header():
    text = ":80\nreverse_proxy localhost:1 {\n\t@m header !X-Cache\n\treplace_status @m 200\n}\n"
    assert proxy(text)["handle_response"] == [{"match": {"headers": {"X-Cache": None}}, "status_code": 200}]


def test_handle_response_without_routes_is_an_empty_entry():
    text = ":80\nreverse_proxy localhost:1 {\n\t@m status 204\n\thandle_response @m\n}\n"
    assert proxy(text)["handle_response"] == [{"match": {"status_code": [204]}}]


def test_handle_response_routes_are_sorted_and_see_site_matchers():
    text = (":80\n@api path /api/*\nreverse_proxy localhost:1 {\n\thandle_response {\n\t\trespond @api \"api\"\n"
            "\t\tcopy_response_headers {\n\t\t\tinclude X-A\n\t\t}\n\t\thandle /x {\n\t\t\tcopy_response 202\n\t\t}\n\t}\n}\n")
    routes = proxy(text)["handle_response"][0]["routes"]
    assert [r["handle"][0]["handler"] for r in routes] == ["copy_response_headers", "subroute", "static_response"]
    assert routes[2]["match"] == [{"path": ["/api/*"]}]
    assert routes[1]["handle"][0]["routes"][0]["handle"] == [{"handler": "copy_response", "status_code": 202}]


def test_copy_response_forms():
    text = (":80\nreverse_proxy localhost:1 {\n\t@a status 200\n\thandle_response @a {\n\t\tcopy_response\n\t}\n"
            "\t@b status 201\n\thandle_response @b {\n\t\tcopy_response {\n\t\t\tstatus {vars.code}\n\t\t}\n\t}\n}\n")
    entries = proxy(text)["handle_response"]
    assert entries[0]["routes"][0]["handle"] == [{"handler": "copy_response"}]
    assert entries[1]["routes"][0]["handle"] == [{"handler": "copy_response", "status_code": "{http.vars.code}"}]


# --- forward_auth --------------------------------------------------------------------------


def test_forward_auth_is_a_reverse_proxy_preset():
    handler = proxy(":80\nforward_auth localhost:9091 {\n\turi /verify\n}\n")
    assert handler == {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": "localhost:9091"}],
        "rewrite": {"method": "GET", "uri": "/verify"},
        "headers": {"request": {"set": {"X-Forwarded-Method": ["{http.request.method}"],
                                        "X-Forwarded-Uri": ["{http.request.uri}"]}}},
        "handle_response": [{"match": {"status_code": [2]}, "routes": [{"handle": [{"handler": "vars"}]}]}],
    }


def test_forward_auth_copy_headers_sorted_by_source_and_renamed():
    text = ":80\nforward_auth localhost:9091 {\n\turi /verify\n\tcopy_headers b>x-one a B>X>Y\n\tcopy_headers a>renamed\n}\n"
    routes = proxy(text)["handle_response"][0]["routes"]
    deleted = [r["handle"][0]["request"]["delete"][0] for r in routes if "delete" in r["handle"][0].get("request", {})]
    sets = [r["handle"][0]["request"]["set"] for r in routes if "set" in r["handle"][0].get("request", {})]
    assert deleted == ["X", "Renamed", "X-One"]  # sources B, a, b in byte order
    assert sets == [{"X": ["{http.reverse_proxy.header.B}"]}, {"Renamed": ["{http.reverse_proxy.header.A}"]},
                    {"X-One": ["{http.reverse_proxy.header.B}"]}]


def test_forward_auth_passes_other_subdirectives_to_the_proxy():
    text = ":80\nforward_auth localhost:1 localhost:2 {\n\turi /verify\n\tlb_policy first\n\ttransport http {\n\t\tdial_timeout 1s\n\t}\n}\n"
    handler = proxy(text)
    assert handler["load_balancing"] == {"selection_policy": {"policy": "first"}}
    assert handler["transport"] == {"protocol": "http", "dial_timeout": 1_000_000_000}
    assert handler["rewrite"]["uri"] == "/verify"


def test_forward_auth_sorts_before_reverse_proxy():
    kinds = [(h["handler"], h.get("rewrite", {}).get("uri")) for h in handlers(
        ":80\nreverse_proxy app:80\nforward_auth auth:80 {\n\turi /check\n}\n")]
    assert kinds == [("reverse_proxy", "/check"), ("reverse_proxy", None)]


# --- warnings ------------------------------------------------------------------------------


def test_deprecated_and_needless_settings_warn():
    text = (":80\nreverse_proxy https://example.com {\n\thealth_path /h\n\theader_up Host {upstream_hostport}\n"
            "\theader_up X-Forwarded-For {remote_host}\n}\n")
    found = warnings_of(text)
    assert any("Rwsfile:3: the 'health_path' subdirective is deprecated" in w for w in found)
    assert any("Unnecessary header_up X-Forwarded-For" in w and w.startswith("Rwsfile:5") for w in found)
    assert any("Unnecessary header_up Host" in w for w in found)


def test_host_header_for_plain_http_upstream_does_not_warn():
    assert warnings_of(":80\nreverse_proxy localhost:1 {\n\theader_up Host {upstream_hostport}\n}\n") == []
