"""rws as a user runs it: `rws run`, `start`, `reload`, `stop`, signals, `--resume`,
`--watch`, `file-server` and `respond`, each a real process on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from .processes import Process, kill, wait_gone


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}


@pytest.fixture
def running(tmp_path: Path, env: dict[str, str]) -> Iterator[Any]:
    started: list[Process] = []

    def start(args: list[str]) -> Process:
        process = Process(args, tmp_path, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def site(tmp_path: Path, body: str, admin: str | None = None, extra: str = "") -> Path:
    admin_line = f"\tadmin {admin}\n" if admin else "\tadmin off\n"
    text = "{\n" + admin_line + "}\n" + f"http://127.0.0.1:0 {{\n\tbind 127.0.0.1\n{extra}\trespond \"{body}\"\n}}\n"
    path = tmp_path / "Rwsfile"
    path.write_text(text)
    return path


def rws(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rws", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_run_serves_the_rwsfile_and_sigterm_stops_it(tmp_path: Path, running: Any) -> None:
    site(tmp_path, "hello")
    process = running(["run", "Rwsfile"])
    assert httpx.get(f"http://127.0.0.1:{process.port()}/").text == "hello"
    assert process.stop() == 0
    process.wait_for("shutting down")


def test_run_with_no_config_serves_only_the_admin_api(tmp_path: Path, running: Any) -> None:
    sock = tmp_path / "admin.sock"
    env_process = running(["run"])
    env_process.wait_for("config applied")
    del sock  # the default admin address is used; nothing else listens
    assert [r for r in env_process.records if r.get("msg") == "listener bound"] != []


def test_start_reload_stop(tmp_path: Path, env: dict[str, str]) -> None:
    admin = f"unix/{tmp_path / 'admin.sock'}"
    site(tmp_path, "first", admin=admin)
    # the background instance inherits stdout and stderr (as with Caddy): give it files
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        code = subprocess.run([sys.executable, "-m", "rws", "start", "--config", "Rwsfile"], cwd=tmp_path, env=env,
                              stdout=out, stderr=err, timeout=120).returncode
    assert code == 0, (tmp_path / "err").read_text()
    pid = int((tmp_path / "out").read_text().split("pid=")[1].split(")")[0])
    try:
        config = json.loads(rws(["adapt"], tmp_path, env).stdout)
        assert config["admin"]["listen"] == admin
        port = _wait_port_of(tmp_path / "err")
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "first"
        site(tmp_path, "second", admin=admin)
        reloaded = rws(["reload", "--config", "Rwsfile"], tmp_path, env)
        assert reloaded.returncode == 0, reloaded.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "second"
        stopped = rws(["stop", "--config", "Rwsfile"], tmp_path, env)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone([pid])
    finally:
        kill(pid)


def _wait_port_of(log: Path) -> int:
    """The HTTP port of an instance started in the background, from its log (stderr)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("msg") == "listener bound" and not record["address"].startswith("unix"):
                return int(record["bound"][1])
        time.sleep(0.05)
    raise AssertionError(log.read_text())




def test_sighup_reloads_the_config_file(tmp_path: Path, running: Any) -> None:
    site(tmp_path, "before")
    process = running(["run", "--config", "Rwsfile"])
    port = process.port()
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "before"
    site(tmp_path, "after")
    process.proc.send_signal(signal.SIGHUP)
    process.wait_for("config applied", count=2)
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "after"


def test_a_bad_file_on_sighup_keeps_the_running_config(tmp_path: Path, running: Any) -> None:
    site(tmp_path, "good")
    process = running(["run", "--config", "Rwsfile"])
    port = process.port()
    (tmp_path / "Rwsfile").write_text(":80 {\n\tnope\n}\n")
    process.proc.send_signal(signal.SIGHUP)
    process.wait_for("reload failed; the running config is unchanged")
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "good"


def test_watch_reloads_when_the_file_changes(tmp_path: Path, running: Any) -> None:
    site(tmp_path, "one")
    process = running(["run", "--config", "Rwsfile", "--watch"])
    port = process.port()
    time.sleep(1.1)  # let the file's mtime move on (filesystem timestamp granularity)
    site(tmp_path, "two")
    process.wait_for("config applied", count=2)
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "two"


