"""Logs at run time: writers (rolled files, sockets), encoders and field filters, levels,
namespaces, sampling, Python `logging` records, and the access log. Log lines are read
back from real files and sockets and parsed."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import shutil
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import zstandard

from rws.config.decode import decode
from rws.config.model import LoggingConfig
from rws.errors import ConfigError
from rws.http.config import ServerLogConfig
from rws.http.message import Headers, Request
from rws.observability import logs as logs_module
from rws.observability.access_log import AccessLogger, add_field, match_wildcard
from rws.observability.log_writers import RollingFile
from rws.observability.logs import DEBUG, ERROR, INFO, WARN, Duration, Logs, build_logs

Factory = Callable[..., Logs]


@pytest.fixture
def make_logs() -> Iterator[Factory]:
    """Build logs from a `logging` JSON config; everything built is closed afterwards, and
    the process's installed logs and root logger are put back."""
    built: list[Logs] = []
    saved = logs_module._current
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level

    def make(config: dict[str, Any]) -> Logs:
        logs = build_logs(decode(LoggingConfig, config, "logging"))
        built.append(logs)
        return logs

    yield make
    for logs in built:
        logs.close()
    logs_module._current = saved
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def file_log(path: Path, **log: Any) -> dict[str, Any]:
    """A config with one log `app` writing to `path` (JSON unless an encoder is given)."""
    writer = {"output": "file", "filename": str(path), **log.pop("writer", {})}
    log.setdefault("encoder", {"format": "json"})
    return {"logs": {"default": {"writer": {"output": "discard"}}, "app": {"writer": writer, **log}}}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the JSON and console encoders ---------------------------------------------------------


def test_a_json_record_has_caddys_keys_in_order(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path))
    logs.log("http.handlers.test", INFO, "hello", {"n": 1, "ok": True, "nested": {"a": [1, "b"]}, "none": None},
             ts=1700000000.25)
    text = path.read_text()
    assert text == ('{"level":"info","ts":1700000000.25,"logger":"http.handlers.test","msg":"hello",'
                    '"n":1,"ok":true,"nested":{"a":[1,"b"]},"none":null}\n')


def test_numbers_are_written_as_go_writes_them(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path))
    logs.log("x", INFO, "m", {"small": 0.0000125, "whole": 3.0, "dur": Duration(0.5)}, ts=1700000000.0)
    assert '"ts":1700000000,' in path.read_text()
    assert '"small":0.0000125,"whole":3,"dur":0.5}' in path.read_text()


def test_encoder_keys_can_be_renamed_or_left_out(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    encoder = {"format": "json", "message_key": "message", "level_key": "severity", "time_key": "",
               "name_key": "", "line_ending": "\r\n"}
    logs = make_logs(file_log(path, encoder=encoder))
    logs.log("x", WARN, "careful")
    assert path.read_bytes() == b'{"severity":"warn","message":"careful"}\r\n'


@pytest.mark.parametrize("time_format,expected", [
    ("unix_milli_float", "1700000000250"),
    ("unix_nano", "1700000000250000000"),
    ("rfc3339", '"2023-11-14T22:13:20Z"'),
    ("wall_milli", '"2023/11/14 22:13:20.250"'),
    ("common_log", '"14/Nov/2023:22:13:20 +0000"'),
    ("Mon Jan _2 15:04:05.000 2006", '"Tue Nov 14 22:13:20.250 2023"'),
])
def test_time_formats(make_logs: Factory, tmp_path: Path, time_format: str, expected: str) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, encoder={"format": "json", "time_format": time_format}))
    logs.log("x", INFO, "m", ts=1700000000.25)
    assert f'"ts":{expected},' in path.read_text()


@pytest.mark.parametrize("duration_format,expected", [
    ("", "1.5"), ("seconds", "1.5"), ("ms", "1500"), ("ns", "1500000000"), ("string", '"1.5s"'),
])
def test_duration_formats(make_logs: Factory, tmp_path: Path, duration_format: str, expected: str) -> None:
    path = tmp_path / "app.log"
    encoder = {"format": "json", "duration_format": duration_format} if duration_format else {"format": "json"}
    logs = make_logs(file_log(path, encoder=encoder))
    logs.log("x", INFO, "m", {"duration": Duration(1.5)})
    assert path.read_text().endswith(f'"duration":{expected}}}\n')


@pytest.mark.parametrize("level_format,expected", [("upper", '"ERROR"'), ("lower", '"error"'),
                                                   ("color", '"\\u001b[31mERROR\\u001b[0m"')])
def test_level_formats(make_logs: Factory, tmp_path: Path, level_format: str, expected: str) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, encoder={"format": "json", "level_format": level_format}))
    logs.log("x", ERROR, "m")
    assert path.read_text().startswith(f'{{"level":{expected},')


