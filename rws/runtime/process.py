"""Running rws in the foreground (`rws run`), and talking to a running instance
(`rws start`, `rws stop`, `rws reload`)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rws.errors import RwsError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where the config came from: a loader that re-reads it (for SIGHUP and --watch)."""

    path: str | None
    load: Callable[[], dict[str, Any]]


def choose_loop() -> str:
    """uvloop when importable; the choice is logged once at startup."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def tune_collector() -> None:
    """Serving makes many short-lived objects, nearly all freed by reference counting; the
    cyclic collector's youngest generation, run every 700 allocations by default, cost a
    twentieth of a proxied HTTP/2 request. Run it every 20000 (and the older ones as
    rarely), as servers that allocate per request commonly do."""
    gc.set_threshold(20000, 20, 20)


def run(source: ConfigSource | None, tree: dict[str, Any], *, watch: bool = False, pingback: str | None = None) -> int:
    """Serve until stopped; the process's exit code."""
    tune_collector()
    loop_name = choose_loop()
    log.info("event loop", extra={"loop": loop_name})
    return asyncio.run(_serve(source, tree, watch, pingback))


async def _serve(source: ConfigSource | None, tree: dict[str, Any], watch: bool, pingback: str | None) -> int:
    from rws.admin.api import AdminEndpoint
    from rws.runtime import signals
    from rws.runtime.runtime import Runtime
    from rws.runtime.supervisor import wanted_workers

    runtime = Runtime(config_files=(source.path,) if source and source.path else (),
                      reload_source=source.load if source else None, workers=wanted_workers(tree) > 1)
    runtime.admin = AdminEndpoint(runtime)
    signals.install(runtime)  # before anything listens, so a signal is never the default one
    try:
        await runtime.apply(tree, force=True)
    except RwsError:
        await runtime.stop(0)
        raise
    runtime.maintain_certificates()
    if pingback:
        _pingback(pingback)
    watcher = asyncio.get_running_loop().create_task(_watch(runtime, source)) if watch and source and source.path else None
    await runtime.stopped.wait()
    if watcher is not None:
        watcher.cancel()
    return 0


def rws_command() -> tuple[list[str], dict[str, str]]:
    """How to start rws again in a child process, and its environment: the same
    interpreter and the same rws (the single-file download when this process runs from
    one). `-P` keeps the working directory off the child's module path, so a folder
    named `rws` there (a config folder, a checkout) can't stand in for the package."""
    import zipfile

    import rws

    env = dict(os.environ)
    if sys.argv and sys.argv[0].endswith(".pyz") and zipfile.is_zipfile(sys.argv[0]):
        return [sys.executable, sys.argv[0]], env
    package_parent = str(Path(rws.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-P", "-m", "rws"], env


def _pingback(address: str) -> None:
    """Tell `rws start` we are up: echo the bytes it gave us on stdin."""
    secret = sys.stdin.buffer.read(32)
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(secret)


async def _watch(runtime: Any, source: ConfigSource) -> None:
    """--watch: poll the config file every second and reload when it changes."""
    assert source.path is not None
    last = _mtime(source.path)
    while True:
        await asyncio.sleep(1)
        now = _mtime(source.path)
        if now != last:
            last = now
            log.info("config file changed; reloading", extra={"file": source.path})
            await runtime.reload_from_source()


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


# --- controlling a running instance -------------------------------------------------------


def start_background(args: list[str]) -> int:
    """`rws start`: run `rws run ... --pingback` in the background and wait until it is up."""
    secret = secrets.token_bytes(32)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(1.0)
        address = "127.0.0.1:%d" % server.getsockname()[1]
        command, env = rws_command()
        child = subprocess.Popen([*command, "run", *args, "--pingback", address],
                                 stdin=subprocess.PIPE, start_new_session=True, env=env)
        assert child.stdin is not None
        child.stdin.write(secret)
        child.stdin.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RwsError(f"rws exited with code {child.returncode} before it was up")
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                got = b""
                while len(got) < len(secret):
                    part = conn.recv(64)
                    if not part:
                        break
                    got += part
            if got == secret:
                return child.pid
        child.kill()
        raise RwsError("rws did not come up within 60 seconds")


def admin_request(address: str, method: str, path: str, body: bytes = b"",
                  content_type: str = "application/json", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request to the admin API at `address` (host:port or unix//path)."""
    import http.client

    extra = dict(headers or {})
    if address.startswith("unix/"):
        conn: http.client.HTTPConnection = _UnixHTTPConnection(address.split("/", 1)[1])
        host_header = ""
    else:
        host, _, port = address.rpartition(":")
        connect_host = "127.0.0.1" if host in ("localhost", "") else host.strip("[]")
        conn = http.client.HTTPConnection(connect_host, int(port), timeout=120)
        host_header = f"{host or 'localhost'}:{port}"
        extra.setdefault("Origin", f"http://{host_header}")
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host_header)
        if body or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Type", content_type)
            conn.putheader("Content-Length", str(len(body)))
        for name, value in extra.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError as exc:
        raise RwsError(f"performing request to admin endpoint {address}: {exc.strerror or exc}") from None
    finally:
        conn.close()


class _UnixHTTPConnection:  # an http.client.HTTPConnection over a Unix socket
    def __new__(cls, path: str) -> Any:
        import http.client

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(120)
                self.sock.connect(path)

        return Conn("localhost", timeout=120)


def admin_address(explicit: str | None, tree: dict[str, Any] | None) -> str:
    """`--address`, else the config's admin.listen, else $RWS_ADMIN, else localhost:2019."""
    if explicit:
        return explicit
    admin = (tree or {}).get("admin") or {}
    if admin.get("disabled"):
        raise RwsError("the admin endpoint is disabled in this config, so the instance cannot be reached")
    return admin.get("listen") or os.environ.get("RWS_ADMIN") or "localhost:2019"


def check_admin_response(status: int, body: bytes) -> None:
    if status >= 400:
        text = body.decode("utf-8", "replace").strip()
        try:
            text = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            pass
        raise RwsError(f"rws responded with error: HTTP {status}: {text}")


def read_config_file(path: str) -> str:
    return Path(path).read_text("utf-8")