def test_resume_starts_from_the_autosaved_config(tmp_path: Path, running: Any) -> None:
    site(tmp_path, "saved", admin="unix/" + str(tmp_path / "a.sock"))
    first = running(["run", "--config", "Rwsfile"])
    first.port()
    assert first.stop() == 0
    (tmp_path / "Rwsfile").write_text("this is not an rwsfile {\n")
    second = running(["run", "--resume"])
    assert httpx.get(f"http://127.0.0.1:{second.port()}/").text == "saved"


def test_bad_config_at_startup_exits_1_with_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "Rwsfile").write_text(":80 {\n\tnope\n}\n")
    result = rws(["run"], tmp_path, env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Rwsfile:2: unrecognized directive: nope")


def test_stop_without_a_running_instance_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    result = rws(["stop", "--address", f"unix/{tmp_path / 'none.sock'}"], tmp_path, env)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1


def test_respond_command(tmp_path: Path, running: Any) -> None:
    process = running(["respond", "--listen", "127.0.0.1:0", "--status", "201", "--header", "X-Test: yes", "made it"])
    response = httpx.get(f"http://127.0.0.1:{process.port()}/any")
    assert (response.status_code, response.text, response.headers["x-test"]) == (201, "made it", "yes")


def test_file_server_command(tmp_path: Path, running: Any) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.txt").write_text("file a")
    process = running(["file-server", "--root", "site", "--listen", "127.0.0.1:0", "--browse"])
    port = process.port()
    assert httpx.get(f"http://127.0.0.1:{port}/a.txt").text == "file a"
    listing = httpx.get(f"http://127.0.0.1:{port}/", headers={"Accept": "application/json"}).json()
    assert [entry["name"] for entry in listing] == ["a.txt"]


def test_graceful_stop_lets_a_request_in_flight_complete(tmp_path: Path, running: Any) -> None:
    (tmp_path / "Rwsfile").write_text(
        "{\n\tadmin off\n}\nhttp://127.0.0.1:0 {\n\tbind 127.0.0.1\n\trespond \"got {http.request.body}\"\n}\n")
    process = running(["run"])
    port = process.port()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.3)  # the request is in flight, waiting for the rest of its body
        process.proc.send_signal(signal.SIGTERM)
        process.wait_for("shutting down")
        conn.sendall(b"world")
        data = b""
        while not data.endswith(b"got helloworld"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"got helloworld")
    assert process.proc.wait(30) == 0


def test_a_second_signal_forces_the_stop(tmp_path: Path, running: Any) -> None:
    (tmp_path / "Rwsfile").write_text(
        "{\n\tadmin off\n}\nhttp://127.0.0.1:0 {\n\tbind 127.0.0.1\n\trespond \"{http.request.body}\"\n}\n")
    process = running(["run"])
    port = process.port()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.3)
        process.proc.send_signal(signal.SIGINT)
        process.wait_for("shutting down")
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(30) == 2


def test_ten_sighup_reloads_under_load_lose_no_request(tmp_path: Path, running: Any) -> None:
    site(tmp_path, "v0")
    process = running(["run", "--config", "Rwsfile"])
    url = f"http://127.0.0.1:{process.port()}/"
    failures: list[str] = []
    served = [0]
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.get(url)
                    if response.status_code != 200:
                        failures.append(str(response.status_code))
                    served[0] += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    clients = [threading.Thread(target=loop, daemon=True) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        for i in range(1, 11):
            site(tmp_path, f"v{i}")
            before = served[0]
            process.proc.send_signal(signal.SIGHUP)
            process.wait_for("config applied", count=i + 1)
            deadline = time.monotonic() + 10
            while served[0] < before + 20 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        stop.set()
        for client in clients:
            client.join(30)
    assert failures == []
    assert httpx.get(url).text == "v10"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_ten_thousand_idle_connections_stay_cheap(tmp_path: Path, running: Any) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 10_000
    if hard != resource.RLIM_INFINITY and hard < 2 * wanted + 200:
        wanted = max(1000, (hard - 200) // 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * wanted + 200)), hard))
    try:
        site(tmp_path, "idle")
        process = running(["run", "--config", "Rwsfile"])
        port = process.port()
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "idle"
        before = _rss_kib(process.proc.pid)
        socks = []
        try:
            for _ in range(wanted):
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            # every connection is accepted and idle: a request on the last one still works
            last = socks[-1]
            last.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while not data.endswith(b"idle"):
                chunk = last.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert data.endswith(b"idle")
            grown_kib = _rss_kib(process.proc.pid) - before
            assert grown_kib < wanted * 15  # under 15 KiB per idle connection (150 MB for 10,000)
        finally:
            for s in socks:
                s.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