def test_the_console_encoder_writes_tab_separated_columns(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, encoder={"format": "console", "time_format": "rfc3339"}))
    logs.log("http.log.access", INFO, "handled request", {"status": 200}, ts=1700000000.25)
    logs.log("x", INFO, "bare", ts=1700000000.25)
    assert path.read_text().splitlines() == [
        '2023-11-14T22:13:20Z\t\x1b[34mINFO\x1b[0m\thttp.log.access\thandled request\t{"status":200}',
        "2023-11-14T22:13:20Z\t\x1b[34mINFO\x1b[0m\tx\tbare",
    ]


# --- levels, namespaces, sampling ----------------------------------------------------------


def test_records_below_a_logs_level_are_dropped(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, level="WARN"))
    for level, msg in ((DEBUG, "debug"), (INFO, "info"), (WARN, "warn"), (ERROR, "error")):
        logs.log("x", level, msg)
    assert [r["msg"] for r in lines(path)] == ["warn", "error"]
    assert logs.enabled("x", ERROR) and not logs.enabled("x", INFO)


def test_a_level_may_come_from_the_environment(make_logs: Factory, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RWS_TEST_LEVEL", "debug")
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, level="{env.RWS_TEST_LEVEL}"))
    logs.log("x", DEBUG, "seen")
    assert [r["msg"] for r in lines(path)] == ["seen"]


def test_an_unknown_level_is_a_config_error(make_logs: Factory, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RWS_UNSET_LEVEL_VAR", raising=False)
    with pytest.raises(ConfigError, match="invalid log level"):
        make_logs(file_log(tmp_path / "app.log", level="{env.RWS_UNSET_LEVEL_VAR}"))
    monkeypatch.setenv("RWS_UNSET_LEVEL_VAR", "loud")
    with pytest.raises(ConfigError, match="unrecognized log level: loud"):
        make_logs(file_log(tmp_path / "app.log", level="{env.RWS_UNSET_LEVEL_VAR}"))


@pytest.mark.parametrize("include,exclude,logger,taken", [
    ([], [], "anything", True),
    (["http.log.access.log0"], [], "http.log.access.log0", True),
    (["http.log.access.log0"], [], "http.log.access.log1", False),
    (["http.log.access.log0"], [], "http.log.access", False),
    (["http.log.access"], [], "http.log.access.log3", True),
    ([], ["http.log.access.log0"], "http.log.access.log0", False),
    ([], ["http.log.access.log0"], "http.log.access", True),
    ([], ["http"], "http.handlers.reverse_proxy", False),
    (["http.handlers"], ["http.handlers.reverse_proxy"], "http.handlers.file_server", True),
    (["http.handlers"], ["http.handlers.reverse_proxy"], "http.handlers.reverse_proxy.health", False),
    (["http"], ["http.handlers"], "tls", False),
    ([], ["*"], "anything", False),
])
def test_include_and_exclude_pick_loggers_like_caddy(make_logs: Factory, tmp_path: Path, include: list[str],
                                                     exclude: list[str], logger: str, taken: bool) -> None:
    path = tmp_path / "app.log"
    log: dict[str, Any] = {}
    if include:
        log["include"] = include
    if exclude:
        log["exclude"] = exclude
    logs = make_logs(file_log(path, **log))
    logs.log(logger, INFO, "m")
    assert bool(path.read_text()) is taken


def test_sampling_keeps_the_first_then_every_nth(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, sampling={"interval": 60_000_000_000, "first": 3, "thereafter": 5}))
    for i in range(20):
        logs.log("x", INFO, "same", {"i": i}, ts=1000.0)
    logs.log("x", INFO, "other", {"i": 99}, ts=1000.0)
    assert [r["i"] for r in lines(path)] == [0, 1, 2, 7, 12, 17, 99]


def test_sampling_starts_over_each_interval(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, sampling={"interval": 1_000_000_000, "first": 1, "thereafter": 100}))
    for ts in (1000.0, 1000.5, 1001.2, 1001.3):
        logs.log("x", INFO, "tick", {"ts": ts}, ts=ts)
    assert [r["ts"] for r in lines(path)] == [1000.0, 1001.2]


# --- default, standard streams and discard -------------------------------------------------


