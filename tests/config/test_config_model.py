"""Decoding whole config trees: paths in errors, suggestions, the apps, and `validate_tree`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rws.config.decode import ModuleValue
from rws.config.model import Config, FileSystemStorageConfig, decode_config, validate_tree
from rws.errors import ConfigError
from rws.http.config import HttpAppConfig, ServerConfig
from rws.rwsfile.adapt import adapt_text


def server_tree(**fields: Any) -> dict[str, Any]:
    server = {"listen": [":8080"], "routes": [{"handle": [{"handler": "static_response", "body": "hi"}]}]}
    server.update(fields)
    return {"apps": {"http": {"servers": {"srv0": server}}}}


def error_of(tree: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        decode_config(tree)
    return info.value


# --- the whole tree --------------------------------------------------------------------------


def test_a_full_tree_decodes_into_typed_sections() -> None:
    tree = server_tree()
    tree["admin"] = {"listen": "localhost:2999", "origins": ["localhost"], "config": {"persist": False}}
    tree["storage"] = {"module": "file_system", "root": "/var/lib/rws"}
    tree["logging"] = {"logs": {"default": {"level": "WARN", "writer": {"output": "stderr"}}}}
    config = decode_config(tree)
    assert isinstance(config, Config)
    assert config.admin is not None and config.admin.config is not None and config.admin.config.persist is False
    assert config.storage == ModuleValue("caddy.storage.file_system", FileSystemStorageConfig(root="/var/lib/rws"))
    app = config.apps["http"]
    assert app.id == "http" and isinstance(app.config, HttpAppConfig)
    assert isinstance(app.config.servers["srv0"], ServerConfig)
    assert config.logging is not None and config.logging.logs["default"].level == "WARN"


def test_empty_tree_decodes() -> None:
    assert decode_config({}) == Config()


def test_unknown_top_level_key_suggests_the_closest() -> None:
    error = error_of({"adimn": {}})
    assert str(error) == "adimn: unknown field (did you mean 'admin'?)"


def test_unknown_server_field_names_its_path_and_suggestion() -> None:
    error = error_of(server_tree(listne=[":80"]))
    assert str(error) == "apps.http.servers.srv0.listne: unknown field (did you mean 'listen'?)"


def test_unknown_app_is_an_error_with_a_suggestion() -> None:
    error = error_of({"apps": {"htp": {}}})
    assert error.path == "apps.htp"
    assert error.message == "unknown app 'htp' (did you mean 'http'?)"


def test_a_module_id_is_not_an_app() -> None:
    error = error_of({"apps": {"caddy.storage.file_system": {"root": "/x"}}})
    assert error.path == "apps.caddy.storage.file_system"
    assert "unknown app" in error.message


def test_wrong_type_names_the_exact_path() -> None:
    tree = server_tree()
    tree["apps"]["http"]["servers"]["srv0"]["routes"] = [{}, {}, {"handle": [{"handler": "static_response", "close": "yes"}]}]
    error = error_of(tree)
    assert str(error) == "apps.http.servers.srv0.routes[2].handle[0].close: expected a boolean, got 'yes'"


def test_reverse_proxy_upstreams_must_be_a_list() -> None:
    pytest.importorskip("rws.handlers.reverse_proxy.config")
    tree = server_tree()
    tree["apps"]["http"]["servers"]["srv0"]["routes"] = [
        {}, {}, {"handle": [{"handler": "reverse_proxy", "upstreams": "localhost:8080"}]},
    ]
    error = error_of(tree)
    assert str(error) == "apps.http.servers.srv0.routes[2].handle[0].upstreams: expected a list, got 'localhost:8080'"


def test_unknown_handler_module_is_named() -> None:
    tree = server_tree(routes=[{"handle": [{"handler": "static_respons"}]}])
    error = error_of(tree)
    assert str(error) == ("apps.http.servers.srv0.routes[0].handle[0].handler: "
                          "unknown module 'http.handlers.static_respons' (did you mean 'static_response'?)")


def test_id_keys_are_ignored() -> None:
    tree = server_tree()
    tree["apps"]["http"]["servers"]["srv0"]["@id"] = "main"
    tree["apps"]["http"]["servers"]["srv0"]["routes"][0]["@id"] = "hello"
    before = copy.deepcopy(tree)
    decode_config(tree)
    assert tree == before


def test_tree_must_be_an_object() -> None:
    assert "must be a JSON object" in str(error_of([]))


# --- servers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"listen": ["localhost"]}, None, None),
        ({"listen": ["unix//run/rws.sock", "udp/:443", "[::1]:8443", ":8000-8010"]}, None, None),
        ({"listen": [":80", ":99999"]}, "apps.http.servers.srv0.listen[1]", "invalid start port '99999'"),
        ({"listen": [":90-80"]}, "apps.http.servers.srv0.listen[0]", "end port must not be less than start port"),
        ({"listen": ["quic/:443"]}, "apps.http.servers.srv0.listen[0]", "unknown network 'quic'"),
        ({"listen": ["[::1]x"]}, "apps.http.servers.srv0.listen[0]", "invalid listener address '[::1]x'"),
        ({"listen": ["unix//x.sock|0400"]}, "apps.http.servers.srv0.listen[0]", "need at least owner write"),
        ({"protocols": ["h1", "h4"]}, "apps.http.servers.srv0.protocols[1]", "unknown protocol 'h4'"),
        ({"listen_protocols": [["h1"], ["h2"]]}, "apps.http.servers.srv0.listen_protocols", "count does not match"),
        ({"listen_protocols": [["h1", "", "h9"]]}, "apps.http.servers.srv0.listen_protocols[0][2]", "unknown protocol 'h9'"),
        ({"idle_timeout": "5 minutes"}, "apps.http.servers.srv0.idle_timeout", "invalid duration '5 minutes'"),
        ({"read_timeout": "10s", "write_timeout": 5000000000}, None, None),
        ({"trusted_proxies_strict": 2}, "apps.http.servers.srv0.trusted_proxies_strict", "expected 0 or 1"),
        ({"automatic_https": {"disable_redirect": True}}, "apps.http.servers.srv0.automatic_https.disable_redirect",
         "unknown field (did you mean 'disable_redirects'?)"),
        ({"logs": {"logger_names": {"a.com": "one", "b.com": ["two", "three"]}}}, None, None),
        ({"logs": {"logger_names": {"a.com": 5}}}, "apps.http.servers.srv0.logs.logger_names.a.com", "expected a string"),
        ({"errors": {"routes": [{"handle": [{"handler": "static_response"}]}]}}, None, None),
        ({"named_routes": {"r": {"handle": [{"handler": "static_response"}]}}}, None, None),
    ],
)
def test_server_fields(fields: dict[str, Any], path: str | None, message: str | None) -> None:
    tree = server_tree(**fields)
    if path is None:
        decode_config(tree)
        return
    error = error_of(tree)
    assert error.path == path
    assert message is not None and message in error.message


def test_a_listener_address_may_belong_to_one_server_only() -> None:
    tree = {"apps": {"http": {"servers": {"a": {"listen": [":8000-8010"]}, "b": {"listen": ["tcp/:8005"]}}}}}
    error = error_of(tree)
    assert error.path == "apps.http.servers.b.listen[0]"
    assert "already claimed by server 'a'" in error.message


def test_listener_wrappers_and_trusted_proxies_decode() -> None:
    tree = server_tree(
        listener_wrappers=[{"wrapper": "http_redirect"}, {"wrapper": "proxy_protocol", "timeout": "2s", "allow": ["10.0.0.0/8"],
                                                          "fallback_policy": "USE"}, {"wrapper": "tls"}],
        trusted_proxies={"source": "static", "ranges": ["10.0.0.0/8", "::1"]},
    )
    server = decode_config(tree).apps["http"].config.servers["srv0"]
    assert [w.id for w in server.listener_wrappers] == [
        "caddy.listeners.http_redirect", "caddy.listeners.proxy_protocol", "caddy.listeners.tls"]
    assert server.trusted_proxies.id == "http.ip_sources.static"


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"listener_wrappers": [{"wrapper": "http_redirekt"}]}, "apps.http.servers.srv0.listener_wrappers[0].wrapper",
         "unknown module 'caddy.listeners.http_redirekt' (did you mean 'http_redirect'?)"),
        ({"listener_wrappers": [{"wrapper": "proxy_protocol", "allow": ["10.0.0.1"]}]},
         "apps.http.servers.srv0.listener_wrappers[0].allow[0]", "parsing CIDR expression '10.0.0.1'"),
        ({"listener_wrappers": [{"wrapper": "proxy_protocol", "fallback_policy": "MAYBE"}]},
         "apps.http.servers.srv0.listener_wrappers[0].fallback_policy", "invalid policy 'MAYBE'"),
        ({"trusted_proxies": {"source": "static", "ranges": ["10.0.0.0/8", "ten"]}},
         "apps.http.servers.srv0.trusted_proxies.ranges[1]", "invalid IP address: 'ten'"),
        ({"trusted_proxies": {"ranges": []}}, "apps.http.servers.srv0.trusted_proxies.source", "module name missing"),
    ],
)
def test_bad_wrapper_or_proxy_source(fields: dict[str, Any], path: str, message: str) -> None:
    error = error_of(server_tree(**fields))
    assert error.path == path
    assert message in error.message


def test_http_app_fields() -> None:
    tree = {"apps": {"http": {"http_port": 8080, "https_port": 8443, "grace_period": "10s", "shutdown_delay": 1000000000,
                              "metrics": {"per_host": True}, "servers": {}}}}
    app = decode_config(tree).apps["http"].config
    assert (app.http_port, app.https_port, app.grace_period, app.shutdown_delay) == (8080, 8443, 10.0, 1.0)
    assert "port out of range" in error_of({"apps": {"http": {"http_port": 70000}}}).message


# --- admin, logging, storage ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "path", "message"),
    [
        ({"admin": {"listen": "localhost:2019-2020"}}, "admin.listen", "must have exactly one address"),
        ({"admin": {"listen": "localhost:http"}}, "admin.listen", "invalid admin address"),
        ({"admin": {"config": {"persist": "no"}}}, "admin.config.persist", "expected a boolean"),
        ({"admin": {"config": {"load": {"module": "http"}}}}, "admin.config.load.module", "unknown module 'caddy.config_loaders.http'"),
        ({"storage": {"module": "redis"}}, "storage.module", "unknown module 'caddy.storage.redis'"),
        ({"storage": {"module": "file_system", "path": "/x"}}, "storage.path", "unknown field"),
        ({"logging": {"logs": {"x": {"level": "LOUD"}}}}, "logging.logs.x.level", "unrecognized log level 'LOUD'"),
        ({"logging": {"logs": {"x": {"writer": {"output": "fiel"}}}}}, "logging.logs.x.writer.output",
         "unknown module 'caddy.logging.writers.fiel' (did you mean 'file'?)"),
        ({"logging": {"logs": {"x": {"writer": {"output": "file", "mode": "rw"}}}}}, "logging.logs.x.writer.mode", "invalid file mode"),
        ({"logging": {"logs": {"x": {"encoder": {"format": "filter", "fields": {"a": {"filter": "blur"}}}}}}},
         "logging.logs.x.encoder.fields['a'].filter", "unknown field filter 'blur'"),
        ({"logging": {"logs": {"x": {"encoder": {"format": "filter", "wrap": {"format": "xml"}}}}}},
         "logging.logs.x.encoder.wrap.format", "unknown module 'caddy.logging.encoders.xml'"),
        ({"logging": {"logs": {"x": {"include": ["a"], "exclude": ["a"]}}}}, "logging.logs.x.include", "must not intersect"),
        ({"logging": {"logs": {"x": {"include": ["a"], "exclude": ["b"]}}}}, "logging.logs.x.include",
         "each element must be a superspace or subspace"),
        ({"logging": {"logs": {"x": {"sampling": {"interval": "often"}}}}}, "logging.logs.x.sampling.interval", "invalid duration"),
        ({"logging": {"sink": {"level": "nope"}}}, "logging.sink.level", "unrecognized log level"),
    ],
)
def test_bad_top_level_sections(tree: dict[str, Any], path: str, message: str) -> None:
    error = error_of(tree)
    assert error.path == path
    assert message in error.message


def test_logging_accepts_rule_and_exception_namespaces() -> None:
    tree = {"logging": {"logs": {"x": {"include": ["http.log.access"], "exclude": ["http.log.access.skip"],
                                       "level": "{env.LEVEL}", "writer": {"output": "net", "address": "udp/:514"},
                                       "encoder": {"format": "console", "time_format": "iso8601", "message_key": ""}}}}}
    decode_config(tree)


# --- validate_tree -----------------------------------------------------------------------------


def test_validate_tree_refuses_the_expression_matcher_at_its_path() -> None:
    tree = server_tree(routes=[{"handle": [{"handler": "static_response"}]},
                               {"match": [{"not": [{"expression": {"expr": "true", "name": "m"}}]}],
                                "handle": [{"handler": "static_response"}]}])
    decode_config(tree)  # the shape is fine
    with pytest.raises(ConfigError) as info:
        validate_tree(tree)
    assert str(info.value).startswith("apps.http.servers.srv0.routes[1].match[0].not[0].expression: "
                                      "the expression (CEL) matcher is not supported")


def test_validate_tree_accepts_the_status_tests_of_handle_errors() -> None:
    config, _ = adapt_text(":80 {\n\trespond x\n\thandle_errors 404 410 5xx {\n\t\trespond oops\n\t}\n}\n")
    assert isinstance(validate_tree(config), Config)


def test_validate_tree_accepts_an_adapted_config() -> None:
    text = "{\n\tlog {\n\t\tlevel INFO\n\t}\n}\n:8080 {\n\t@api path /api/*\n\trespond @api 404\n\tlog\n}\n"
    config, _ = adapt_text(text)
    assert isinstance(validate_tree(config), Config)


@pytest.mark.parametrize(
    ("matcher_set", "path", "message"),
    [
        ({"host": ["a.example.com", "A.example.COM"]}, "apps.http.servers.srv0.routes[0].match[0].host[1]",
         "host at index 0 is repeated at index 1"),
        ({"method": ["GET", "PO ST"]}, "apps.http.servers.srv0.routes[0].match[0].method[1]", "invalid HTTP method 'PO ST'"),
    ],
)
def test_validate_tree_checks_list_shaped_matchers(matcher_set: dict[str, Any], path: str, message: str) -> None:
    tree = server_tree(routes=[{"match": [matcher_set], "handle": [{"handler": "static_response"}]}])
    decode_config(tree)
    with pytest.raises(ConfigError) as info:
        validate_tree(tree)
    assert info.value.path == path
    assert message in info.value.message
