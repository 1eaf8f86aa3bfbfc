"""Load-balancing selection policies at run time (`rws/handlers/reverse_proxy/selection.py`).

Policies are built from the JSON a user writes (decoded, then handed to the builder the
ModuleSpec names) and asked to choose among real `Upstream` objects for real `Request`s.
Random policies are checked with enough picks that a wrong answer cannot hide (the chance
of a false failure is below 1e-30).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from rws.config.decode import ModuleValue, decode
from rws.handlers.reverse_proxy import selection
from rws.handlers.reverse_proxy.selection_config import (
    CookieHashConfig,
    HeaderHashConfig,
    NoOptionsPolicyConfig,
    QueryHashConfig,
    RandomChooseConfig,
    WeightedRoundRobinConfig,
)
from rws.handlers.reverse_proxy.upstreams import Host, Upstream
from rws.http.message import Headers, Request
from rws.http.routes import BuildContext

BUILDERS: dict[str, tuple[type, Callable[[Any, BuildContext], Any]]] = {
    "random": (NoOptionsPolicyConfig, selection.build_random),
    "random_choose": (RandomChooseConfig, selection.build_random_choose),
    "least_conn": (NoOptionsPolicyConfig, selection.build_least_conn),
    "round_robin": (NoOptionsPolicyConfig, selection.build_round_robin),
    "weighted_round_robin": (WeightedRoundRobinConfig, selection.build_weighted_round_robin),
    "first": (NoOptionsPolicyConfig, selection.build_first),
    "ip_hash": (NoOptionsPolicyConfig, selection.build_ip_hash),
    "client_ip_hash": (NoOptionsPolicyConfig, selection.build_client_ip_hash),
    "uri_hash": (NoOptionsPolicyConfig, selection.build_uri_hash),
    "query": (QueryHashConfig, selection.build_query_hash),
    "header": (HeaderHashConfig, selection.build_header_hash),
    "cookie": (CookieHashConfig, selection.build_cookie_hash),
}

# What Caddy 2.6.2 sets for `lb_policy cookie` and `lb_policy cookie lb s3cret` in front of
# the upstream 127.0.0.1:18482 (taken from `curl -i` against `caddy run`)
CADDY_COOKIE_NO_SECRET = "5b5295fc8a85e5cc5c63d0560f8af7057c761d7e5d0ccddff203d377bebd9280"
CADDY_COOKIE_S3CRET = "47474874177cd87786a5d4474d0c25143a8d48d8676171df530bedac741945ab"

MANY = 300


def policy(config: dict[str, Any]) -> Any:
    """The policy a user's JSON describes, built by the builder its ModuleSpec names."""
    rest = dict(config)
    name = rest.pop("policy")
    config_class, builder = BUILDERS[name]
    return builder(decode(config_class, rest, "selection_policy"), BuildContext())


def upstreams(*dials: str, max_requests: int = 0) -> list[Upstream]:
    return [Upstream(dial, Host(dial), max_requests=max_requests) for dial in dials]


def request(target: str = "/", headers: list[tuple[str, str]] | None = None, *, remote_ip: str = "192.0.2.1",
            scheme: str = "http", **vars: Any) -> Request:
    req = Request("GET", target, Headers([("Host", "example.com"), *(headers or [])]), remote=(remote_ip, 40000),
                  scheme=scheme)
    req.vars.update(vars)
    return req


def down(upstream: Upstream) -> Upstream:
    upstream.host.healthy = False
    return upstream


def picks(chooser: Any, pool: Sequence[Upstream], n: int = MANY, req: Request | None = None) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(n):
        chosen = chooser.select(pool, req if req is not None else request())
        counts[chosen.dial if chosen is not None else "none"] += 1
    return counts


def set_cookies(req: Request) -> list[str]:
    return req.response_headers.get_all("Set-Cookie")


