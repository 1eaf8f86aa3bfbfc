"""Differential acceptance test: real Caddy 2.6.2 and rws serve the same Rwsfiles and must
give the same answers.

Every `sites/<name>.rwsfile` is a template whose sites listen on `{PORT}`, bound to
127.0.0.1. For each file one pair of servers is started as subprocesses (`caddy run
--config X --adapter caddyfile` and `python -m rws run --config X`), each on its own free
loopback port and with `admin off`; the cases below send the same request to both and
compare status, headers (all of them except `Server`, `Date` and `Alt-Svc`) and body.
Content the sites serve lives in `sites/<name>/`; both servers run with `sites/` as their
working directory, so the templates use relative roots.

Only behaviour on which Caddy 2.6.2 and the latest Caddy agree is compared (rws follows
the latest). Where they differ (marked ⚑ in /work/shared/reference/caddy-compat.md) the
request is left out and a comment in the case list says why. A comparison that shows an
rws bug is marked `xfail(strict=True)` with the reason, so it turns green once fixed.
"""

from __future__ import annotations

import base64
import gzip
import json
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


@dataclass
class Pair:
    """The two servers of one site file: `ports["caddy"]`, `ports["rws"]`."""

    ports: dict[str, int]
    logs: dict[str, Path]


def start_pair(site: str, workdir: Path) -> tuple[Pair, list[subprocess.Popen[bytes]]]:
    template = (SITES / f"{site}.rwsfile").read_text()
    env = dict(os.environ, XDG_DATA_HOME=str(workdir / "data"), XDG_CONFIG_HOME=str(workdir / "config"),
               RWS_DIFF_VALUE="from the environment")
    env.pop("RWS_DIFF_MISSING", None)
    commands = {
        "caddy": lambda cfg: [str(CADDY), "run", "--config", str(cfg), "--adapter", "caddyfile"],
        "rws": lambda cfg: [sys.executable, "-m", "rws", "run", "--config", str(cfg)],
    }
    ports: dict[str, int] = {}
    logs: dict[str, Path] = {}
    procs: list[subprocess.Popen[bytes]] = []
    for name, command in commands.items():
        ports[name] = free_port()
        config = workdir / f"{site}.{name}.rwsfile"
        config.write_text(template.replace("{PORT}", str(ports[name])))
        logs[name] = workdir / f"{name}.log"
        with logs[name].open("wb") as log:
            procs.append(subprocess.Popen(command(config), cwd=SITES, env=env, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT))
    try:
        for proc, name in zip(procs, commands):
            wait_until_listening(proc, ports[name], logs[name])
    except BaseException:
        for proc in procs:
            stop(proc)
        raise
    return Pair(ports, logs), procs


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Caddy and rws serving `sites/<request.param>.rwsfile` (one pair per site file: the
    cases are grouped by site, and pytest stops a pair before starting the next)."""
    site: str = request.param
    started, procs = start_pair(site, tmp_path_factory.mktemp(site))
    try:
        yield started
    finally:
        for proc in procs:
            stop(proc)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Answer:
    """What a server answered: status, headers (lower-cased names, values in order), body;
    or `error` when the connection was dropped without a response."""

    status: int = 0
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""


@dataclass(frozen=True)
class Case:
    """One request sent to both servers. `raw` sends these bytes over a socket instead (the
    request target is then exactly what the test wrote). `body_pattern`: both bodies must
    match this regexp instead of being equal. `json_drop`: for JSON bodies, keys removed
    from every object before comparing. `skip_headers`: more header names not compared."""

    site: str
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    raw: bytes | None = None
    body_pattern: str | None = None
    json_drop: tuple[str, ...] = ()
    skip_headers: tuple[str, ...] = ()
    bug: str | None = None
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.site}:{self.method} {self.path}{' ' + self.label if self.label else ''}"


def decode_body(encoding: str, data: bytes) -> bytes:
    """The payload of a `Content-Encoding: gzip|zstd` body (other encodings unchanged)."""
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def fetch(case: Case, port: int) -> Answer:
    if case.raw is not None:
        return fetch_raw(case.raw.replace(b"{HOST}", f"127.0.0.1:{port}".encode()), port)
    headers = [(k, v.replace("{HOST}", f"127.0.0.1:{port}")) for k, v in case.headers]
    url = f"http://127.0.0.1:{port}{case.path}"
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        del client.headers["accept-encoding"]  # only the encodings a case asks for
        try:
            with client.stream(case.method, url, headers=headers, content=case.content) as response:
                raw = b"".join(response.iter_raw())
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            return Answer(error=type(exc).__name__)
    found: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        found.setdefault(name.lower(), []).append(value)
    return Answer(response.status_code, found, decode_body(response.headers.get("content-encoding", ""), raw))


def fetch_raw(data: bytes, port: int) -> Answer:
    """Send `data` (one request; it should say `Connection: close`) and parse the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    received = b"".join(chunks)
    if not received:
        return Answer(error="closed")
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    found: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    if found.get("transfer-encoding") == ["chunked"]:
        body = dechunk(body)
    return Answer(int(lines[0].split()[1]), found, decode_body(found.get("content-encoding", [""])[0], body))


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


