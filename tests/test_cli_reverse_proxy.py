"""`rws reverse-proxy`: the config it builds from its options (compared with the JSON Caddy's
`caddy reverse-proxy` builds), and the command as a user runs it: a real rws process
between an HTTP client and small real backends on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.processes import Process
from rws.config.model import validate_tree
from rws.errors import RwsError
from rws.handlers.reverse_proxy.command import proxy_plan

pytestmark = pytest.mark.timeout(60)

ADMIN_OFF = {"disabled": True, "config": {"persist": False}}


def proxy_handler(*dials: str, **extra: Any) -> dict[str, Any]:
    return {"handler": "reverse_proxy", "transport": {"protocol": "http"},
            "upstreams": [{"dial": dial} for dial in dials], **extra}


def tree_of(server: dict[str, Any], **apps: Any) -> dict[str, Any]:
    return {"admin": ADMIN_OFF, "apps": {"http": {"servers": {"proxy": server}}, **apps}}


# --- the config --------------------------------------------------------------------------------


def test_the_defaults_build_the_config_caddy_builds() -> None:
    # caddy reverse-proxy --to localhost:9000: https://localhost, so :443 and a host matcher
    plan = proxy_plan(from_address="localhost", to=["localhost:9000"])
    assert plan.tree == tree_of({
        "listen": [":443"],
        "routes": [{"match": [{"host": ["localhost"]}], "handle": [proxy_handler("localhost:9000")]}],
    })
    assert (plan.from_url, plan.dials) == ("https://localhost", ("localhost:9000",))
    assert plan.warnings == (
        "https://localhost needs a certificate, and rws has no automatic HTTPS yet: it serves plain HTTP on :443",
    )


def test_a_domain_with_https_upstreams_and_every_tls_option() -> None:
    plan = proxy_plan(from_address="example.com", to=["https://backend:8443"], insecure=True, internal_certs=True,
                      disable_redirects=True)
    assert plan.tree == tree_of(
        {
            "listen": [":443"],
            "routes": [{
                "match": [{"host": ["example.com"]}],
                "handle": [{"handler": "reverse_proxy",
                            "transport": {"protocol": "http", "tls": {"insecure_skip_verify": True}},
                            "upstreams": [{"dial": "backend:8443"}]}],
            }],
            "automatic_https": {"disable_redirects": True},
        },
        tls={"automation": {"policies": [{"subjects": ["example.com"], "issuers": [{"module": "internal"}]}]}},
    )


def test_an_https_upstream_without_insecure_verifies_certificates() -> None:
    handler = proxy_plan(from_address=":8080", to=["https://backend"]).tree["apps"]["http"]["servers"]["proxy"]
    assert handler["routes"][0]["handle"][0]["transport"] == {"protocol": "http", "tls": {}}
    assert handler["routes"][0]["handle"][0]["upstreams"] == [{"dial": "backend:443"}]


@pytest.mark.parametrize(
    ("from_address", "listen", "host", "url"),
    [
        (":8080", ":8080", None, "http://:8080"),
        ("localhost:8080", ":8080", "localhost", "http://localhost:8080"),
        ("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1", "http://127.0.0.1:0"),
        ("[::1]:9000", "[::1]:9000", "::1", "http://[::1]:9000"),
        ("http://example.com", ":80", "example.com", "http://example.com"),
        ("example.com:80", ":80", "example.com", "http://example.com"),
        ("http://example.com:8080", ":8080", "example.com", "http://example.com:8080"),
    ],
)
def test_plain_http_addresses_turn_automatic_https_off(from_address: str, listen: str, host: str | None,
                                                      url: str) -> None:
    plan = proxy_plan(from_address=from_address, to=["localhost:9000"])
    route: dict[str, Any] = {"match": [{"host": [host]}]} if host else {}
    route["handle"] = [proxy_handler("localhost:9000")]
    assert plan.tree == tree_of({"listen": [listen], "routes": [route], "automatic_https": {"disable": True}})
    assert plan.from_url == url


@pytest.mark.parametrize(
    ("from_address", "listen", "url"),
    [
        ("localhost", ":443", "https://localhost"),
        ("example.com", ":443", "https://example.com"),
        ("example.com:8443", ":8443", "https://example.com:8443"),
        ("https://localhost:8443", ":8443", "https://localhost:8443"),
        ("127.0.0.1:443", "127.0.0.1:443", "https://127.0.0.1"),
    ],
)
def test_addresses_that_need_a_certificate_keep_automatic_https(from_address: str, listen: str, url: str) -> None:
    plan = proxy_plan(from_address=from_address, to=["localhost:9000"])
    server = plan.tree["apps"]["http"]["servers"]["proxy"]
    assert server["listen"] == [listen]
    assert "automatic_https" not in server
    assert plan.from_url == url
    assert plan.warnings[0].startswith(f"{url} needs a certificate")


def test_disable_redirects_and_internal_certs_need_https_and_a_host() -> None:
    plan = proxy_plan(from_address=":8080", to=["localhost:9000"], disable_redirects=True, internal_certs=True)
    assert plan.tree["apps"]["http"]["servers"]["proxy"]["automatic_https"] == {"disable": True}
    assert "tls" not in plan.tree["apps"]


def test_header_options_and_change_host_header_set_request_and_response_fields() -> None:
    plan = proxy_plan(from_address=":8080", to=["localhost:9000"], change_host_header=True,
                      header_up=["x-up: one", "Host: ignored", "X-Up:two"], header_down=["X-Down: a: b"])
    handler = plan.tree["apps"]["http"]["servers"]["proxy"]["routes"][0]["handle"][0]
    assert handler["headers"] == {
        "request": {"set": {"X-Up": ["two"], "Host": ["{http.reverse_proxy.upstream.hostport}"]}},
        "response": {"set": {"X-Down": ["a: b"]}},
    }


def test_access_log_and_debug_turn_on_logs() -> None:
    plan = proxy_plan(from_address=":8080", to=["localhost:9000"], access_log=True, debug=True)
    assert plan.tree["apps"]["http"]["servers"]["proxy"]["logs"] == {}
    assert plan.tree["logging"] == {"logs": {"default": {"level": "DEBUG"}}}


def test_upstreams_repeat_split_on_commas_and_expand_port_ranges() -> None:
    plan = proxy_plan(from_address=":8080", to=["a:1,b:2", "c:10-12", "unix//run/app.sock", "http://d"])
    assert plan.dials == ("a:1", "b:2", "c:10", "c:11", "c:12", "unix//run/app.sock", "d:80")
    handler = plan.tree["apps"]["http"]["servers"]["proxy"]["routes"][0]["handle"][0]
    assert handler["upstreams"] == [{"dial": dial} for dial in plan.dials]


def test_h2c_upstreams_speak_cleartext_http2_as_in_an_rwsfile() -> None:
    handler = proxy_plan(from_address=":8080", to=["h2c://a:81"]).tree["apps"]["http"]["servers"]["proxy"]
    assert handler["routes"][0]["handle"][0]["transport"] == {"protocol": "http", "versions": ["h2c", "2"]}


def test_insecure_without_https_upstreams_is_accepted_with_a_warning() -> None:
    # Caddy accepts it and does nothing; rws says so
    plan = proxy_plan(from_address=":8080", to=["localhost:9000"], insecure=True)
    handler = plan.tree["apps"]["http"]["servers"]["proxy"]["routes"][0]["handle"][0]
    assert handler["transport"] == {"protocol": "http"}
    assert plan.warnings == (
        "--insecure has no effect: no upstream is an https:// URL, so rws does not use TLS to reach them",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"to": []}, "--to is required"),
        ({"to": ["foo:bar"]},
         '--to \'foo:bar\': invalid upstream address: invalid start port: parsing "bar": invalid syntax'),
        ({"to": ["http://a/path"]},
         ("--to 'http://a/path': invalid upstream address: "
          "for now, URLs for proxy upstreams only support scheme, host, and port components")),
        ({"to": ["https://a:80"]},
         ("--to 'https://a:80': invalid upstream address: "
          "upstream address has conflicting scheme (https://) and port (:80, the HTTP port)")),
        ({"to": ["ftp://a:21"]}, "--to 'ftp://a:21': unsupported URL scheme ftp://"),
        ({"to": ["http://a", "https://b"]},
         "--to 'https://b': all upstreams must use the same scheme; expected http://, got https://"),
        ({"from_address": "example.com/api"}, "--from 'example.com/api': paths are not allowed"),
        ({"from_address": "localhost:http"},
         "--from 'localhost:http': invalid downstream address: invalid port 'http'"),
        ({"header_up": ["X-No-Colon"]}, "--header-up 'X-No-Colon': expected 'Field: value'"),
        ({"header_up": ["X-Empty:"]}, "--header-up 'X-Empty:': expected 'Field: value'"),
        ({"header_down": [": value"]}, "--header-down ': value': expected 'Field: value'"),
    ],
)
def test_bad_options_are_one_line_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(RwsError) as caught:
        proxy_plan(**{"from_address": ":8080", "to": ["localhost:9000"], **options})
    assert str(caught.value) == message


@pytest.mark.parametrize("from_address", [":8080", "127.0.0.1:0", "localhost", "example.com", "http://example.com"])
def test_every_built_config_decodes(from_address: str) -> None:
    plan = proxy_plan(from_address=from_address, to=["https://b:8443"],
                      change_host_header=True, insecure=True, internal_certs=True, disable_redirects=True,
                      header_up=["X-A: 1"], header_down=["X-B: 2"], access_log=True, debug=True)
    validate_tree(plan.tree)


# --- the command ---------------------------------------------------------------------------------


class Backend:
    """An HTTP/1.1 server on loopback that answers with what it received, as JSON."""

    def __init__(self, name: str) -> None:
        self.hits = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                backend.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = json.dumps({"backend": name, "method": self.command, "path": self.path,
                                   "headers": dict(self.headers.items()), "body": body.decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Backend", name)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}


@pytest.fixture
def backend() -> Iterator[Callable[[str], Backend]]:
    started: list[Backend] = []

    def start(name: str) -> Backend:
        started.append(Backend(name))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture
def proxy(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(*args: str) -> Process:
        started.append(Process(["reverse-proxy", "--from", "127.0.0.1:0", *args], tmp_path, env))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def test_a_request_reaches_the_backend_and_its_response_comes_back(backend: Any, proxy: Any) -> None:
    app = backend("app")
    process = proxy("--to", app.address)
    response = httpx.post(process.url("/some/path?q=1"), content=b"hello upstream", timeout=30)
    assert response.status_code == 200
    assert response.headers["x-backend"] == "app"
    seen = response.json()
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/some/path?q=1", "hello upstream")
    assert seen["headers"]["Host"] == response.url.netloc.decode()  # the incoming Host is passed on
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert process.stop() == 0


def test_the_startup_record_says_where_from_and_to(backend: Any, proxy: Any) -> None:
    app = backend("app")
    process = proxy("--to", app.address)
    record = process.wait_for("proxying")
    assert (record["from"], record["to"]) == ("http://127.0.0.1:0", [app.address])


def test_two_upstreams_both_get_traffic(backend: Any, proxy: Any) -> None:
    first, second = backend("first"), backend("second")
    process = proxy("--to", first.address, "--to", second.address)
    with httpx.Client(timeout=30) as client:
        answered_by = {client.get(process.url()).headers["x-backend"] for _ in range(40)}
    assert answered_by == {"first", "second"}  # random selection: both miss 40 times with p = 2**-39
    assert first.hits + second.hits == 40


def test_change_host_header_sends_the_upstream_address_as_host(backend: Any, proxy: Any) -> None:
    app = backend("app")
    process = proxy("--to", app.address, "--change-host-header")
    assert httpx.get(process.url(), timeout=30).json()["headers"]["Host"] == app.address


def test_header_up_and_header_down_set_fields(backend: Any, proxy: Any) -> None:
    app = backend("app")
    process = proxy("--to", app.address, "--header-up", "X-Up: to the backend",
                    "--header-down", "X-Backend: rewritten", "--header-down", "X-Down: to the client")
    response = httpx.get(process.url(), headers={"X-Up": "from the client"}, timeout=30)
    assert response.json()["headers"]["X-Up"] == "to the backend"
    assert (response.headers["x-backend"], response.headers["x-down"]) == ("rewritten", "to the client")


def test_the_host_matcher_of_from_applies(backend: Any, proxy: Any) -> None:
    app = backend("app")
    process = proxy("--to", app.address)
    response = httpx.get(process.url(), headers={"Host": "other.example"}, timeout=30)
    assert response.status_code == 200 and response.text == ""  # no route matched: an empty 200, as Caddy
    assert app.hits == 0


def test_access_log_logs_each_request(backend: Any, proxy: Any) -> None:
    app = backend("app")
    process = proxy("--to", app.address, "--access-log")
    httpx.get(process.url("/logged"), timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(r.get("request", {}).get("uri") == "/logged" for r in process.records):
            return
        time.sleep(0.02)
    raise AssertionError("".join(process.lines))


def test_an_unreachable_upstream_is_a_502_and_debug_logs_why(tmp_path: Path, proxy: Any) -> None:
    process = proxy("--to", "unix/" + str(tmp_path / "nobody-listens.sock"), "--debug")
    assert httpx.get(process.url(), timeout=30).status_code == 502
    deadline = time.monotonic() + 30
    while not any(r.get("level") == "debug" for r in process.records):
        assert time.monotonic() < deadline, "".join(process.lines)
        time.sleep(0.02)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rws", "reverse-proxy", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "127.0.0.1:notaport"],
         ("--to '127.0.0.1:notaport': invalid upstream address: "
          'invalid start port: parsing "notaport": invalid syntax')),
        (["--to", "127.0.0.1:9000", "--header-up", "no colon"], "--header-up 'no colon': expected 'Field: value'"),
        ([], "--to is required"),
    ],
)
def test_bad_input_exits_1_with_one_line(tmp_path: Path, env: dict[str, str], args: list[str], message: str) -> None:
    result = _run(["--from", "127.0.0.1:0", *args], tmp_path, env)
    assert (result.returncode, result.stderr, result.stdout) == (1, message + "\n", "")
