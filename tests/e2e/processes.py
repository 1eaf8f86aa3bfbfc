"""Real `rws` processes for end-to-end tests: started in the background, their JSON log
records (stderr) collected, stopped by PID; and checks on processes by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class Process:
    """`rws <args>` in the background; its stderr (JSON log lines) is collected."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "rws", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.records: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            with contextlib.suppress(ValueError):  # not every stderr line is a JSON record
                self.records.append(json.loads(line))

    def wait_for(self, msg: str, count: int = 1, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.records if r.get("msg") == msg]
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no {msg!r} record; stderr:\n{''.join(self.lines)}")

    def port(self, count: int = 1) -> int:
        """The port of the `count`-th HTTP listener bound (the admin socket is a file here)."""
        records = [r for r in self.records if r.get("msg") == "listener bound" and not r["address"].startswith("unix")]
        deadline = time.monotonic() + 30
        while len(records) < count and time.monotonic() < deadline:
            time.sleep(0.02)
            records = [r for r in self.records if r.get("msg") == "listener bound" and not r["address"].startswith("unix")]
        assert len(records) >= count, "".join(self.lines)
        return int(records[count - 1]["bound"][1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port()}{path}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie child of ours counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return
        time.sleep(0.05)
    raise AssertionError(f"still running: {[pid for pid in pids if alive(pid)]}")


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.kill(pid, signal.SIGKILL)