def comparable(case: Case, answer: Answer) -> dict[str, Any]:
    """The parts of an answer that must be equal between the two servers."""
    skip = IGNORED_HEADERS | {h.lower() for h in case.skip_headers}
    headers = {k: v for k, v in answer.headers.items() if k not in skip}
    body: Any = answer.body
    if case.body_pattern is not None:
        body = bool(re.fullmatch(case.body_pattern, answer.body.decode(errors="replace"), re.S))
    elif case.json_drop:
        body = drop_keys(json.loads(answer.body), case.json_drop)
    return {"error": answer.error, "status": answer.status, "headers": headers, "body": body}


def drop_keys(value: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: drop_keys(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [drop_keys(v, keys) for v in value]
    return value


# --------------------------------------------------------------------------- cases


def cases_for(site: str) -> Callable[..., Case]:
    def make(path: str, method: str = "GET", **kwargs: Any) -> Case:
        if "headers" in kwargs and isinstance(kwargs["headers"], dict):
            kwargs["headers"] = tuple(kwargs["headers"].items())
        return Case(site, path, method, **kwargs)
    return make


CASES: list[Case] = []

def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def etag_of(relative: str) -> str:
    """Caddy's ETag for a file under sites/: quoted base-36 mtime (ns) and size."""
    info = (SITES / relative).stat()
    return f'"{base36(info.st_mtime_ns)}-{base36(info.st_size)}"'


def last_modified_of(relative: str) -> str:
    return formatdate((SITES / relative).stat().st_mtime, usegmt=True)


def raw_get(target: str, host: str = "{HOST}", extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()


# respond ------------------------------------------------------------------------
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
    r("/close"),
    r("/block"),
    r("/redirect-ish"),
    r("/with-type"),
    r("/nothing-here"),  # no route answers: empty 200
    r("/nothing-here", "DELETE"),
]

# redir ---------------------------------------------------------------------------
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
    d("/permanent", "HEAD"),
    d("/default", "POST"),
]

# error, abort, handle_errors -------------------------------------------------------
e = cases_for("errors")
E = {"Host": "errors.test"}
P = {"Host": "pages.test"}
N = {"Host": "plain.test"}
H = {"Host": "errors-header.test"}
CASES += [
    e("/boom", headers=E),
    e("/default-status", headers=E),
    e("/status-only", headers=E),
    e("/forbidden", headers=E),
    e("/teapot", headers=E),
    e("/abort", headers=E),
    e("/fine", headers=E),
    e("/ok-status", headers=E),
    e("/files/present.txt", headers=E),
    e("/files/missing.txt", headers=E),
    e("/files/present.txt", "POST", headers=E),
    e("/boom", "HEAD", headers=E),
    e("/boom", headers=P),
    e("/gone", headers=P),
    e("/files/present.txt", headers=P),
    e("/files/missing.txt", headers=P),
    e("/fine", headers=P),
    e("/boom", headers=N),
    e("/teapot", headers=N),
    e("/files/missing.txt", headers=N),
    e("/files/present.txt", headers=N),
    e("/boom", headers=H),
    e("/ok", headers={"Host": "unknown.test"}, label="unknown host"),
]

# file_server -----------------------------------------------------------------------
f = cases_for("files")
HELLO_ETAG = etag_of("files/hello.txt")
CASES += [
    f("/"),
    f("/index.html"),
    f("/hello.txt"),
    f("/hello.txt", "HEAD"),
    f("/hello.txt", "POST"),
    f("/hello.txt", "PUT", content=b"x"),
    f("/hello.txt", "OPTIONS"),
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
    f("/sub?x=1&y=2"),
    f("/sub/"),
    f("/sub/page.txt"),
    f("/sub/page.txt/"),
    f("/sub/index.html"),
    f("/noindex/"),
    f("/noindex"),
    # conditional requests
    f("/hello.txt", headers={"If-None-Match": HELLO_ETAG}),
    f("/hello.txt", headers={"If-None-Match": '"something-else"'}),
    f("/hello.txt", headers={"If-None-Match": "*"}),
    f("/hello.txt", headers={"If-None-Match": f'W/{HELLO_ETAG}'}),
    f("/hello.txt", headers={"If-Modified-Since": last_modified_of("files/hello.txt")}),
    f("/hello.txt", headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
    f("/hello.txt", headers={"If-Match": '"nope"'}),
    f("/hello.txt", headers={"If-Match": HELLO_ETAG}),
    f("/hello.txt", headers={"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
    # ranges
    f("/alphabet.txt", headers={"Range": "bytes=0-4"}),
    f("/alphabet.txt", headers={"Range": "bytes=10-"}),
    f("/alphabet.txt", headers={"Range": "bytes=-5"}),
    f("/alphabet.txt", headers={"Range": "bytes=30-100"}),
    f("/alphabet.txt", headers={"Range": "bytes=100-200"}),
    f("/alphabet.txt", headers={"Range": "bytes=5-2"}),
    f("/alphabet.txt", headers={"Range": "items=0-1"}),
    f("/alphabet.txt", headers={"Range": "bytes=0-4", "If-Range": etag_of("files/alphabet.txt")}),
    f("/alphabet.txt", headers={"Range": "bytes=0-4", "If-Range": '"stale"'}),
    f("/alphabet.txt", "HEAD", headers={"Range": "bytes=0-4"}),
    # precompressed sidecar
    f("/compressed.txt"),
    f("/compressed.txt", headers={"Accept-Encoding": "gzip"}),
    f("/compressed.txt", headers={"Accept-Encoding": "br"}),
    f("/compressed.txt", headers={"Accept-Encoding": "gzip;q=0"}),
    f("/compressed.txt", "HEAD", headers={"Accept-Encoding": "gzip"}),
    f("/compressed.txt.gz"),
    f("/hello.txt", headers={"Accept-Encoding": "gzip"}),
    # custom index
    f("/custom-index/custom/"),
    f("/custom-index/sub/"),
    f("/custom-index/noindex/"),
    # browse: JSON listing (mod_time is compared too: both format RFC 3339 from the same
    # file) and the HTML page (its markup is rws's own: status and type only)
    f("/browse/noindex/", headers={"Accept": "application/json"}),
    f("/browse/noindex/nested/", headers={"Accept": "application/json"}),
    f("/browse/noindex", headers={"Accept": "application/json"}),
    f("/browse/noindex/a.txt", headers={"Accept": "application/json"}),
    f("/browse/sub/", headers={"Accept": "application/json"}),
    f("/browse/noindex/", body_pattern=r".*a\.txt.*b\.txt.*", skip_headers=("Content-Length",),
      label="html"),
    # paths a client library would normalise: sent as written
    f("/sub/../hello.txt", raw=raw_get("/sub/../hello.txt")),
    f("/../../etc/passwd", raw=raw_get("/../../etc/passwd")),
    f("/%2e%2e/%2e%2e/etc/passwd", raw=raw_get("/%2e%2e/%2e%2e/etc/passwd")),
    f("/sub%2fpage.txt", raw=raw_get("/sub%2fpage.txt")),
    f("/hel%6co.txt", raw=raw_get("/hel%6co.txt")),
    f("//hello.txt", raw=raw_get("//hello.txt")),
    f("/hello.txt%00", raw=raw_get("/hello.txt%00")),
    f("/noindex/with%20space.txt", raw=raw_get("/noindex/with%20space.txt")),
]

# header --------------------------------------------------------------------------
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
    h("/files/plain.txt"),
    h("/files/deferred.txt"),
    h("/files/other.txt"),
    h("/files/missing.txt"),
]

# request_header -----------------------------------------------------------------
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

# rewrite, uri --------------------------------------------------------------------
w = cases_for("rewrite")
CASES += [
    w("/old"),
    w("/keep-query?x=1&y=2"),
    w("/set-query?x=1"),
    w("/append-query?x=1"),
    w("/clear-query?x=1"),
    w("/with-ph?k=val"),
    w("/alias"),
    w("/dir-alias"),
    w("/encoded?k=a%20b"),
    w("/strip/inner/path?q=1"),
    w("/strip/"),
    w("/suffix/page.html"),
    w("/suffix/page.htm"),
    w("/repl/foo/foo"),
    w("/repl-limit/foo"),
    w("/regex/123"),
    w("/regex/abc"),
    w("/hello.txt"),
    w("/sub"),
    w("/untouched/p%20q?z=%41"),
]

# handle, handle_path, route ----------------------------------------------------------
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

# vars, map -----------------------------------------------------------------------
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

# encode --------------------------------------------------------------------------
# Bodies are compared after decoding; the compressed bytes may differ.
n = cases_for("encode")
GZ = {"Accept-Encoding": "gzip"}
REPEAT = ("0123456789 abcdefghij " * 60).strip()
CASES += [
    n("/large.txt", headers=GZ),
    n("/large.txt", headers={"Accept-Encoding": "zstd"}),
    n("/large.txt", headers={"Accept-Encoding": "gzip, zstd"}),
    n("/large.txt", headers={"Accept-Encoding": "zstd, gzip"}),
    n("/large.txt", headers={"Accept-Encoding": "gzip;q=0.5, zstd;q=1.0"}),
    n("/large.txt", headers={"Accept-Encoding": "br"}),
    n("/large.txt", headers={"Accept-Encoding": "identity"}),
    n("/large.txt"),
    n("/large.txt", "HEAD", headers=GZ),
    n("/large.html", headers=GZ),
    n("/large.json", headers=GZ),
    n("/large.png", headers=GZ),
    n("/tiny.txt", headers=GZ),
    n("/edge511.txt", headers=GZ),
    n("/edge512.txt", headers=GZ),
    n("/small", headers=GZ),
    n("/large-respond", headers={**GZ, "X-Repeat": REPEAT}),
    n("/no-transform", headers={**GZ, "X-Repeat": REPEAT}),
    n("/large.txt", headers={**GZ, "Cache-Control": "no-transform"}),
    n("/missing.txt", headers=GZ),
]

# basicauth ---------------------------------------------------------------------------
b = cases_for("basicauth")
A = {"Host": "auth.test"}


def basic(user: str, password: str, host: str = "auth.test") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Host": host, "Authorization": f"Basic {token}"}


CASES += [
    b("/private/page", headers=A),
    b("/private/page", headers=basic("alice", "secret")),
    b("/private/page", headers=basic("alice", "wrong")),
    b("/private/page", headers=basic("mallory", "secret")),
    b("/private/page", headers=basic("bob", "hunter2")),
    b("/private/page", headers=basic("carol", "secret")),
    b("/private/page", headers={"Host": "auth.test", "Authorization": "Basic !!!not-base64"}),
    b("/private/page", headers={"Host": "auth.test", "Authorization": "Bearer abc"}),
    b("/private/page", headers={"Host": "auth.test", "Authorization": "Basic " + base64.b64encode(b"alice").decode()}),
    b("/realm/page", headers=A),
    b("/realm/page", headers=basic("alice", "secret")),
    b("/public", headers=A),
    b("/x", headers={"Host": "auth-errors.test"}),
    b("/x", headers=basic("alice", "secret", "auth-errors.test")),
]

# try_files -------------------------------------------------------------------------
t = cases_for("try_files")
S = {"Host": "spa.test"}
DT = {"Host": "dirs.test"}
QT = {"Host": "query.test"}
CASES += [
    t("/", headers=S),
    t("/app.js", headers=S),
    t("/assets/site.css", headers=S),
    t("/some/client/route", headers=S),
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

# matchers --------------------------------------------------------------------------
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
]

# placeholders ----------------------------------------------------------------------
p = cases_for("placeholders")
CASES += [
    p("/req?a=1&b=two%20words", headers={"Host": "Sub.Example.TEST:8443"}),
    p("/req", headers={"Host": "example.test"}),
    p("/labels/x", headers={"Host": "a.b.example.test"}),
    p("/labels/x", headers={"Host": "A.B.Example.Test:1234"}),
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
]

# request_body ------------------------------------------------------------------------
y = cases_for("request_body")
CASES += [
    y("/limited/x", "POST", content=b"short"),
    y("/limited/x", "POST", content=b"0123456789"),
    y("/limited/x", "POST", content=b"this body is longer than ten bytes"),
    y("/echo", "POST", content=b"echo me"),
    y("/echo", "POST"),
    y("/ignored", "POST", content=b"x" * 100),
]


@pytest.mark.parametrize(
    "pair,case",
    [pytest.param(c.site, c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else [])
     for c in CASES],
    indirect=["pair"],
)
def test_same_answer(pair: Pair, case: Case) -> None:
    caddy = comparable(case, fetch(case, pair.ports["caddy"]))
    if case.body_pattern is not None:
        assert caddy["body"] is True, f"Caddy's body does not match {case.body_pattern!r}"
    rws = comparable(case, fetch(case, pair.ports["rws"]))
    assert rws == caddy, describe_difference(caddy, rws)


def describe_difference(caddy: dict[str, Any], rws: dict[str, Any]) -> str:
    """Only the parts that differ, Caddy's value first."""
    lines = []
    for part in ("error", "status", "body"):
        if caddy[part] != rws[part]:
            lines.append(f"{part}: caddy={caddy[part]!r} rws={rws[part]!r}")
    for name in sorted(set(caddy["headers"]) | set(rws["headers"])):
        if caddy["headers"].get(name) != rws["headers"].get(name):
            lines.append(f"header {name}: caddy={caddy['headers'].get(name)} rws={rws['headers'].get(name)}")
    return "\n".join(lines)