# --- every policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_policy_builds_through_its_module_spec(name: str) -> None:
    extra = {"weighted_round_robin": {"weights": [1]}, "query": {"key": "k"}, "header": {"field": "X-K"}}
    built = BuildContext().build(ModuleValue(f"http.reverse_proxy.selection_policies.{name}",
                                             decode(BUILDERS[name][0], extra.get(name, {}))))
    pool = upstreams("a:1")
    assert built.select(pool, request("/?k=v", [("X-K", "v")])) is pool[0]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_policy_answers_none_when_no_upstream_is_available(name: str) -> None:
    extra: dict[str, dict[str, Any]] = {"weighted_round_robin": {"weights": [1, 1]}, "query": {"key": "k"},
                                        "header": {"field": "X-K"}}
    chooser = policy({"policy": name, **extra.get(name, {})})
    pool = upstreams("a:1", "b:1", max_requests=1)
    down(pool[0])
    pool[1].host.num_requests = 1  # full
    req = request("/?k=v", [("X-K", "v"), ("Cookie", "lb=" + "0" * 64)])
    assert [chooser.select(pool, req) for _ in range(20)] == [None] * 20
    assert chooser.select([], req) is None
    assert set_cookies(req) == []


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_policy_skips_unavailable_and_full_upstreams(name: str) -> None:
    extra: dict[str, dict[str, Any]] = {"weighted_round_robin": {"weights": [1, 1, 1]}, "query": {"key": "k"},
                                        "header": {"field": "X-K"}}
    chooser = policy({"policy": name, **extra.get(name, {})})
    pool = upstreams("a:1", "b:1", "c:1", max_requests=2)
    down(pool[0])
    pool[2].host.num_requests = 2  # full
    for i in range(50):
        req = request(f"/{i}?k={i}", [("X-K", str(i))], remote_ip=f"192.0.2.{i}", client_ip=f"198.51.100.{i}")
        assert chooser.select(pool, req) is pool[1]


# --- random, random_choose, least_conn ---------------------------------------------------------


def test_random_chooses_every_available_upstream() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    assert set(picks(policy({"policy": "random"}), pool)) == {"a:1", "b:1", "c:1"}


def test_random_choose_takes_the_least_loaded_of_its_sample() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    pool[0].host.num_requests = 5
    pool[1].host.num_requests = 1
    pool[2].host.num_requests = 3
    assert picks(policy({"policy": "random_choose", "choose": 3}), pool) == Counter({"b:1": MANY})


def test_random_choose_of_two_never_takes_the_busiest_and_samples_the_rest() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    pool[0].host.num_requests = 9
    counts = picks(policy({"policy": "random_choose"}), pool)  # default choose: 2
    assert "a:1" not in counts
    assert set(counts) == {"b:1", "c:1"}


def test_least_conn_takes_the_upstream_with_fewest_requests_in_flight() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    pool[0].host.num_requests = 2
    pool[1].host.num_requests = 0
    pool[2].host.num_requests = 1
    assert picks(policy({"policy": "least_conn"}), pool) == Counter({"b:1": MANY})


def test_least_conn_breaks_ties_at_random() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    pool[0].host.num_requests = 1
    assert set(picks(policy({"policy": "least_conn"}), pool)) == {"b:1", "c:1"}


def test_least_conn_ignores_an_idle_but_unhealthy_upstream() -> None:
    pool = upstreams("a:1", "b:1")
    down(pool[0])
    pool[1].host.num_requests = 7
    assert policy({"policy": "least_conn"}).select(pool, request()) is pool[1]


# --- round_robin, weighted_round_robin, first --------------------------------------------------


def test_round_robin_cycles_through_the_upstreams_starting_at_the_second() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "round_robin"})
    assert [chooser.select(pool, request()).dial for _ in range(6)] == ["b:1", "c:1", "a:1"] * 2


def test_round_robin_skips_an_unavailable_upstream_and_keeps_its_turn_order() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "round_robin"})
    down(pool[1])
    assert [chooser.select(pool, request()).dial for _ in range(4)] == ["c:1", "a:1", "c:1", "a:1"]
    pool[1].host.healthy = True
    assert [chooser.select(pool, request()).dial for _ in range(3)] == ["b:1", "c:1", "a:1"]


def test_weighted_round_robin_90_10_is_exactly_9_to_1_in_every_10_picks() -> None:
    pool = upstreams("a:1", "b:1")
    chooser = policy({"policy": "weighted_round_robin", "weights": [90, 10]})
    for _ in range(20):
        assert picks(chooser, pool, 10) == Counter({"a:1": 9, "b:1": 1})