def test_without_a_default_log_records_go_to_stderr_as_json(make_logs: Factory,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    logs = make_logs({})
    logs.log("admin", INFO, "started", {"port": 2019})
    logs.log("admin", DEBUG, "noise")
    record = json.loads(capsys.readouterr().err)
    assert {k: record[k] for k in ("level", "logger", "msg", "port")} == \
        {"level": "info", "logger": "admin", "msg": "started", "port": 2019}
    assert isinstance(record["ts"], float)


def test_stdout_writer_and_the_default_logs_exclusions(make_logs: Factory,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    logs = make_logs({"logs": {"default": {"exclude": ["http.log.access.log0"]},
                               "log0": {"writer": {"output": "stdout"}, "include": ["http.log.access.log0"],
                                        "encoder": {"format": "json"}}}})
    logs.log("http.log.access.log0", INFO, "handled request")
    logs.log("tls", INFO, "certificate obtained")
    out = capsys.readouterr()
    assert [json.loads(x)["msg"] for x in out.out.splitlines()] == ["handled request"]
    assert [json.loads(x)["msg"] for x in out.err.splitlines()] == ["certificate obtained"]


def test_discarded_logs_write_nothing(make_logs: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    logs = make_logs({"logs": {"default": {"writer": {"output": "discard"}},
                               "other": {"writer": {"output": "discard"}}}})
    logs.log("x", ERROR, "gone")
    assert logs.sinks == () and capsys.readouterr() == ("", "")


# --- files ---------------------------------------------------------------------------------


def test_a_log_file_and_its_folders_are_created_private(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "app.log"
    logs = make_logs(file_log(path))
    logs.log("x", INFO, "m")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_configured_file_mode_is_applied(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("")
    path.chmod(0o600)
    make_logs(file_log(path, writer={"mode": "0644"}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_file_name_can_use_environment_placeholders(make_logs: Factory, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RWS_TEST_LOGS", str(tmp_path))
    logs = make_logs({"logs": {"app": {"writer": {"output": "file", "filename": "{env.RWS_TEST_LOGS}/x.log"}}}})
    logs.log("x", INFO, "m")
    assert (tmp_path / "x.log").read_text()


def write_megabytes(logs: Logs, megabytes: float) -> int:
    """Log ~1 kB records until `megabytes` are written; returns how many."""
    count = int(megabytes * 1024)
    for i in range(count):
        logs.log("x", INFO, "filler", {"i": i, "pad": "p" * 900})
    return count


def rolled(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name != "app.log")


def wait_for_housekeeping(logs: Logs) -> None:
    for sink in logs.sinks:
        if isinstance(sink.writer, RollingFile):
            sink.writer.wait_for_mill()


def test_a_file_is_rolled_by_size_and_the_old_one_gzipped(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, writer={"roll_size_mb": 1}))
    count = write_megabytes(logs, 1.5)
    wait_for_housekeeping(logs)
    backups = rolled(tmp_path)
    assert len(backups) == 1
    name = backups[0].name
    assert name.startswith("app-") and name.endswith("-size.log.gz"), name
    time.strptime(name[4:-len("-size.log.gz")], "%Y-%m-%dT%H-%M-%S.%f")
    old = [json.loads(line) for line in gzip.decompress(backups[0].read_bytes()).splitlines()]
    assert [r["i"] for r in old + lines(path)] == list(range(count))
    assert backups[0].stat().st_size < 1024 * 1024 // 4
    assert path.stat().st_size < 1024 * 1024


def test_roll_keep_limits_how_many_rolled_files_stay(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, writer={"roll_size_mb": 1, "roll_keep": 2}))
    write_megabytes(logs, 4.5)
    wait_for_housekeeping(logs)
    logs.log("x", INFO, "last")
    wait_for_housekeeping(logs)
    assert len(rolled(tmp_path)) == 2


def test_uncompressed_and_zstd_rolling(make_logs: Factory, tmp_path: Path) -> None:
    plain, packed = tmp_path / "plain", tmp_path / "zstd"
    for folder, writer in ((plain, {"roll_gzip": False}), (packed, {"roll_compression": "zstd"})):
        logs = make_logs(file_log(folder / "app.log", writer={"roll_size_mb": 1, **writer}))
        write_megabytes(logs, 1.2)
        wait_for_housekeeping(logs)
    [plain_backup] = rolled(plain)
    assert plain_backup.name.endswith("-size.log")
    assert json.loads(plain_backup.read_text().splitlines()[0])["i"] == 0
    [zstd_backup] = rolled(packed)
    assert zstd_backup.name.endswith("-size.log.zst")
    data = zstandard.ZstdDecompressor().decompressobj().decompress(zstd_backup.read_bytes())
    assert json.loads(data.splitlines()[0])["i"] == 0


def test_rolled_files_older_than_roll_keep_days_are_deleted(make_logs: Factory, tmp_path: Path) -> None:
    ancient = tmp_path / "app-2001-02-03T04-05-06.789-size.log.gz"
    ancient.write_bytes(gzip.compress(b"{}\n"))
    recent_name = time.strftime("app-%Y-%m-%dT%H-%M-%S.000-size.log.gz", time.gmtime(time.time() - 3600))
    (tmp_path / recent_name).write_bytes(gzip.compress(b"{}\n"))
    unrelated = tmp_path / "app-notes.txt"
    unrelated.write_text("keep me")
    logs = make_logs(file_log(tmp_path / "app.log", writer={"roll_keep_days": 30}))
    logs.log("x", INFO, "m")
    wait_for_housekeeping(logs)
    assert not ancient.exists()
    assert (tmp_path / recent_name).exists() and unrelated.exists()


def test_rolling_can_be_disabled(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, writer={"roll": False, "roll_size_mb": 1}))
    write_megabytes(logs, 1.3)
    assert rolled(tmp_path) == [] and path.stat().st_size > 1024 * 1024


def test_a_file_is_rolled_at_an_interval(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, writer={"roll_interval": 200_000_000, "roll_gzip": False}))
    logs.log("x", INFO, "before")
    time.sleep(0.3)
    logs.log("x", INFO, "after")
    wait_for_housekeeping(logs)
    [backup] = rolled(tmp_path)
    assert backup.name.endswith("-time.log")
    assert [json.loads(x)["msg"] for x in backup.read_text().splitlines()] == ["before"]
    assert [r["msg"] for r in lines(path)] == ["after"]


def test_two_logs_naming_one_file_share_it(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    writer = {"output": "file", "filename": str(path)}
    logs = make_logs({"logs": {"a": {"writer": writer, "include": ["a"]}, "b": {"writer": writer, "include": ["b"]}}})
    assert logs.sinks[1].writer is logs.sinks[2].writer
    logs.log("a", INFO, "one")
    logs.log("b", INFO, "two")
    assert [r["msg"] for r in lines(path)] == ["one", "two"]


def test_a_reload_keeps_a_shared_file_open(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    old = make_logs(file_log(path))
    new = make_logs(file_log(path))
    old.close()
    new.log("x", INFO, "after reload")
    assert [r["msg"] for r in lines(path)] == ["after reload"]


# --- network sockets -----------------------------------------------------------------------


def test_a_net_writer_sends_lines_over_tcp(make_logs: Factory) -> None:
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.append(chunk)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    logs = make_logs({"logs": {"default": {"writer": {"output": "net", "address": f"tcp/127.0.0.1:{port}"},
                                           "encoder": {"format": "json"}}}})
    logs.log("x", INFO, "over the wire", {"n": 1})
    logs.log("x", INFO, "again", {"n": 2})
    logs.close()
    thread.join(5)
    server.close()
    assert [json.loads(x)["n"] for x in b"".join(received).splitlines()] == [1, 2]


def test_an_unreachable_net_writer_fails_unless_soft_start(make_logs: Factory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    writer = {"output": "net", "address": f"127.0.0.1:{port}", "dial_timeout": 1_000_000_000}
    with pytest.raises(ConfigError, match="failed to connect"):
        make_logs({"logs": {"default": {"writer": writer}}})
    make_logs({"logs": {"default": {"writer": {**writer, "soft_start": True}}}})


# --- the filter encoder --------------------------------------------------------------------


def filtered(make_logs: Factory, tmp_path: Path, fields: dict[str, Any], record: dict[str, Any],
             wrap: dict[str, Any] | None = None) -> dict[str, Any]:
    path = tmp_path / "app.log"
    encoder: dict[str, Any] = {"format": "filter", "fields": fields}
    if wrap is not None:
        encoder["wrap"] = wrap
    logs = make_logs(file_log(path, encoder=encoder))
    logs.log("x", INFO, "m", record)
    return {k: v for k, v in lines(path)[0].items() if k not in ("level", "ts", "logger", "msg")}


def short_hash(data: bytes) -> str:
    """What Caddy's hash filter keeps: the first 4 bytes of the SHA-256, in hex."""
    return hashlib.sha256(data).hexdigest()[:8]


REQUEST = {"request": {"remote_ip": "192.168.10.77", "uri": "/a?token=s3cret&b=2&b=3",
                       "headers": {"Cookie": ["session=abc; theme=dark; id=42"], "Authorization": ["Bearer x"],
                                   "X-Forwarded-For": ["10.1.2.3, 2001:db8:aaaa:bbbb::1"]}},
           "resp_headers": {"Set-Cookie": ["session=new; Path=/; HttpOnly", "other=1"]}}


def test_delete_replace_rename_and_hash(make_logs: Factory, tmp_path: Path) -> None:
    out = filtered(make_logs, tmp_path, {
        "request>headers>Authorization": {"filter": "delete"},
        "request>remote_ip": {"filter": "hash"},
        "request>uri": {"filter": "replace", "value": "REDACTED"},
        "resp_headers": {"filter": "rename", "name": "response_headers"},
    }, REQUEST)
    request = out["request"]
    assert "Authorization" not in request["headers"]
    assert request["remote_ip"] == short_hash(b"192.168.10.77")
    assert request["uri"] == "REDACTED"
    assert "resp_headers" not in out and out["response_headers"] == REQUEST["resp_headers"]


def test_ip_mask(make_logs: Factory, tmp_path: Path) -> None:
    out = filtered(make_logs, tmp_path, {
        "request>remote_ip": {"filter": "ip_mask", "ipv4_cidr": 16},
        "request>headers>X-Forwarded-For": {"filter": "ip_mask", "ipv4_cidr": 24, "ipv6_cidr": 32},
        "peer": {"filter": "ip_mask", "ipv4_cidr": 8, "ipv6_cidr": 64},
        "v6_only": {"filter": "ip_mask", "ipv6_cidr": 64},
    }, {**REQUEST, "peer": "[2001:db8:1:2:3:4:5:6]:443", "v6_only": "10.0.0.1"})
    assert out["request"]["remote_ip"] == "192.168.0.0"
    assert out["request"]["headers"]["X-Forwarded-For"] == ["10.1.2.0, 2001:db8::"]
    assert out["peer"] == "[2001:db8:1:2::]:443"
    assert out["v6_only"] == "<nil>"  # no IPv4 mask configured: what Go prints


def test_query_parameters(make_logs: Factory, tmp_path: Path) -> None:
    out = filtered(make_logs, tmp_path, {"request>uri": {"filter": "query", "actions": [
        {"type": "replace", "parameter": "b", "value": "x y"},
        {"type": "hash", "parameter": "token"},
        {"type": "delete", "parameter": "absent"},
    ]}}, REQUEST)
    token = short_hash(b"s3cret")
    assert out["request"]["uri"] == f"/a?b=x+y&b=x+y&token={token}"


def test_cookies_and_set_cookies(make_logs: Factory, tmp_path: Path) -> None:
    out = filtered(make_logs, tmp_path, {
        "request>headers>Cookie": {"filter": "cookie", "actions": [
            {"type": "replace", "name": "session", "value": "REDACTED"}, {"type": "delete", "name": "theme"},
            {"type": "hash", "name": "id"}]},
        "resp_headers>Set-Cookie": {"filter": "set_cookie", "actions": [
            {"type": "replace", "name": "session", "value": "REDACTED"}, {"type": "delete", "name": "other"}]},
    }, REQUEST)
    id_hash = short_hash(b"42")
    assert out["request"]["headers"]["Cookie"] == [f"session=REDACTED; id={id_hash}"]
    assert out["resp_headers"]["Set-Cookie"] == ["session=REDACTED; Path=/; HttpOnly"]


def test_regexp_and_multi_regexp_use_go_replacement_syntax(make_logs: Factory, tmp_path: Path) -> None:
    out = filtered(make_logs, tmp_path, {
        "request>headers>Authorization": {"filter": "regexp", "regexp": "^(\\w+) .*$", "value": "$1 ${1}_hidden $$"},
        "request>uri": {"filter": "multi_regexp", "operations": [
            {"regexp": "token=[^&]*", "value": "token=X"}, {"regexp": "(?<k>b)=(\\d)", "value": "${k}=n${2}x$2x$9"}]},
    }, REQUEST)
    assert out["request"]["headers"]["Authorization"] == ["Bearer Bearer_hidden $"]
    assert out["request"]["uri"] == "/a?token=X&b=n2x&b=n3x"


def test_a_filter_can_wrap_the_console_encoder(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    encoder = {"format": "filter", "wrap": {"format": "console", "time_format": "unix_seconds_float",
                                            "level_format": "upper"},
               "fields": {"secret": {"filter": "delete"}}}
    logs = make_logs(file_log(path, encoder=encoder))
    logs.log("x", INFO, "m", {"secret": 1, "kept": 2}, ts=5.5)
    assert path.read_text() == '5.5\tINFO\tx\tm\t{"kept":2}\n'


# --- Python logging ------------------------------------------------------------------------


def test_python_logging_records_flow_into_the_installed_logs(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logs = make_logs(file_log(path, level="DEBUG", with_caller=True))
    logs.install()
    log = logging.getLogger("rws.tests.bridge")
    log.debug("debug detail", extra={"upstream": "10.0.0.1:80", "attempt": 2})
    try:
        raise ValueError("bad thing")
    except ValueError:
        log.exception("handler failed", extra={"error_id": "abc123"})
    first, second = lines(path)
    assert first["logger"] == "rws.tests.bridge" and first["level"] == "debug" and first["msg"] == "debug detail"
    assert (first["upstream"], first["attempt"]) == ("10.0.0.1:80", 2)
    assert first["caller"].startswith("observability/test_logs_runtime.py:")
    assert second["level"] == "error" and second["error_id"] == "abc123" and second["error"] == "bad thing"
    assert second["stacktrace"].startswith("Traceback") and "ValueError: bad thing" in second["stacktrace"]


def test_python_records_honour_levels_and_namespaces(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    make_logs(file_log(path, level="INFO", exclude=["rws.noisy"])).install()
    logging.getLogger("rws.noisy.part").warning("dropped")
    logging.getLogger("rws.quiet").debug("below the level")
    logging.getLogger("rws.quiet").info("kept")
    assert [r["msg"] for r in lines(path)] == ["kept"]


# --- access logs ---------------------------------------------------------------------------


def access_logs(tmp_path: Path, make_logs: Factory, names: tuple[str, ...] = ("",)) -> tuple[Logs, Path]:
    """Logs with a JSON file for the access loggers `names` ("" is the server's default)."""
    path = tmp_path / "access.log"
    include = [f"http.log.access.{n}" if n else "http.log.access" for n in names]
    config = file_log(path, include=include)
    return make_logs(config), path


def access_logger(logs: Logs, **config: Any) -> AccessLogger:
    return AccessLogger(decode(ServerLogConfig, config, "logs"), logs=logs)


def a_request(host: str = "example.com", target: str = "/path?q=1", method: str = "GET",
              **headers: str) -> Request:
    fields = [("Host", host), ("User-Agent", "curl/8"), ("accept", "*/*"), ("Accept", "text/html")]
    fields.extend((k.replace("_", "-"), v) for k, v in headers.items())
    request = Request(method, target, Headers(fields), remote=("203.0.113.9", 51234))
    request.vars["client_ip"] = "203.0.113.9"
    return request


def test_an_access_record_has_caddys_fields(make_logs: Factory, tmp_path: Path) -> None:
    logs, path = access_logs(tmp_path, make_logs)
    request = a_request(host="example.com:8443", Authorization="Basic eDp5", Cookie="a=b")
    request.values["http.auth.user.id"] = "alice"
    resp_headers = Headers([("Content-Type", "text/html"), ("Set-Cookie", "s=1"), ("set-cookie", "t=2")])
    access_logger(logs).log(request, 200, resp_headers, 1234, 17, 0.0015)
    [record] = lines(path)
    assert list(record) == ["level", "ts", "logger", "msg", "request", "bytes_read", "user_id", "duration", "size",
                            "status", "resp_headers"]
    assert (record["level"], record["logger"], record["msg"]) == ("info", "http.log.access", "handled request")
    assert record["request"] == {
        "remote_ip": "203.0.113.9", "remote_port": "51234", "client_ip": "203.0.113.9", "proto": "HTTP/1.1",
        "method": "GET", "host": "example.com:8443", "uri": "/path?q=1",
        "headers": {"User-Agent": ["curl/8"], "Accept": ["*/*", "text/html"], "Authorization": ["REDACTED"],
                    "Cookie": ["REDACTED"]},
    }
    assert (record["bytes_read"], record["user_id"], record["duration"], record["size"], record["status"]) == \
        (17, "alice", 0.0015, 1234, 200)
    assert record["resp_headers"] == {"Content-Type": ["text/html"], "Set-Cookie": ["REDACTED"]}


def test_credentials_are_logged_when_configured(make_logs: Factory, tmp_path: Path) -> None:
    logs, path = access_logs(tmp_path, make_logs)
    request = a_request(Authorization="Basic eDp5", Proxy_Authorization="p")
    access_logger(logs, should_log_credentials=True).log(request, 200, Headers([("Set-Cookie", "s=1")]), 0, 0, 0.1)
    [record] = lines(path)
    assert record["request"]["headers"]["Authorization"] == ["Basic eDp5"]
    assert record["request"]["headers"]["Proxy-Authorization"] == ["p"]
    assert record["resp_headers"]["Set-Cookie"] == ["s=1"]


def test_server_errors_are_logged_at_error_level(make_logs: Factory, tmp_path: Path) -> None:
    logs, path = access_logs(tmp_path, make_logs)
    logger = access_logger(logs)
    for status in (404, 500, 502):
        logger.log(a_request(), status, Headers(), 0, 0, 0.01)
    assert [(r["status"], r["level"]) for r in lines(path)] == [(404, "info"), (500, "error"), (502, "error")]


def test_an_error_only_log_gets_only_server_errors(make_logs: Factory, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logs = make_logs(file_log(path, level="ERROR", include=["http.log.access"]))
    logger = access_logger(logs)
    logger.log(a_request(), 200, Headers(), 0, 0, 0.01)
    logger.log(a_request(), 503, Headers(), 0, 0, 0.01)
    assert [r["status"] for r in lines(path)] == [503]


def test_hosts_choose_the_named_loggers(make_logs: Factory, tmp_path: Path) -> None:
    logs, path = access_logs(tmp_path, make_logs, ("log0", "log1", "log2", "fallback", ""))
    logger = access_logger(logs, logger_names={"example.com": ["log0", "log1"], "*.example.net": "log2",
                                               "*.*.org": ["log2"], "bare.test": [""]},
                           default_logger_name="fallback")
    for host in ("example.com:80", "api.example.net", "a.b.org", "bare.test", "other.test"):
        logger.log(a_request(host=host), 200, Headers(), 0, 0, 0.01)
    assert [(r["request"]["host"], r["logger"]) for r in lines(path)] == [
        ("example.com:80", "http.log.access.log0"), ("example.com:80", "http.log.access.log1"),
        ("api.example.net", "http.log.access.log2"), ("a.b.org", "http.log.access.log2"),
        ("bare.test", "http.log.access"), ("other.test", "http.log.access.fallback"),
    ]


def test_skip_rules(make_logs: Factory, tmp_path: Path) -> None:
    logs, path = access_logs(tmp_path, make_logs, ("log0", ""))
    skipping = access_logger(logs, logger_names={"mapped.test": ["log0"]}, skip_hosts=["quiet.test", "*.quiet.test"])
    unmapped = access_logger(logs, logger_names={"mapped.test": ["log0"]}, skip_unmapped_hosts=True)
    for logger in (skipping, unmapped):
        for host in ("mapped.test", "quiet.test", "x.quiet.test", "loud.test"):
            logger.log(a_request(host=host), 200, Headers(), 0, 0, 0.01)
    assert [r["request"]["host"] for r in lines(path)] == ["mapped.test", "loud.test", "mapped.test"]


def test_log_skip_and_logger_name_variables(make_logs: Factory, tmp_path: Path) -> None:
    logs, path = access_logs(tmp_path, make_logs, ("chosen", "also", ""))
    logger = access_logger(logs)
    skipped = a_request(target="/skipped")
    skipped.vars["log_skip"] = True
    named = a_request(target="/named")
    named.vars["access_logger_names"] = ["chosen", "also"]
    for request in (skipped, named):
        logger.log(request, 200, Headers(), 0, 0, 0.01)
    assert [(r["request"]["uri"], r["logger"]) for r in lines(path)] == [
        ("/named", "http.log.access.chosen"), ("/named", "http.log.access.also")]


def test_extra_fields_protocols_tls_and_unhandled_requests(make_logs: Factory, tmp_path: Path) -> None:
    logs, path = access_logs(tmp_path, make_logs)
    logger = access_logger(logs)
    request = a_request(Transfer_Encoding="chunked")
    request.version = "HTTP/2"
    request.chunked = True
    request.tls = {"resumed": False, "version": 772, "cipher_suite": 4865, "proto": "h2", "server_name": "example.com"}
    add_field(request, "uuid", "1234")
    unhandled = a_request()
    unhandled.vars["unhandled"] = True
    logger.log(request, 200, Headers(), 5, 0, 0.01)
    logger.log(unhandled, 200, Headers(), 0, 0, 0.01)
    first, second = lines(path)
    assert first["request"]["proto"] == "HTTP/2.0"
    assert first["request"]["transfer_encoding"] == ["chunked"]
    assert "Transfer-Encoding" not in first["request"]["headers"]
    assert first["request"]["tls"]["cipher_suite"] == 4865
    assert first["uuid"] == "1234"
    assert (second["msg"], second["status"]) == ("NOP", 0)


def test_nothing_is_built_when_no_log_takes_the_record(make_logs: Factory, tmp_path: Path) -> None:
    logs = make_logs({"logs": {"default": {"writer": {"output": "discard"}}}})
    calls: list[int] = []

    class Counting(AccessLogger):
        def fields(self, *args: Any) -> dict[str, Any]:
            calls.append(1)
            return super().fields(*args)

    Counting(decode(ServerLogConfig, {}, "logs"), logs=logs).log(a_request(), 200, Headers(), 0, 0, 0.1)
    assert calls == []


@pytest.mark.parametrize("subject,wildcard,matches", [
    ("example.com", "example.com", True), ("Example.COM", "example.com", True), ("a.example.com", "*.example.com", True),
    ("example.com", "*.example.com", False), ("a.b.example.com", "*.example.com", False),
    ("a.b.example.com", "*.*.example.com", True), ("example.com", "*", False), ("localhost", "*", True),
])
def test_host_wildcards_match_like_certmagic(subject: str, wildcard: str, matches: bool) -> None:
    assert match_wildcard(subject, wildcard) is matches


# --- over real sockets ---------------------------------------------------------------------


def test_a_served_request_is_logged_once_to_the_default_log(serve: Any, capfd: pytest.CaptureFixture[str]) -> None:
    config = {"apps": {"http": {"servers": {"srv0": {
        "listen": [":0"], "logs": {},
        "routes": [{"handle": [{"handler": "static_response", "status_code": 201, "body": "made"}]}],
    }}}}}
    with serve(config) as server:
        response = httpx.post(server.url("/things?x=1"), content=b"12345",
                              headers={"Authorization": "Bearer t", "User-Agent": "tester"})
        assert response.status_code == 201
        deadline = time.monotonic() + 5
        records: list[dict[str, Any]] = []
        err = ""
        while time.monotonic() < deadline and not records:
            err += capfd.readouterr().err
            records = [json.loads(line) for line in err.splitlines()
                       if line.startswith("{") and '"http.log.access' in line]
            time.sleep(0.05)
    [record] = records
    assert record["msg"] == "handled request" and record["status"] == 201
    request = record["request"]
    assert (request["method"], request["uri"], request["remote_ip"]) == ("POST", "/things?x=1", "127.0.0.1")
    assert request["headers"]["Authorization"] == ["REDACTED"] and request["headers"]["User-Agent"] == ["tester"]
    assert record["size"] == 4 and isinstance(record["duration"], float)


def test_a_sites_log_directive_writes_its_file(serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    site = f""":80 {{
	log {{
		output file {path}
		format json
	}}
	respond /hi "hello" 200
}}
"""
    with serve(site) as server:
        assert httpx.get(server.url("/hi"), headers={"Cookie": "a=b"}).text == "hello"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (path.exists() and path.read_text()):
            time.sleep(0.05)
    [record] = lines(path)
    assert record["logger"] == "http.log.access.log0"
    assert record["request"]["uri"] == "/hi" and record["request"]["headers"]["Cookie"] == ["REDACTED"]
    assert record["status"] == 200 and record["size"] == 5


# --- the same request against Caddy --------------------------------------------------------

CADDY = shutil.which("caddy")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _access_config(port: int) -> dict[str, Any]:
    return {"admin": {"disabled": True}, "apps": {"http": {"servers": {"srv0": {
        "listen": [f"127.0.0.1:{port}"], "logs": {}, "automatic_https": {"disable": True},
        "routes": [{"handle": [{"handler": "static_response", "status_code": 201, "body": "made",
                                "headers": {"Content-Type": ["text/plain"]}}]}],
    }}}}}


def _send(base: str) -> None:
    httpx.post(base + "/things?x=1", content=b"12345", headers={"Authorization": "Bearer t", "User-Agent": "tester"})


def _access_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"http.log.access' in line]


@pytest.mark.skipif(CADDY is None, reason="caddy is not installed")
def test_access_records_are_shaped_like_caddys(serve: Any, capfd: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    port = _free_port()
    config_file = tmp_path / "caddy.json"
    config_file.write_text(json.dumps(_access_config(port)))
    proc = subprocess.Popen([str(CADDY), "run", "--config", str(config_file)], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        _send(f"http://127.0.0.1:{port}")
        time.sleep(0.3)
    finally:
        proc.terminate()
        _, caddy_err = proc.communicate(timeout=10)
    [theirs] = _access_records(caddy_err)
    with serve(_access_config(0)) as server:
        _send(server.url("").rstrip("/"))
        time.sleep(0.3)
    [ours] = _access_records(capfd.readouterr().err)
    # Caddy 2.6.2 predates bytes_read, client_ip and "REDACTED" (it logs credentials as [])
    newer = {"bytes_read", "client_ip"}
    assert [k for k in ours if k not in newer] == list(theirs)
    assert [k for k in ours["request"] if k not in newer] == list(theirs["request"])
    for key in ("level", "logger", "msg", "status", "size", "user_id"):
        assert ours[key] == theirs[key], key
    for key in ("method", "uri", "proto", "remote_ip"):
        assert ours["request"][key] == theirs["request"][key], key
    assert ours["request"]["headers"]["Authorization"] == ["REDACTED"]
    assert theirs["request"]["headers"]["Authorization"] == []
    assert set(ours["request"]["headers"]) - {"Accept-Encoding", "Connection"} <= set(theirs["request"]["headers"])
    assert isinstance(ours["duration"], float) and isinstance(ours["ts"], float)
