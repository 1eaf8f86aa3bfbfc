"""`basic_auth` / `basicauth`: the authentication handler, and `hash_password`."""

from __future__ import annotations

import bcrypt
import pytest

from rws.config.decode import Module, decode, decode_module
from rws.errors import ConfigError, RwsError
from rws.handlers.authentication import HTTPBasicConfig, hash_password
from rws.rwsfile.adapt import adapt_text

HASH = "$2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG"


@pytest.mark.parametrize("text", [
    f":80\nbasicauth {{\n\tbob {HASH}\n}}\n",
    f":80\nbasicauth /x bcrypt MyRealm {{\n\tbob {HASH}\n\talice JDJhJDE0JFpreDE5WExpVzZWWW91TEhSNU5tZk9GVTB6MkdUTm1wa1QvNXFxUjdoeDRJaldKUERoanZH\n}}\n",
    f":80\n@admin path /admin/*\nbasicauth @admin {{\n\troot {HASH}\n}}\n",
    ":80\nbasicauth\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_basic_auth_is_the_current_name(site_handlers):
    [(handler, _)] = site_handlers(f":80\nbasic_auth bcrypt Members {{\n\tbob {HASH}\n}}\n")
    assert handler == {"handler": "authentication", "providers": {"http_basic": {
        "accounts": [{"username": "bob", "password": HASH}],
        "hash": {"algorithm": "bcrypt"}, "hash_cache": {}, "realm": "Members"}}}


def test_basicauth_warns_that_it_is_deprecated():
    _config, warnings = adapt_text(f":80\nbasicauth {{\n\tbob {HASH}\n}}\n", "Rwsfile")
    assert any("'basicauth' directive is deprecated" in str(w) for w in warnings)


@pytest.mark.parametrize("text, line, message", [
    (":80\nbasic_auth a b c {\n}\n", 2, "wrong argument count or unexpected line ending after 'c'"),
    (":80\nbasic_auth md5 {\n\tbob x\n}\n", 2, "unrecognized hash algorithm: md5"),
    (":80\nbasic_auth {\n\tbob\n}\n", 3, "username and password cannot be empty or missing"),
    (":80\nbasic_auth {\n\tbob \"\"\n}\n", 3, "username and password cannot be empty or missing"),
    (":80\nbasic_auth {\n\tbob a salt\n}\n", 3, "wrong argument count or unexpected line ending after 'salt'"),
    (f":80\nbasic_auth {{\n\tbob {HASH}\n\tbob {HASH}\n}}\n", 4, "username is not unique: bob"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


def test_hash_password_makes_a_caddy_style_bcrypt_hash():
    hashed = hash_password("hunter2", cost=4)
    assert hashed.startswith("$2a$04$")
    assert bcrypt.checkpw(b"hunter2", hashed.encode())
    assert not bcrypt.checkpw(b"hunter3", hashed.encode())


def test_hash_password_default_cost_is_14():
    assert hash_password.__defaults__ == (14,)


def test_hash_password_out_of_range_cost_means_the_default():
    assert hash_password("x", cost=99).startswith("$2a$14$")


def test_hash_password_refuses_more_than_72_bytes():
    with pytest.raises(RwsError):
        hash_password("x" * 73, cost=4)


def test_config_decodes_provider_and_hash():
    value = {"handler": "authentication", "providers": {"http_basic": {
        "accounts": [{"username": "bob", "password": HASH}], "hash": {"algorithm": "bcrypt"}, "hash_cache": {}, "realm": "r"}}}
    decoded = decode_module(Module("http.handlers", "handler"), value, "h")
    basic = decoded.config.providers["http_basic"].config
    assert basic.hash.id == "http.authentication.hashes.bcrypt"
    assert basic.accounts[0].username == "bob"


@pytest.mark.parametrize("value, path", [
    ({"hash": {"algorithm": "scrypt"}}, "h.hash.algorithm"),
    ({"accounts": [{"username": "a", "password": HASH}, {"username": "a", "password": HASH}]}, "h.accounts[1]"),
    ({"accounts": [{"username": "a"}]}, "h.accounts[0]"),
    ({"accounts": [{"username": "a", "password": "not base64!"}]}, "h.accounts[0].password"),
    ({"hash_cache": {"size": 1}}, "h.hash_cache.size"),
])
def test_config_rejects_bad_values(value, path):
    with pytest.raises(ConfigError) as info:
        decode(HTTPBasicConfig, value, "h")
    assert info.value.path == path