def test_weighted_round_robin_interleaves_smoothly_as_nginx_does() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "weighted_round_robin", "weights": [5, 1, 1]})
    sequence = "".join(chooser.select(pool, request()).dial[0] for _ in range(14))
    assert sequence == "aabacaa" * 2


def test_weighted_round_robin_never_chooses_a_zero_or_missing_weight() -> None:
    pool = upstreams("a:1", "b:1", "c:1", "d:1")
    chooser = policy({"policy": "weighted_round_robin", "weights": [0, 3, 1]})  # d:1 has no weight
    for _ in range(10):
        assert picks(chooser, pool, 4) == Counter({"b:1": 3, "c:1": 1})


def test_weighted_round_robin_sends_everything_to_the_rest_while_one_is_down() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "weighted_round_robin", "weights": [6, 3, 1]})
    down(pool[0])
    assert picks(chooser, pool, 40) == Counter({"b:1": 30, "c:1": 10})
    pool[0].host.healthy = True
    counts = picks(chooser, pool, 100)
    assert counts["a:1"] >= 55 and counts["b:1"] >= 25 and counts["c:1"] >= 8


def test_first_takes_the_first_available_upstream() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "first"})
    assert picks(chooser, pool, 10) == Counter({"a:1": 10})
    down(pool[0])
    assert chooser.select(pool, request()) is pool[1]


# --- hash policies -----------------------------------------------------------------------------

HASH_CASES: dict[str, tuple[dict[str, Any], Callable[[int], Request]]] = {
    "ip_hash": ({"policy": "ip_hash"}, lambda i: request(remote_ip=f"10.0.{i // 250}.{i % 250}")),
    "client_ip_hash": ({"policy": "client_ip_hash"}, lambda i: request(client_ip=f"2001:db8::{i:x}")),
    "uri_hash": ({"policy": "uri_hash"}, lambda i: request(f"/item/{i}?page=2")),
    "query": ({"policy": "query", "key": "user"}, lambda i: request(f"/?user=u{i}")),
    "header": ({"policy": "header", "field": "X-User"}, lambda i: request(headers=[("X-User", f"u{i}")])),
}


def owners(chooser: Any, pool: Sequence[Upstream], make: Callable[[int], Request], keys: int = 400) -> list[str]:
    return [chooser.select(pool, make(i)).dial for i in range(keys)]


@pytest.mark.parametrize("name", sorted(HASH_CASES))
def test_hashing_is_stable_across_policy_objects_and_spreads_keys(name: str) -> None:
    config, make = HASH_CASES[name]
    pool = upstreams("10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80", "10.1.0.4:80")
    first = owners(policy(config), pool, make)
    assert owners(policy(config), upstreams(*(u.dial for u in pool)), make) == first
    counts = Counter(first)
    assert set(counts) == {u.dial for u in pool}
    assert min(counts.values()) >= 40  # 400 keys over 4 upstreams: none starves


@pytest.mark.parametrize("name", sorted(HASH_CASES))
def test_removing_an_upstream_only_moves_the_keys_it_held(name: str) -> None:
    config, make = HASH_CASES[name]
    pool = upstreams("10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80", "10.1.0.4:80", "10.1.0.5:80")
    before = owners(policy(config), pool, make)
    after = owners(policy(config), pool[:2] + pool[3:], make)
    moved = [i for i in range(len(before)) if before[i] != after[i]]
    assert moved and all(before[i] == "10.1.0.3:80" for i in moved)
    assert "10.1.0.3:80" not in after
    down(pool[2])  # an unavailable upstream counts as removed
    assert owners(policy(config), pool, make) == after


def test_hash_choices_are_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "from rws.handlers.reverse_proxy import selection as s\n"
        "from rws.handlers.reverse_proxy.upstreams import Host, Upstream\n"
        "from rws.http.message import Headers, Request\n"
        "pool = [Upstream(d, Host(d)) for d in ('a:1', 'b:1', 'c:1', 'd:1')]\n"
        "p = s.UriHashSelection(s.RandomSelection())\n"
        "print(' '.join(p.select(pool, Request('GET', f'/k{i}', Headers())).dial for i in range(60)))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    pool = upstreams("a:1", "b:1", "c:1", "d:1")
    here = policy({"policy": "uri_hash"})
    assert out.stdout.split() == [here.select(pool, Request("GET", f"/k{i}", Headers())).dial for i in range(60)]


