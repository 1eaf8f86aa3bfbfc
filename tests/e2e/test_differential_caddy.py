"""Differential acceptance test: real Caddy 2.6.2 and rws serve the same Rwsfiles and must
give the same answers.

Every `sites/<name>.rwsfile` is a template whose sites listen on `{PORT}`, bound to
127.0.0.1. For each file one pair of servers runs as subprocesses (`caddy run --config X
--adapter caddyfile` and `python -m rws run --config X`), each on its own free loopback
port, with `admin off` and XDG_DATA_HOME / XDG_CONFIG_HOME inside the test's temporary
directory. Both run with `sites/` as their working directory, so the templates use
relative roots for the content in `sites/<name>/`. The cases below (grouped by site file,
so each pair starts once) send the same request to both servers, over HTTP/1.1 and again
over HTTP/2 (h2c prior knowledge: both servers run `protocols h1 h2c`), and compare the status
line, every response header except `Server`, `Date` and `Alt-Svc`, and the body (decoded
when it has a Content-Encoding).

Only behaviour on which Caddy 2.6.2 and the latest Caddy agree is compared (rws follows
the latest). Where they differ (⚑ in /work/shared/reference/caddy-compat.md, or found
here and confirmed in the latest source) the request or header is left out, and a
comment says why. Two differences are normalised everywhere instead:
- ETag format: 2.6.2 sends `"<mtime seconds><size>"`, latest `"<mtime ns>-<size>"` (both
  base 36), and latest appends `-gzip`/`-zstd` when `encode` compresses. Each server's
  ETag must have its version's form; where a case names the file, the exact value is
  checked against that file. Conditional requests echo the ETag each server sent.
- `Vary: Accept-Encoding`: latest's file_server always adds it (caddy#5849), 2.6.2 only
  when it compresses; on file responses that token is not compared.
Random multipart/byteranges boundaries are replaced by a marker; answers to malformed
requests are compared by status only (their texts are Go's).
A comparison that shows an rws bug is marked `xfail(strict=True)` with the reason.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard

SITES = Path(__file__).parent / "sites"
CADDY = shutil.which("caddy")
IGNORED_HEADERS = frozenset({"server", "date", "alt-svc"})
STARTUP_SECONDS = 20.0
SERVERS = ("caddy", "rws")
H2C = "\tadmin off\n\tservers {\n\t\tprotocols h1 h2c\n\t}\n"  # both serve HTTP/2 too, for the same cases

pytestmark = pytest.mark.skipif(CADDY is None, reason="caddy (2.6.2) is not installed")


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """A loopback port that was free a moment ago (the server binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Poll the port with a socket until it accepts, the process dies, or time runs out."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {port} after {STARTUP_SECONDS}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def command(server: str, config: Path) -> list[str]:
    if server == "caddy":
        return [str(CADDY), "run", "--config", str(config), "--adapter", "caddyfile"]
    return [sys.executable, "-m", "rws", "run", "--config", str(config)]


class Servers:
    """Caddy and rws serving one site file at a time; asking for another site file stops
    the running pair first."""

    def __init__(self, workdirs: pytest.TempPathFactory) -> None:
        self.workdirs = workdirs
        self.site = ""
        self.ports: dict[str, int] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.failure: RuntimeError | None = None

    def port(self, site: str, server: str) -> int:
        """The port of `server` serving `site`; a pair that failed to start fails every
        case of its site with the same startup error."""
        if site != self.site:
            self.close()
            self.failure = None
            try:
                self.start(site)
            except RuntimeError as exc:
                self.failure = exc
        if self.failure is not None:
            raise self.failure
        return self.ports[server]

    def start(self, site: str) -> None:
        workdir = self.workdirs.mktemp(site)
        template = (SITES / f"{site}.rwsfile").read_text()
        env = dict(os.environ, XDG_DATA_HOME=str(workdir / "data"), XDG_CONFIG_HOME=str(workdir / "config"),
                   RWS_DIFF_VALUE="from the environment")
        env.pop("RWS_DIFF_MISSING", None)
        logs = {}
        for server in SERVERS:
            self.ports[server] = free_port()
            config = workdir / f"{site}.{server}.rwsfile"
            config.write_text(template.replace("{PORT}", str(self.ports[server])).replace("\tadmin off\n", H2C, 1))
            logs[server] = workdir / f"{server}.log"
            with logs[server].open("wb") as log:
                self.procs.append(subprocess.Popen(command(server, config), cwd=SITES, env=env,
                                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        self.site = site
        for proc, server in zip(self.procs, SERVERS):
            wait_until_listening(proc, self.ports[server], logs[server])

    def close(self) -> None:
        procs, self.procs, self.site = self.procs, [], ""
        for proc in procs:
            stop(proc)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory)
    try:
        yield running
    finally:
        running.close()


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Answer:
    """What a server answered: status, reason, headers (lower-cased names, values in
    order), decoded body; or `error` when the connection closed without a response."""

    status: int = 0
    reason: str = ""
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""


@dataclass(frozen=True)
class Case:
    """One request sent to both servers.

    `raw`: bytes sent over a socket instead (the request target exactly as written;
    `{HOST}` becomes the server's address). A header value `{ETAG}` becomes the ETag the
    same server sent for a plain GET of the same path. `body_pattern`: both bodies must
    fully match this regexp instead of being equal. `skip_headers`: header names not
    compared (each use says why). `file_vary`: the answer comes from file_server, so a
    `Vary: Accept-Encoding` token is not compared. `etag_file`: the ETag must be exactly
    each version's formula for this file under sites/. `status_only`: compare only the
    status (answers to malformed requests, whose texts are Go's own). `bug`: an rws bug,
    xfail. Each case without `raw` is sent over cleartext HTTP/2 too, unless `http2` is
    off."""

    site: str
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    raw: bytes | None = None
    body_pattern: str | None = None
    skip_headers: tuple[str, ...] = ()
    file_vary: bool = False
    etag_file: str | None = None
    status_only: bool = False
    bug: str | None = None
    label: str = ""
    http2: bool = True

    @property
    def id(self) -> str:
        return f"{self.site}:{self.method} {self.path}{' ' + self.label if self.label else ''}"


def decode_body(encoding: str, data: bytes) -> bytes:
    """The payload of a `Content-Encoding: gzip|zstd` body (other encodings unchanged)."""
    if encoding == "gzip" and data:
        return gzip.decompress(data)
    if encoding == "zstd" and data:
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def fetch(case: Case, port: int, http2: bool = False) -> Answer:
    """`http2`: over cleartext HTTP/2 (prior knowledge)."""
    if case.raw is not None:
        return fetch_raw(case.raw.replace(b"{HOST}", f"127.0.0.1:{port}".encode()), port)
    headers = list(case.headers)
    if any("{ETAG}" in value for _, value in headers):
        etag = fetch(Case(case.site, case.path), port, http2).headers.get("etag", [""])[0]
        headers = [(name, value.replace("{ETAG}", etag)) for name, value in headers]
    with httpx.Client(timeout=10, follow_redirects=False, http1=not http2, http2=http2) as client:
        del client.headers["accept-encoding"]  # only the encodings a case asks for
        try:
            with client.stream(case.method, f"http://127.0.0.1:{port}{case.path}", headers=headers,
                               content=case.content) as response:
                raw = b"".join(response.iter_raw())
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            return Answer(error=type(exc).__name__)
    found: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        found.setdefault(name.lower(), []).append(value)
    body = decode_body(response.headers.get("content-encoding", ""), raw)
    return Answer(response.status_code, response.reason_phrase, found, body)


def fetch_raw(data: bytes, port: int) -> Answer:
    """Send `data` (one request that says `Connection: close`) and parse the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # a reset after the answer still leaves the answer
            pass
    received = b"".join(chunks)
    if not received:
        return Answer(error="closed")
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    found: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    if found.get("transfer-encoding") == ["chunked"]:
        body = dechunk(body)
    _, status, reason = (status_line.split(" ", 2) + [""])[:3]
    return Answer(int(status), reason, found, decode_body(found.get("content-encoding", [""])[0], body))


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return bytes(out)


# --------------------------------------------------------------------------- comparing


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def expected_etag(server: str, relative: str) -> str:
    """Each version's ETag for a file under sites/ (latest: caddy's calculateEtag)."""
    info = (SITES / relative).stat()
    if server == "caddy":
        return f'"{base36(int(info.st_mtime))}{base36(info.st_size)}"'
    return f'"{base36(info.st_mtime_ns)}-{base36(info.st_size)}"'


ETAG_FORMS = {
    "caddy": re.compile(r'"[0-9a-z]+"'),
    "rws": re.compile(r'"[0-9a-z]+-[0-9a-z]+(?:-gzip|-zstd)?"'),
}


def normal_etag(case: Case, server: str, value: str) -> str:
    if case.etag_file is not None:
        return "<etag of file>" if value == expected_etag(server, case.etag_file) else value
    return "<etag>" if ETAG_FORMS[server].fullmatch(value) else value


def comparable(case: Case, server: str, answer: Answer) -> dict[str, Any]:
    """The parts of an answer that must be equal between the two servers."""
    skip = IGNORED_HEADERS | {h.lower() for h in case.skip_headers}
    headers = {k: list(v) for k, v in answer.headers.items() if k not in skip}
    if "etag" in headers:
        headers["etag"] = [normal_etag(case, server, v) for v in headers["etag"]]
    if case.file_vary and "vary" in headers:
        tokens = [t.strip() for v in headers.pop("vary") for t in v.split(",")]
        if kept := [t for t in tokens if t.lower() != "accept-encoding"]:
            headers["vary"] = [", ".join(kept)]
    body: Any = answer.body
    boundary = re.search(r"multipart/byteranges; boundary=(\S+)", headers.get("content-type", [""])[0])
    if boundary:  # random per response
        headers["content-type"] = ["multipart/byteranges; boundary=<boundary>"]
        body = body.replace(boundary.group(1).encode(), b"<boundary>")
    if case.status_only:
        return {"error": answer.error, "status": answer.status, "reason": "", "headers": {}, "body": b""}
    if case.body_pattern is not None:
        body = bool(re.fullmatch(case.body_pattern, answer.body.decode(errors="replace"), re.DOTALL))
    return {"error": answer.error, "status": answer.status, "reason": answer.reason, "headers": headers,
            "body": body}


def describe_difference(caddy: dict[str, Any], rws: dict[str, Any]) -> str:
    """Only the parts that differ, Caddy's value first."""
    lines = [f"{part}: caddy={caddy[part]!r} rws={rws[part]!r}"
             for part in ("error", "status", "reason", "body") if caddy[part] != rws[part]]
    for name in sorted(set(caddy["headers"]) | set(rws["headers"])):
        if caddy["headers"].get(name) != rws["headers"].get(name):
            lines.append(f"header {name}: caddy={caddy['headers'].get(name)} rws={rws['headers'].get(name)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- cases


def cases_for(site: str, **defaults: Any) -> Callable[..., Case]:
    """A Case maker for one site file; `headers` may be a dict or a tuple of pairs."""
    def make(path: str, method: str = "GET", **kwargs: Any) -> Case:
        if isinstance(kwargs.get("headers"), dict):
            kwargs["headers"] = tuple(kwargs["headers"].items())
        return Case(site, path, method, **{**defaults, **kwargs})
    return make


def last_modified_of(relative: str) -> str:
    return formatdate((SITES / relative).stat().st_mtime, usegmt=True)


def raw_get(target: str, host: str = "{HOST}") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def basic(user: str, password: str, host: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Host": host, "Authorization": f"Basic {token}"}


# Framing: Go's net/http gives a response that the handler finished within its 2 KiB
# write buffer a Content-Length, otherwise chunked encoding; the other cases of that kind
# leave the two headers out and one case per site pins the difference as a bug.
FRAMING = ("Content-Length", "Transfer-Encoding")

CASES: list[Case] = []

# respond ---------------------------------------------------------------------------
r = cases_for("respond")
CASES += [
    r("/plain"),
    r("/plain", "HEAD"),
    r("/plain", "POST", content=b"ignored"),
    r("/status-only"),
    r("/three-digits"),
    r("/body-and-status"),
    r("/json-object"),
    r("/json-array"),
    r("/json-padded"),
    r("/json-invalid"),
    r("/json-mismatched"),
    r("/not-json-scalar"),
    r("/unknown-placeholder"),
    r("/placeholders?a=1&b=%20x", headers={"Host": "Example.TEST:8080"}),
    r("/multiline"),
    r("/empty-body"),
    r("/status-500"),
    r("/unicode"),
    # (over HTTP/2, Caddy sends its GOAWAY ahead of the response, which h2, httpx's
    # HTTP/2, can't take; rws sends it after)
    r("/close", http2=False),
    r("/block"),
    r("/redirect-ish"),
    r("/with-type"),
    r("/nothing-here", label="no route answers: empty 200"),
    r("/nothing-here", "DELETE"),
]

# HTTP/1 request handling, sent as raw bytes. Error answers are compared by status only:
# their texts are Go's (e.g. the reason `Bad Request: missing required Host header`).
CLOSE = "Connection: close\r\n\r\n"
CASES += [
    r("/plain", raw=b"GET /plain HTTP/1.0\r\n\r\n", label="HTTP/1.0 without Host", skip_headers=("Connection",)),
    r("/plain", raw=b"GET /plain HTTP/1.0\r\n\r\n", label="HTTP/1.0 Connection header"),
    r("/plain", raw=f"GET /plain HTTP/1.1\r\n{CLOSE}".encode(), status_only=True, label="no Host"),
    r("/plain", raw=f"GET /plain HTTP/1.1\r\nHost: x\r\nHost: y\r\n{CLOSE}".encode(), status_only=True,
      label="two Hosts"),
    r("/bad%zz", raw=f"GET /bad%zz HTTP/1.1\r\nHost: x\r\n{CLOSE}".encode(), status_only=True),
    r("*", "OPTIONS", raw=f"OPTIONS * HTTP/1.1\r\nHost: x\r\n{CLOSE}".encode()),
    r("/close", raw=b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", label="server closes"),
    r("/placeholders", raw=f"GET http://abs.test/placeholders?q=1 HTTP/1.1\r\nHost: other.test\r\n{CLOSE}".encode(),
      label="absolute-form target"),
    r("/plain", raw=f"GET /plain HTTP/1.1\r\nHost: a b\r\n{CLOSE}".encode(), status_only=True, label="bad Host"),
    r("/plain", raw=f"GET /plain HTTP/2.0\r\nHost: x\r\n{CLOSE}".encode(), status_only=True, label="HTTP/2.0 line"),
    r("/plain", "get", raw=f"get /plain HTTP/1.1\r\nHost: x\r\n{CLOSE}".encode(), label="lower-case method"),
    r("/plain", "FOO", raw=f"FOO /plain HTTP/1.1\r\nHost: x\r\n{CLOSE}".encode(), label="a method llhttp does not know"),
    r("/plain", "G(T", raw=f"G(T /plain HTTP/1.1\r\nHost: x\r\n{CLOSE}".encode(), status_only=True,
      label="a method that is not a token"),
    r("/plain", "POST", raw=("POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                             f"Transfer-Encoding: chunked\r\n{CLOSE}0\r\n\r\n").encode(), label="CL and TE",
      bug="deliberate: Content-Length together with Transfer-Encoding is refused with 400 and the connection closed "
          "(request smuggling); Caddy (Go) lets chunked win and answers 200"),
]

# redir -----------------------------------------------------------------------------
# `redir … html` is left out: latest adds a Content-Type header to the page.
d = cases_for("redir")
CASES += [
    d("/default"),
    d("/temporary"),
    d("/permanent"),
    d("/code-300"),
    d("/code-303"),
    d("/code-307"),
    d("/code-308"),
    d("/code-401"),
    d("/absolute"),
    d("/with-uri?x=1&y=%2F"),
    d("/with-path?q=v"),
    d("/relative"),
    d("/old/deeper/page.html"),
    d("/ph?k=value"),
    d("/ph"),
    d("/default", "POST"),
    d("/permanent", "HEAD"),
]

# error, abort, handle_errors -------------------------------------------------------------
# File responses here are unaffected by the 2.6.2 file_server differences except the
# ETag form and Vary (normalised). `POST` to a file is left out: latest answers 405 with
# `Allow: GET, HEAD` (caddy#5166), 2.6.2 served the file.
e = cases_for("errors")
E = {"Host": "errors.test"}
P = {"Host": "pages.test"}
N = {"Host": "plain.test"}
CASES += [
    e("/boom", headers=E),
    e("/default-status", headers=E),
    e("/status-only", headers=E),
    e("/forbidden", headers=E),
    e("/too-long", headers=E),
    e("/teapot", headers=E),
    e("/abort", headers=E),
    e("/fine", headers=E),
    e("/ok-status", headers=E),
    e("/files/present.txt", headers=E, file_vary=True),
    e("/files/missing.txt", headers=E),
    e("/boom", "HEAD", headers=E),
    e("/boom", headers=P, file_vary=True),
    e("/gone", headers=P, file_vary=True, etag_file="errors/pages/410.html"),
    e("/files/present.txt", headers=P, file_vary=True),
    e("/files/missing.txt", headers=P, file_vary=True),
    e("/fine", headers=P),
    e("/boom", headers=N),
    e("/teapot", headers=N),
    e("/files/missing.txt", headers=N),
    e("/files/present.txt", headers=N, file_vary=True),
    e("/boom", headers={"Host": "errors-header.test"}),
    e("/ok", headers={"Host": "unknown.test"}, label="unknown host"),
]

# file_server -------------------------------------------------------------------------
# Left out (2.6.2 and latest differ): methods other than GET/HEAD (latest 405 + Allow,
# caddy#5166; 2.6.2 served the file); the canonical-URI redirect keeping the query string
# (latest only); a file path with a trailing slash (latest 308 to the file, 2.6.2 404);
# a path that stat cannot take, e.g. `%00` or `/file.txt/x` (latest 400 via
# mapDirOpenError, 2.6.2 500 or 404); ETag and Last-Modified on 416 answers (latest's Go
# drops them from ServeContent errors, Go 1.23); the precompressed sidecar's explicit
# Content-Length on HEAD (latest, caddy#7040); browse listings' `Vary: Accept,
# Accept-Encoding` and Last-Modified (latest only); the attributes of browse's sort cookies
# (latest adds HttpOnly and SameSite=Lax).
f = cases_for("files", file_vary=True)
RANGE_ERROR = ("ETag", "Last-Modified")  # latest's Go removes them from error answers
LISTING = ("Vary", "Last-Modified")  # latest only
JSON = {"Accept": "application/json"}
CASES += [
    f("/"),
    f("/index.html"),
    f("/hello.txt", etag_file="files/hello.txt"),
    f("/hello.txt", "HEAD", etag_file="files/hello.txt"),
    f("/data.json"),
    f("/style.css"),
    f("/script.js"),
    f("/image.svg"),
    f("/unknown.xyz"),
    f("/README"),
    f("/missing.txt"),
    f("/secret.txt"),
    f("/.hidden"),
    f("/sub"),
    f("/sub", "HEAD"),
    f("/sub/"),
    f("/sub/page.txt"),
    f("/sub/index.html"),
    f("/noindex/"),
    f("/noindex"),
    # conditional requests
    f("/hello.txt", headers={"If-None-Match": "{ETAG}"}),
    f("/hello.txt", headers={"If-None-Match": '"something-else"'}),
    f("/hello.txt", headers={"If-None-Match": "*"}),
    f("/hello.txt", headers={"If-None-Match": "W/{ETAG}"}),
    f("/hello.txt", headers={"If-None-Match": '"a", {ETAG}'}),
    f("/hello.txt", "HEAD", headers={"If-None-Match": "{ETAG}"}),
    f("/hello.txt", headers={"If-Modified-Since": last_modified_of("files/hello.txt")}),
    f("/hello.txt", headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
    f("/hello.txt", headers={"If-Match": '"nope"'}),
    f("/hello.txt", headers={"If-Match": "{ETAG}"}),
    f("/hello.txt", headers={"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
    f("/hello.txt", headers={"If-Modified-Since": "garbage"}),
    f("/hello.txt", headers={"If-None-Match": "{ETAG}", "If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
    # ranges
    f("/alphabet.txt", headers={"Range": "bytes=0-4"}),
    f("/alphabet.txt", headers={"Range": "bytes=10-"}),
    f("/alphabet.txt", headers={"Range": "bytes=-5"}),
    f("/alphabet.txt", headers={"Range": "bytes=30-100"}),
    f("/alphabet.txt", headers={"Range": "bytes=100-200"}, skip_headers=RANGE_ERROR),
    f("/alphabet.txt", headers={"Range": "bytes=5-2"}, skip_headers=RANGE_ERROR),
    f("/alphabet.txt", headers={"Range": "items=0-1"}, skip_headers=RANGE_ERROR),
    f("/alphabet.txt", headers={"Range": "bytes=0-4", "If-Range": "{ETAG}"}),
    f("/alphabet.txt", headers={"Range": "bytes=0-4", "If-Range": '"stale"'}),
    f("/alphabet.txt", "HEAD", headers={"Range": "bytes=0-4"}),
    f("/alphabet.txt", headers={"Range": "bytes=0-"}),
    f("/alphabet.txt", headers={"Range": "bytes=-100"}),
    f("/alphabet.txt", headers={"Range": "bytes=-0"}),
    f("/alphabet.txt", headers={"Range": "bytes=0-1,4-5"}),
    f("/alphabet.txt", headers={"Range": "bytes=0-1,1-2"}),
    # precompressed sidecar
    f("/compressed.txt"),
    f("/compressed.txt", headers={"Accept-Encoding": "gzip"}, etag_file="files/compressed.txt.gz"),
    f("/compressed.txt", headers={"Accept-Encoding": "br"}),
    f("/compressed.txt", headers={"Accept-Encoding": "gzip;q=0"}),
    f("/compressed.txt", "HEAD", headers={"Accept-Encoding": "gzip"}, skip_headers=("Content-Length",)),
    f("/compressed.txt.gz"),
    f("/hello.txt", headers={"Accept-Encoding": "gzip"}),
    # custom index
    f("/custom-index/custom/"),
    f("/custom-index/sub/"),
    f("/custom-index/noindex/"),
    f("/custom-index/custom"),
    # browse: the JSON listing (every field, mod_time included: both print RFC 3339 from
    # the same files); the HTML page's markup is each server's own (status, type only)
    f("/browse/noindex/", headers=JSON, skip_headers=LISTING),
    f("/browse/noindex/nested/", headers=JSON, skip_headers=LISTING),
    f("/browse/noindex", headers=JSON),
    f("/browse/noindex/?sort=size&order=desc", headers=JSON, skip_headers=LISTING + ("Set-Cookie",)),
    f("/browse/noindex/?limit=1", headers=JSON, skip_headers=LISTING),
    f("/browse/noindex/a.txt", headers=JSON),
    f("/browse/sub/", headers=JSON),
    f("/browse/noindex/", body_pattern=r".*a\.txt.*b\.txt.*", skip_headers=LISTING + FRAMING, label="html"),
    # request targets a client library would normalise, sent as written
    f("/sub/../hello.txt", raw=raw_get("/sub/../hello.txt")),
    f("/../../etc/passwd", raw=raw_get("/../../etc/passwd")),
    f("/%2e%2e/%2e%2e/etc/passwd", raw=raw_get("/%2e%2e/%2e%2e/etc/passwd")),
    f("/sub%2fpage.txt", raw=raw_get("/sub%2fpage.txt")),
    f("/hel%6co.txt", raw=raw_get("/hel%6co.txt")),
    f("//hello.txt", raw=raw_get("//hello.txt")),
    f("/noindex/with%20space.txt", raw=raw_get("/noindex/with%20space.txt")),
]

# header --------------------------------------------------------------------------------
h = cases_for("headers")
CASES += [
    h("/set"),
    h("/placeholder"),
    h("/multi"),
    h("/delete-type"),
    h("/delete-wild"),
    h("/replace"),
    h("/regex"),
    h("/defer"),
    h("/no-defer"),
    h("/default"),
    h("/overwrite"),
    h("/cache"),
    h("/trailing-colon"),
    h("/files/plain.txt", file_vary=True),
    h("/files/deferred.txt", file_vary=True),
    h("/files/other.txt", file_vary=True),
    h("/files/missing.txt"),
]

# request_header ------------------------------------------------------------------------
q = cases_for("request_header")
CASES += [
    q("/set", headers={"X-Replaced": "old"}),
    q("/add", headers={"X-Multi": "one"}),
    q("/delete", headers={"X-Remove": "bye"}),
    q("/delete-wild", headers={"X-Drop-A": "a", "X-Drop-B": "b"}),
    q("/replace", headers={"X-Rep": "abc 123 def 45"}),
    q("/host", headers={"Host": "original.test"}),
    q("/ua", headers={"User-Agent": "client agent"}),
    q("/other", headers={"X-Remove": "stays", "User-Agent": "client agent"}),
]

# rewrite, uri -----------------------------------------------------------------------------
# {orig_uri} and friends are left out: the shorthands exist only from 2.9.
w = cases_for("rewrite")
CASES += [
    w("/old"),
    w("/keep-query?x=1&y=2"),
    w("/set-query?x=1"),
    w("/append-query?x=1"),
    w("/clear-query?x=1"),
    w("/with-ph?k=val"),
    w("/alias", file_vary=True, etag_file="rewrite/files/hello.txt"),
    w("/dir-alias", file_vary=True),
    w("/encoded?k=a%20b"),
    w("/strip/inner/path?q=1"),
    w("/strip/"),
    w("/suffix/page.html"),
    w("/suffix/page.htm"),
    w("/repl/foo/foo"),
    w("/repl-limit/foo"),
    w("/regex/123"),
    w("/regex/abc"),
    w("/hello.txt", file_vary=True),
    w("/sub"),
    w("/untouched/p%20q?z=%41"),
]

# handle, handle_path, route ----------------------------------------------------------------
o = cases_for("routing")
HT = {"Host": "handle.test"}
RT = {"Host": "route.test"}
GT = {"Host": "groups.test"}
CASES += [
    o("/api/users", headers=HT),
    o("/api", headers=HT),
    o("/static/css/site.css?v=1", headers=HT),
    o("/static/", headers=HT),
    o("/static", headers=HT),
    o("/exact", headers=HT),
    o("/exact/", headers=HT),
    o("/nest/a", headers=HT),
    o("/nest/p/deep/er", headers=HT),
    o("/nest/zzz", headers=HT),
    o("/empty/x", headers=HT),
    o("/route/x", headers=HT),
    o("/else", headers=HT),
    o("/ordered/stop", headers=RT),
    o("/ordered/go", headers=RT),
    o("/first", headers=RT),
    o("/second", headers=RT),
    o("/handled", headers=RT),
    o("/direct", headers=RT),
    o("/neither", headers=RT),
    o("/a/x", headers=GT),
    o("/a/b/x", headers=GT),
    o("/c", headers=GT),
    o("/r/one", headers=GT),
    o("/r/two", headers=GT),
    o("/only", headers={"Host": "nomatch.test"}),
    o("/other", headers={"Host": "nomatch.test"}),
]

# vars, map ----------------------------------------------------------------------------------
v = cases_for("vars_map")
CASES += [
    v("/vars"),
    v("/override"),
    v("/a"),
    v("/b"),
    v("/re/word/42"),
    v("/re/word/x"),
    v("/zzz"),
    v("/vr/captured"),
    v("/color", headers={"X-Color": "green"}),
    v("/color", headers={"X-Color": "purple"}),
    v("/color"),
    v("/matcher/x"),
]

# encode ----------------------------------------------------------------------------------------
# Bodies are compared decoded (compressed bytes may differ). Left out: `Cache-Control:
# no-transform` on the request or the response (latest does not compress, 2.6.2 did).
n = cases_for("encode", file_vary=True)
GZ = {"Accept-Encoding": "gzip"}
REPEAT = ("0123456789 abcdefghij " * 60).strip()
CASES += [
    # Both frame a small compressed body with a length, not chunked; the length itself
    # differs by a few bytes (Go's compress/gzip and zlib compress differently).
    n("/large.txt", headers=GZ, label="framing", skip_headers=("Content-Length",)),
    n("/large.txt", headers=GZ, skip_headers=FRAMING),
    n("/large.txt", headers={"Accept-Encoding": "zstd"}, skip_headers=FRAMING),
    n("/large.txt", headers={"Accept-Encoding": "gzip, zstd"}, skip_headers=FRAMING),
    n("/large.txt", headers={"Accept-Encoding": "zstd, gzip"}, skip_headers=FRAMING),
    n("/large.txt", headers={"Accept-Encoding": "gzip;q=0.5, zstd;q=1.0"}, skip_headers=FRAMING),
    n("/large.txt", headers={"Accept-Encoding": "br"}),
    n("/large.txt", headers={"Accept-Encoding": "identity"}),
    n("/large.txt"),
    n("/large.txt", "HEAD", headers=GZ),
    n("/large.html", headers=GZ, skip_headers=FRAMING),
    n("/large.json", headers=GZ, skip_headers=FRAMING),
    n("/large.png", headers=GZ),
    n("/tiny.txt", headers=GZ),
    n("/edge511.txt", headers=GZ),
    n("/edge512.txt", headers=GZ),
    n("/missing.txt", headers=GZ),
    n("/small", headers=GZ, file_vary=False),
    n("/large-respond", headers={**GZ, "X-Repeat": REPEAT}, skip_headers=FRAMING, file_vary=False),
]

# basicauth --------------------------------------------------------------------------------------
b = cases_for("basicauth")
A = {"Host": "auth.test"}
CASES += [
    b("/private/page", headers=A),
    b("/private/page", headers=basic("alice", "secret", "auth.test")),
    b("/private/page", headers=basic("alice", "wrong", "auth.test")),
    b("/private/page", headers=basic("mallory", "secret", "auth.test")),
    b("/private/page", headers=basic("bob", "hunter2", "auth.test")),
    b("/private/page", headers=basic("carol", "secret", "auth.test"), label="cost 14"),
    b("/private/page", headers={"Host": "auth.test", "Authorization": "Basic !!!not-base64"}),
    b("/private/page", headers={"Host": "auth.test", "Authorization": "Bearer abc"}),
    b("/private/page", headers={"Host": "auth.test", "Authorization": "Basic " + base64.b64encode(b"alice").decode()}),
    b("/realm/page", headers=A),
    b("/realm/page", headers=basic("alice", "secret", "auth.test")),
    b("/public", headers=A),
    b("/x", headers={"Host": "auth-errors.test"}),
    b("/x", headers=basic("alice", "secret", "auth-errors.test")),
]

# try_files -----------------------------------------------------------------------------------------
t = cases_for("try_files", file_vary=True)
S = {"Host": "spa.test"}
DT = {"Host": "dirs.test"}
QT = {"Host": "query.test"}
CASES += [
    t("/", headers=S),
    t("/app.js", headers=S),
    t("/assets/site.css", headers=S),
    t("/some/client/route", headers=S, etag_file="spa/index.html"),
    t("/missing.js", headers=S),
    t("/assets", headers=S),
    t("/about", headers=DT),
    t("/about.html", headers=DT),
    t("/docs", headers=DT),
    t("/docs/", headers=DT),
    t("/nothing", headers=DT),
    t("/app.js", headers=QT),
    t("/deep/link?x=1", headers=QT),
]

# matchers ------------------------------------------------------------------------------------------
# query: one key and one request value only (2.6.2 ORed keys and compared only a key's
# first value; latest ANDs keys and looks at every value). expression (CEL) is not
# supported by rws on purpose.
m = cases_for("matchers")
CASES += [
    m("/m/path"),
    m("/M/PATH"),
    m("/m/path/"),
    m("/m/paths/x/y"),
    m("/m/paths"),
    m("/anything/file.ext"),
    m("/m/glob/mid/end"),
    m("/m/glob/a/b/end"),
    m("/m/subXYZstr"),
    m("/m/re/42/abc"),
    m("/m/re/42/ABC"),
    m("/m/CI/Mixed"),
    m("/m/ci/lower"),
    m("/m/host", headers={"Host": "a.test"}),
    m("/m/host", headers={"Host": "A.TEST:9999"}),
    m("/m/host", headers={"Host": "x.wild.test"}),
    m("/m/host", headers={"Host": "a.b.wild.test"}),
    m("/m/host", headers={"Host": "wild.test"}),
    m("/m/method", "POST"),
    m("/m/method", "PUT", content=b"x"),
    m("/m/method", "GET"),
    m("/m/header", headers={"X-Key": "value", "X-Prefix": "prefixed"}),
    m("/m/header", headers={"X-Key": "value"}),
    m("/m/header", headers={"X-Key": "Value", "X-Prefix": "pre"}),
    m("/m/header", headers=(("X-Key", "other"), ("X-Key", "value"), ("X-Prefix", "pre"))),
    m("/m/header-present", headers={"X-Any": ""}),
    m("/m/header-present", headers={"X-Any": "something"}),
    m("/m/header-present"),
    m("/m/header-absent"),
    m("/m/header-absent", headers={"X-Forbidden": "1"}),
    m("/m/header-regexp", headers={"X-Token": "tok-123"}),
    m("/m/header-regexp", headers={"X-Token": "tok-abc"}),
    m("/m/query?k=v"),
    m("/m/query?k=w"),
    m("/m/query?other=v"),
    m("/m/query"),
    m("/m/query-any?k=anything"),
    m("/m/query-any?k="),
    m("/m/query-any?j=1"),
    m("/m/remote"),
    m("/m/remote-other"),
    m("/m/protocol"),
    m("/m/protocol-https"),
    m("/m/not/included"),
    m("/m/not/excluded"),
    m("/m/not-block", headers={"X-A": "1"}),
    m("/m/not-block", headers={"X-A": "1", "X-B": "1"}),
    m("/m/file/one"),
    m("/m/file/two"),
    m("/m/file/three"),
    m("/m/vars"),
    m("/m/vars-ph?x=yes"),
    m("/m/vars-ph?x=no"),
    m("/m/vars-regexp/word"),
    m("/m/vars-regexp/two/words"),
    # paths as sent (a client library would clean them); `/m/path.` is left out: 2.6.x
    # trimmed trailing dots on every OS, latest only on Windows
    m("//m//path", raw=raw_get("//m//path")),
    m("/m/./path", raw=raw_get("/m/./path")),
    m("/m/x/../path", raw=raw_get("/m/x/../path")),
    m("/m/pa%74h", raw=raw_get("/m/pa%74h")),
    m("/m/paths/%2e%2e/path", raw=raw_get("/m/paths/%2e%2e/path")),
    m("/m%2Fpath", raw=raw_get("/m%2Fpath")),
    m("/m/host", headers={"Host": "a.test."}),
    m("/m/host", headers={"Host": "A.Wild.Test"}),
    m("/m/header", headers={"X-Key": "value", "X-Prefix": "PRE"}),
    m("/m/header-regexp", headers=(("X-Token", "tok-1"), ("X-Token", "tok-2"))),
    m("/m/query?k=v&k=w", raw=raw_get("/m/query?k=v&k=w")),  # (k=w&k=v: 2.6.2 saw only the first value)
    m("/m/query?k=v;x", raw=raw_get("/m/query?k=v;x")),
    m("/m/query?k=%76", raw=raw_get("/m/query?k=%76")),
    m("/m/query?K=v", raw=raw_get("/m/query?K=v")),
]

# placeholders --------------------------------------------------------------------------------------
# Left out: {labels.N} of a mixed-case Host (latest lower-cases, 2.6.2 kept the case);
# {uuid} (a 2.8 shorthand; the full {http.request.uuid} is compared by format).
p = cases_for("placeholders")
CASES += [
    p("/req?a=1&b=two%20words", headers={"Host": "Sub.Example.TEST:8443"}),
    p("/req", headers={"Host": "example.test"}),
    p("/labels/x", headers={"Host": "a.b.example.test"}),
    p("/segments/one/two"),
    p("/segments/"),
    p("/file/dir/name.tar.gz"),
    p("/file/dir/"),
    p("/query?k=1&m=a&m=b"),
    p("/query?k=a%20b&k=c"),
    p("/headers", headers=(("User-Agent", "agent/1.0"), ("X-Thing", "one"), ("X-Thing", "two"))),
    p("/cookie", headers={"Cookie": "a=1; b=two"}),
    p("/remote"),
    p("/vars"),
    p("/re/first/second"),
    p("/proto"),
    p("/uuid", body_pattern=r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
    p("/env"),
    p("/system"),
    p("/escaped"),
    p("/unclosed"),
    p("/time"),
    p("/req?a=b+c&x=%zz", raw=raw_get("/req?a=b+c&x=%zz", "example.test")),
    p("/query?k=a+b&m=%2B", raw=raw_get("/query?k=a+b&m=%2B")),
    p("/segments/a%2Fb/c", raw=raw_get("/segments/a%2Fb/c")),
    p("/file/a%20b/c%2Fd.txt", raw=raw_get("/file/a%20b/c%2Fd.txt")),
    p("/req", headers={"Host": "[::1]:8080"}),
    p("/req", headers={"Host": "example.test."}),
    p("/labels/x", headers={"Host": "[::1]"}),
    p("/labels/x", headers={"Host": "[::1]:8080"}),
]

# request_body -------------------------------------------------------------------------------------
# {http.request.body} is rws's only body reader until reverse_proxy exists.
y = cases_for("request_body")
CASES += [
    y("/limited/x", "POST", content=b"short"),
    y("/limited/x", "POST", content=b"0123456789"),
    y("/limited/x", "POST", content=b"this body is longer than ten bytes"),
    y("/echo", "POST", content=b"echo me"),
    y("/echo", "POST"),
    y("/ignored", "POST", content=b"x" * 100),
]

# reverse_proxy (each server is its own upstream) -----------------------------------------
# `Via`: the latest Caddy adds `Via: 1.1 Caddy` both ways (and drops its own Server),
# 2.6.2 adds none; rws follows the latest (`1.1 rws`), so it is not compared. The
# X-Forwarded-Host and upstream address carry each server's own port.
p = cases_for("proxy", skip_headers=("Via",))
CASES += [
    p("/proxy/echo?a=1", body_pattern=r"GET /backend/echo\?a=1 host=127\.0\.0\.1 xff=127\.0\.0\.1 "
      r"xfh=127\.0\.0\.1:\d+ xfp=http up=127\.0\.0\.1:\d+ hop= body="),
    p("/proxy/echo?a=1", headers={"X-Forwarded-For": "6.6.6.6", "X-Hop": "x", "Connection": "X-Hop"},
      body_pattern=r"GET /backend/echo\?a=1 host=127\.0\.0\.1 xff=127\.0\.0\.1 xfh=127\.0\.0\.1:\d+ xfp=http "
      r"up=127\.0\.0\.1:\d+ hop= body="),
    p("/proxy/status"),
    p("/proxy/anything", "POST", content=b"payload"),
    p("/proxy/anything", "HEAD"),
    p("/handled/x"),
    p("/down/x"),
]


def test_sites_listen_on_loopback_only() -> None:
    """Every site of every template binds 127.0.0.1, so the servers are not reachable from
    elsewhere while the suite runs."""
    from rws.rwsfile.adapt import adapt_text

    for template in sorted(SITES.glob("*.rwsfile")):
        tree = adapt_text(template.read_text().replace("{PORT}", "1"))[0]
        for name, server in tree["apps"]["http"]["servers"].items():
            assert all(a.startswith("127.0.0.1:") for a in server["listen"]), (template.name, name, server["listen"])


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else [])
     for c in CASES],
)
def test_same_answer(servers: Servers, case: Case) -> None:
    caddy = comparable(case, "caddy", fetch(case, servers.port(case.site, "caddy")))
    if case.body_pattern is not None:
        assert caddy["body"] is True, f"Caddy's body does not match {case.body_pattern!r}"
    rws = comparable(case, "rws", fetch(case, servers.port(case.site, "rws")))
    assert rws == caddy, describe_difference(caddy, rws)
    if case.raw is None and case.http2:  # the same request over HTTP/2: handlers don't know the protocol
        caddy = comparable(case, "caddy", fetch(case, servers.port(case.site, "caddy"), http2=True))
        rws = comparable(case, "rws", fetch(case, servers.port(case.site, "rws"), http2=True))
        assert rws == caddy, "over HTTP/2: " + describe_difference(caddy, rws)
