"""A real ACME CA on loopback for end-to-end tests: Debian's `pebble` (2.4) with
`pebble-challtestsrv` as its mock DNS server, so that every name resolves to 127.0.0.1.

    with Pebble(tmp_path, http_port=P, tls_port=Q, validity=20) as pebble:
        pebble.directory    # https://127.0.0.1:PORT/dir, served with a certificate from .ca_file
        pebble.root_file()  # the root pebble issues under (leaf chains include an intermediate)
        pebble.orders()     # new-order requests received so far
        pebble.set_default_ipv4("127.0.0.2")  # names now resolve where nothing listens
        pebble.accounts()   # how many accounts pebble holds ("There are now N accounts in memory")

    Pebble(..., eab={"kid-1": MAC_KEY})  # new accounts need an external account binding (RFC 8555 §7.3.4)

Pebble's VA validates HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` of whatever the
name resolves to. Everything listens on 127.0.0.1 only; both processes are stopped by PID.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NEW_ORDER = "/order-plz"  # pebble's new-order endpoint; it logs "POST /order-plz -> calling handler()"
ACCOUNTS = re.compile(r"There are now (\d+) accounts in memory")  # pebble logs it after adding one
DEFAULT_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_tcp_port() -> int:
    """A port on 127.0.0.1 free for both TCP and UDP (what a DNS server binds)."""
    for _ in range(100):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both TCP and UDP")


def _make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A CA (written to pebble-ca.pem) and a server certificate for localhost and 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rws test pebble CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = folder / "pebble-ca.pem", folder / "pebble-cert.pem", folder / "pebble-key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


class _Output:
    """A process's stdout and stderr, collected line by line in a background thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.proc = proc
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


class Pebble:
    """pebble + pebble-challtestsrv on 127.0.0.1; a context manager, or call start()/stop()."""

    def __init__(self, folder: Path, http_port: int, tls_port: int, *, validity: int | None = None,
                 env: dict[str, str] | None = None, timeout: float = 20,
                 eab: dict[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.http_port, self.tls_port, self.validity = http_port, tls_port, validity
        self.env = {**DEFAULT_ENV, **(env or {})}
        self.timeout = timeout
        self.eab = dict(eab) if eab is not None else None  # key id -> base64url MAC key; required if given
        self.ca_file = self.folder / "pebble-ca.pem"
        self.port = self.management_port = self.dns_port = self.challtestsrv_port = 0
        self.pebble: subprocess.Popen[str] | None = None
        self.challtestsrv: subprocess.Popen[str] | None = None
        self._pebble_out: _Output | None = None
        self._challtestsrv_out: _Output | None = None

    # -- lifecycle

    def start(self) -> Pebble:
        self.folder.mkdir(parents=True, exist_ok=True)
        _, cert_file, key_file = _make_certs(self.folder)
        self.dns_port, self.challtestsrv_port = free_udp_tcp_port(), free_port()
        self.port, self.management_port = free_port(), free_port()
        settings: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert_file), "privateKey": str(key_file),
            "httpPort": self.http_port, "tlsPort": self.tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": self.eab is not None,
        }
        if self.eab is not None:
            settings["externalAccountMACKeys"] = self.eab
        if self.validity is not None:
            settings["certificateValidityPeriod"] = self.validity
        config = self.folder / "pebble-config.json"
        config.write_text(json.dumps({"pebble": settings}, indent=2), encoding="utf-8")
        try:
            self.challtestsrv = self._spawn(
                ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
                 "-tlsalpn01", "", "-management", f"127.0.0.1:{self.challtestsrv_port}",
                 "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], os.environ.copy())
            self._challtestsrv_out = _Output(self.challtestsrv)
            self.pebble = self._spawn(
                ["pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{self.dns_port}", "-strict=false"],
                {**os.environ, **self.env})
            self._pebble_out = _Output(self.pebble)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        return subprocess.Popen(args, cwd=self.folder, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            exited = [f"{name} exited with {proc.returncode}"
                      for name, proc in (("pebble", self.pebble), ("pebble-challtestsrv", self.challtestsrv))
                      if proc is not None and proc.poll() is not None]
            problem = "; ".join(exited)
            if not exited:
                try:
                    with socket.create_connection(("127.0.0.1", self.challtestsrv_port), timeout=1):
                        pass
                    self._get(self.directory)
                    return
                except OSError as exc:
                    problem = f"not ready after {self.timeout}s: {exc}"
            if exited or time.monotonic() > deadline:
                challtestsrv = self._challtestsrv_out.text if self._challtestsrv_out else ""
                raise RuntimeError(f"{problem}\n--- pebble:\n{self.output}\n--- pebble-challtestsrv:\n{challtestsrv}")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in (self.pebble, self.challtestsrv):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()  # by PID: Popen signals exactly the process it started
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for out in (self._pebble_out, self._challtestsrv_out):
            if out is not None:
                out.reader.join(5)
        for proc in (self.pebble, self.challtestsrv):
            if proc is not None and proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self) -> Pebble:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- what tests use

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def output(self) -> str:
        """pebble's log so far (stdout and stderr)."""
        return self._pebble_out.text if self._pebble_out else ""

    def orders(self) -> int:
        """How many new-order requests pebble has received."""
        return sum(1 for line in list(self._pebble_out.lines if self._pebble_out else [])
                   if f"POST {NEW_ORDER} " in line)

    def accounts(self) -> int:
        """How many accounts pebble holds (it logs the count each time one is added; 0 before)."""
        counts = [int(m.group(1)) for line in list(self._pebble_out.lines if self._pebble_out else [])
                  if (m := ACCOUNTS.search(line))]
        return counts[-1] if counts else 0

    def root_file(self) -> Path:
        """pebble's issuing root (from its management interface), written to pebble-root.pem."""
        path = self.folder / "pebble-root.pem"
        path.write_bytes(self._get(f"https://127.0.0.1:{self.management_port}/roots/0"))
        return path

    def set_default_ipv4(self, ip: str) -> None:
        """Make the mock DNS answer every A query with `ip` (e.g. 127.0.0.2: nothing listens there)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.challtestsrv_port}/set-default-ipv4",
                                         data=json.dumps({"ip": ip}).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with contextlib.closing(urllib.request.urlopen(url, timeout=5, context=context)) as response:
            data: bytes = response.read()
            return data