def test_ip_hash_uses_the_connection_peer_and_client_ip_hash_the_trusted_client() -> None:
    pool = upstreams("a:1", "b:1", "c:1", "d:1")
    ip_hash, client_ip_hash = policy({"policy": "ip_hash"}), policy({"policy": "client_ip_hash"})
    for i in range(100):
        client = f"203.0.113.{i}"
        through_proxy = request(remote_ip="10.9.9.9", client_ip=client)
        direct = request(remote_ip=client, client_ip=client)
        assert client_ip_hash.select(pool, through_proxy) is ip_hash.select(pool, direct)
    assert len({ip_hash.select(pool, request(remote_ip="10.9.9.9", client_ip=f"203.0.113.{i}")).dial
                for i in range(100)}) == 1


def test_uri_hash_hashes_the_rewritten_uri_with_its_query() -> None:
    pool = upstreams("a:1", "b:1", "c:1", "d:1")
    chooser = policy({"policy": "uri_hash"})
    for i in range(100):
        rewritten = request("/original").with_changes(target=f"/page/{i}?q=1", raw_path=f"/page/{i}", query="q=1")
        assert chooser.select(pool, rewritten) is chooser.select(pool, request(f"/page/{i}?q=1"))
    with_query = {chooser.select(pool, request(f"/page?q={i}")).dial for i in range(100)}
    assert len(with_query) > 1


def test_query_hash_joins_repeated_values_and_decodes_them() -> None:
    pool = upstreams("a:1", "b:1", "c:1", "d:1")
    chooser = policy({"policy": "query", "key": "user id"})
    for i in range(60):
        joined = chooser.select(pool, request(f"/?user+id=x{i}&user%20id=y+{i}&other=1"))
        assert joined is chooser.select(pool, request(f"/?user%20id=x{i}%2Cy%20{i}"))
    first_only = {chooser.select(pool, request(f"/?user+id=x{i}")).dial for i in range(60)}
    assert len(first_only) > 1


def test_query_hash_without_the_key_uses_the_fallback_policy() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "query", "key": "user", "fallback": {"policy": "first"}})
    for target in ("/", "/?other=u1", "/?user=", "/?user", "/?user=%zz", "/?user=a;b"):
        assert picks(chooser, pool, 5, request(target)) == Counter({"a:1": 5}), target


def test_query_hash_falls_back_to_random_by_default() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    assert set(picks(policy({"policy": "query", "key": "user"}), pool, req=request("/?x=1"))) == {"a:1", "b:1", "c:1"}


def test_header_hash_uses_the_first_value_and_falls_back_when_absent() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "header", "field": "x-user", "fallback": {"policy": "round_robin"}})
    for i in range(50):
        assert chooser.select(pool, request(headers=[("X-User", f"u{i}"), ("X-User", "z")])) is \
            chooser.select(pool, request(headers=[("X-USER", f"u{i}")]))
    assert [chooser.select(pool, request()).dial for _ in range(3)] == ["b:1", "c:1", "a:1"]
    assert [chooser.select(pool, request(headers=[("X-User", "")])).dial for _ in range(3)] == ["b:1", "c:1", "a:1"]


def test_header_hash_of_host_uses_the_request_host() -> None:
    pool = upstreams("a:1", "b:1", "c:1", "d:1")
    by_host = policy({"policy": "header", "field": "Host", "fallback": {"policy": "first"}})
    by_field = policy({"policy": "header", "field": "X-Site"})
    chosen = set()
    for i in range(60):
        site = f"site{i}.example:8443"
        req = Request("GET", "/", Headers([("Host", site)]))
        assert by_host.select(pool, req) is by_field.select(pool, request(headers=[("X-Site", site)]))
        chosen.add(by_host.select(pool, req).dial)
    assert len(chosen) > 1


# --- cookie (sticky sessions) ------------------------------------------------------------------


