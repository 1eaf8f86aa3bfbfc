"""`authentication` with `http_basic` at run time: challenges, checks, user ID, cache."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import bcrypt
import httpx
import pytest

from rws.handlers.authentication import FAKE_BCRYPT_HASH, HTTPBasic, parse_basic_credentials
from rws.http.message import Request

from .conftest import Seen, build, raises_http, request, run

PASSWORD = "s3cret pass"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode()  # cost 4 keeps tests fast


def basic_auth(accounts: list[dict[str, str]] | None = None, **options: Any) -> Any:
    provider = {"hash": {"algorithm": "bcrypt"}, "accounts": accounts or [{"username": "alice", "password": HASH}],
                **options}
    return build({"handler": "authentication", "providers": {"http_basic": provider}})


def provider_of(handler: Any) -> HTTPBasic:
    name, provider = handler.providers[0]
    assert name == "http_basic"
    return provider  # type: ignore[no-any-return]


def credentials(user: str, password: str | bytes) -> str:
    secret = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + secret).decode()


def authed(handler: Any, authorization: str | None) -> tuple[Request, Seen]:
    req = request() if authorization is None else request(Authorization=authorization)
    seen = Seen()
    run(handler, req, seen)
    return req, seen


def test_no_credentials_is_a_401_with_a_challenge() -> None:
    req = request()
    exc = raises_http(basic_auth(), req)
    assert (exc.status, exc.message) == (401, "not authenticated")
    assert req.response_headers.items() == [("Www-Authenticate", 'Basic realm="restricted"')]


def test_the_realm_is_configurable() -> None:
    req = request()
    raises_http(basic_auth(realm="Staff only"), req)
    assert req.response_headers.get("WWW-Authenticate") == 'Basic realm="Staff only"'


def test_valid_credentials_go_on_with_the_user_id_set() -> None:
    req, seen = authed(basic_auth(), credentials("alice", PASSWORD))
    assert seen.request is req and req.values["http.auth.user.id"] == "alice"
    assert "Www-Authenticate" not in req.response_headers


def test_the_scheme_name_is_case_insensitive() -> None:
    req, _ = authed(basic_auth(), credentials("alice", PASSWORD).replace("Basic", "bAsIc"))
    assert req.values["http.auth.user.id"] == "alice"


@pytest.mark.parametrize("authorization", [
    credentials("alice", "wrong"),
    "Bearer abc",
    "Basic !!!notbase64",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic",
])
def test_bad_credentials_are_a_401_with_a_challenge(authorization: str) -> None:
    req = request(Authorization=authorization)
    assert raises_http(basic_auth(), req).status == 401
    assert req.response_headers.get("Www-Authenticate") == 'Basic realm="restricted"'
    assert "http.auth.user.id" not in req.values


def test_an_unknown_user_is_still_checked_against_a_dummy_hash() -> None:
    handler = basic_auth(hash_cache={})
    req = request(Authorization=credentials("mallory", "guess"))
    assert raises_http(handler, req).status == 401
    cache = provider_of(handler).cache
    assert cache is not None and list(cache.results.values()) == [False]
    assert FAKE_BCRYPT_HASH.startswith(b"$2a$14$")


def test_only_the_first_72_bytes_of_a_password_count_as_in_go() -> None:
    long_password = b"x" * 72
    stored = bcrypt.hashpw(long_password, bcrypt.gensalt(4)).decode()
    handler = basic_auth([{"username": "bob", "password": stored}])
    req, _ = authed(handler, credentials("bob", long_password + b"ignored"))
    assert req.values["http.auth.user.id"] == "bob"


def test_passwords_may_be_base64_encoded_hashes_or_come_from_the_environment(monkeypatch) -> None:
    encoded = base64.b64encode(HASH.encode()).decode()
    req, _ = authed(basic_auth([{"username": "alice", "password": encoded}]), credentials("alice", PASSWORD))
    assert req.values["http.auth.user.id"] == "alice"
    monkeypatch.setenv("RWS_TEST_HASH", HASH)
    req, _ = authed(basic_auth([{"username": "alice", "password": "{env.RWS_TEST_HASH}"}]), credentials("alice", PASSWORD))
    assert req.values["http.auth.user.id"] == "alice"


def test_a_malformed_stored_hash_is_a_401_with_the_error_placeholder() -> None:
    handler = basic_auth([{"username": "alice", "password": "$not-a-bcrypt-hash"}])
    req = request(Authorization=credentials("alice", PASSWORD))
    assert raises_http(handler, req).status == 401
    assert req.values["http.auth.http_basic.error"]
    assert req.response_headers.get("Www-Authenticate") == 'Basic realm="restricted"'


def test_the_hash_cache_remembers_results_and_shares_concurrent_checks() -> None:
    handler = basic_auth(hash_cache={})
    provider = provider_of(handler)

    async def many() -> list[str | None]:
        reqs = [request(Authorization=credentials("alice", PASSWORD)) for _ in range(5)]
        return list(await asyncio.gather(*(provider.authenticate(r) for r in reqs)))

    assert asyncio.run(many()) == ["alice"] * 5
    assert provider.cache is not None and list(provider.cache.results.values()) == [True]
    assert provider.cache.running == {}


def test_the_hash_cache_stays_bounded() -> None:
    handler = basic_auth(hash_cache={})
    cache = provider_of(handler).cache
    assert cache is not None
    cache.results.update({i.to_bytes(4, "big"): True for i in range(1000)})
    authed(handler, credentials("alice", PASSWORD))
    assert 800 < len(cache.results) <= 1000


def test_parsing_credentials_like_go() -> None:
    assert parse_basic_credentials("Basic " + base64.b64encode(b"a:b:c").decode()) == ("a", b"b:c")
    assert parse_basic_credentials("Basic " + base64.b64encode(b":").decode()) == ("", b"")
    assert parse_basic_credentials("Basic YQ") is None  # padding is required
    assert parse_basic_credentials(None) is None


# --- over a socket -----------------------------------------------------------------------


def site(extra: str = "") -> str:
    return f":80\nbasic_auth {{\n\talice {HASH}\n}}\nrespond \"hello {{http.auth.user.id}}\"\n{extra}"


def test_basic_auth_over_a_socket(serve) -> None:
    with serve(site()) as server:
        ok = httpx.get(server.url("/"), auth=("alice", PASSWORD))
        wrong = httpx.get(server.url("/"), auth=("alice", "nope"))
    assert (ok.status_code, ok.text) == (200, "hello alice")
    assert wrong.status_code == 401


def test_the_challenge_reaches_the_client_without_error_routes(serve) -> None:
    with serve(site()) as server:
        response = httpx.get(server.url("/"))
    assert response.headers.get("www-authenticate") == 'Basic realm="restricted"'


def test_basic_auth_like_caddy(same_as_caddy_run) -> None:
    site = f"""
	basicauth {{
		alice {HASH}
	}}
	respond "user={{http.auth.user.id}}"
	handle_errors {{
		respond "E {{err.status_code}}"
	}}
	"""
    same_as_caddy_run(site, [("/", {}), ("/", {"auth": ("alice", PASSWORD)}), ("/", {"auth": ("alice", "x")}),
                             ("/", {"auth": ("bob", PASSWORD)})], headers=("Content-Type", "WWW-Authenticate"))