def test_cookie_policy_sets_the_same_cookie_as_caddy() -> None:
    pool = upstreams("127.0.0.1:18482")
    req = request()
    assert policy({"policy": "cookie"}).select(pool, req) is pool[0]
    assert set_cookies(req) == [f"lb={CADDY_COOKIE_NO_SECRET}; Path=/; HttpOnly; SameSite=Lax"]
    req = request()
    policy({"policy": "cookie", "name": "lb", "secret": "s3cret"}).select(pool, req)
    assert set_cookies(req) == [f"lb={CADDY_COOKIE_S3CRET}; Path=/; HttpOnly; SameSite=Lax"]


def test_cookie_round_trip_sticks_to_the_chosen_upstream() -> None:
    pool = upstreams("a:1", "b:1", "c:1", "d:1")
    chooser = policy({"policy": "cookie", "secret": "k"})  # random fallback
    stuck = set()
    for _ in range(20):
        first = request()
        chosen = chooser.select(pool, first)
        [cookie] = set_cookies(first)
        value = cookie.split(";", 1)[0]
        for _ in range(10):
            again = request(headers=[("Cookie", f"theme=dark; {value}")])
            assert chooser.select(pool, again) is chosen
            assert set_cookies(again) == []
        stuck.add(chosen.dial)
    assert len(stuck) > 1  # the fallback really was random


def test_cookie_for_an_unavailable_upstream_falls_back_and_sets_a_new_cookie() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "cookie", "fallback": {"policy": "first"}})
    first = request()
    assert chooser.select(pool, first) is pool[0]
    value = set_cookies(first)[0].split(";", 1)[0]
    down(pool[0])
    again = request(headers=[("Cookie", value)])
    assert chooser.select(pool, again) is pool[1]
    [cookie] = set_cookies(again)
    assert cookie.split(";", 1)[0] != value
    third = request(headers=[("Cookie", cookie.split(";", 1)[0])])
    assert chooser.select(pool, third) is pool[1] and set_cookies(third) == []


def test_cookie_with_an_unknown_or_malformed_value_falls_back() -> None:
    pool = upstreams("a:1", "b:1")
    chooser = policy({"policy": "cookie", "name": "srv", "fallback": {"policy": "first"}})
    target = chooser.cookie_value("b:1")
    assert chooser.select(pool, request(headers=[("Cookie", f'srv="{target}"')])) is pool[1]  # quotes allowed
    for cookie in (f"lb={target}", f"SRV={target}", "srv=nope", f"srv={target}\\"):
        req = request(headers=[("Cookie", cookie)])
        assert chooser.select(pool, req) is pool[0], cookie
        assert len(set_cookies(req)) == 1 and set_cookies(req)[0].startswith("srv=")


def test_cookie_max_age_and_secure_attributes() -> None:
    pool = upstreams("127.0.0.1:18482")
    chooser = policy({"policy": "cookie", "max_age": "1h30m"})
    plain, tls = request(), request(scheme="https")
    chooser.select(pool, plain)
    chooser.select(pool, tls)
    assert set_cookies(plain) == [f"lb={CADDY_COOKIE_NO_SECRET}; Path=/; Max-Age=5400; HttpOnly; SameSite=Lax"]
    assert set_cookies(tls) == [f"lb={CADDY_COOKIE_NO_SECRET}; Path=/; Max-Age=5400; HttpOnly; Secure; SameSite=None"]


def test_cookie_is_secure_behind_a_trusted_proxy_that_forwarded_https() -> None:
    pool = upstreams("a:1")
    chooser = policy({"policy": "cookie"})
    forwarded = [("X-Forwarded-Proto", "http"), ("X-Forwarded-Proto", "https")]
    trusted, untrusted = request(headers=forwarded, trusted_proxy=True), request(headers=forwarded)
    chooser.select(pool, trusted)
    chooser.select(pool, untrusted)
    assert set_cookies(trusted)[0].endswith("; HttpOnly; Secure; SameSite=None")
    assert set_cookies(untrusted)[0].endswith("; HttpOnly; SameSite=Lax")


def test_cookie_fallback_can_be_any_policy() -> None:
    pool = upstreams("a:1", "b:1", "c:1")
    chooser = policy({"policy": "cookie", "fallback": {"policy": "weighted_round_robin", "weights": [0, 1, 1]}})
    chosen = [chooser.select(pool, request()).dial for _ in range(4)]
    assert chosen == ["b:1", "c:1", "b:1", "c:1"]
