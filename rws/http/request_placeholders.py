"""The placeholder providers: request data (`http.request.*`, `http.vars.*`, ...) and the
global ones (`env.*`, `system.*`, `time.*`, `file.*`), with Caddy's values and formats.

Values that other parts of rws set while a request runs live in `request.values` and need
no provider: `http.regexp.*` (regexp matchers), `http.matchers.file.*` (file matcher),
`http.error.*` (error routes), `http.auth.user.id`, `http.reverse_proxy.*`, and
`http.request.uuid` / `http.request.body` once computed. An access logger that wants the
final response headers in `{http.response.header.*}` looks them up on
`request.with_changes(response_headers=response.headers)`.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import platform
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from rws.http.message import Request
from rws.http.placeholders import BODY_KEY, prefix_provider, provider
from rws.http.uri import decode_path, path_base, path_dir_file, path_ext, query_escape, query_values

log = logging.getLogger(__name__)

FILE_PLACEHOLDER_MAX_BYTES = 1024 * 1024

def _go_atoi(text: str) -> int | None:
    """Go's strconv.Atoi for the digits it accepts (an optional sign, then ASCII digits)."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdecimal():
        return None
    return int(text)


def path_segment(path: str, index_text: str) -> tuple[Any, bool]:
    """`{http.request.uri.path.N}`: the N-th segment of a path, from the left, 0-based."""
    index = _go_atoi(index_text)
    if index is None or index < 0:
        return "", False
    segments = path.split("/")
    if segments and segments[0] == "":
        segments = segments[1:]
    return (segments[index] if index < len(segments) else ""), True


def address_text(ip: str, port: int | str) -> str:
    """Go's net.JoinHostPort."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _handshake_pending(request: Request) -> bool:
    """Whether the request came in TLS early data, before the handshake completed."""
    return request.tls is not None and getattr(request.tls, "handshake_complete", True) is False


# --- the request line and connection -----------------------------------------------------------


def _proto_name(request: Request) -> str:
    if request.version.startswith("HTTP/2"):
        return "HTTP/2"
    if request.version.startswith("HTTP/3"):
        return "HTTP/3"
    return request.version


def _port_value(port: str) -> Any:
    """A port as Caddy gives it: an int when numeric, else the text."""
    number = _go_atoi(port)
    return number if number is not None else port


provider("http.request.method")(lambda r: r.method)
provider("http.request.scheme")(lambda r: r.scheme)
provider("http.request.proto")(lambda r: r.version)
provider("http.request.proto_name")(_proto_name)
provider("http.request.host")(lambda r: r.host)
provider("http.request.hostport")(lambda r: r.hostport)
provider("http.request.port")(lambda r: _port_value(r.port))
provider("http.request.local")(lambda r: address_text(r.local_ip, r.local_port) if r.local_ip else "")
provider("http.request.local.host")(lambda r: r.local_ip)
provider("http.request.local.port")(lambda r: r.local_port if r.local_ip else "")
provider("http.request.remote")(
    lambda r: None if _handshake_pending(r) else address_text(r.remote_ip, r.remote_port) if r.remote_ip else "")
provider("http.request.remote.host")(lambda r: None if _handshake_pending(r) else r.remote_ip)
provider("http.request.remote.port")(lambda r: r.remote_port if r.remote_ip else "")


@prefix_provider("http.request.remote.host/")
def _remote_prefix(request: Request, bits: str) -> tuple[Any, bool]:
    """`{http.request.remote.host/24,64}`: the peer IP masked to a prefix (IPv4 bits, IPv6 bits)."""
    host = request.remote_ip
    try:
        addr = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host, True
    v4_bits, has_v6, v6_bits = bits.partition(",")
    count = _go_atoi(v6_bits if addr.version == 6 and has_v6 else v4_bits)
    if count is None or not 0 <= count <= addr.max_prefixlen:
        return "", True
    network = ipaddress.ip_network(f"{addr}/{count}", strict=False)
    return str(network), True


# --- the URI ---------------------------------------------------------------------------------------


def _uri(request: Request) -> str:
    return request.uri if request.raw_path else "/" + (f"?{request.query}" if request.query else "")


def _prefixed(query: str) -> str:
    return f"?{query}" if query else ""


provider("http.request.uri")(_uri)
provider("http.request.uri_escaped")(lambda r: query_escape(_uri(r)))
provider("http.request.uri.path")(lambda r: r.path)
provider("http.request.uri.path_escaped")(lambda r: query_escape(r.path))
provider("http.request.uri.path.dir")(lambda r: path_dir_file(r.path)[0])
provider("http.request.uri.path.file")(lambda r: path_dir_file(r.path)[1])
provider("http.request.uri.path.file.base")(lambda r: path_base(r.path).removesuffix(path_ext(r.path)))
provider("http.request.uri.path.file.ext")(lambda r: path_ext(r.path))
provider("http.request.uri.query")(lambda r: r.query)
provider("http.request.uri.query_escaped")(lambda r: query_escape(r.query))
provider("http.request.uri.prefixed_query")(lambda r: _prefixed(r.query))
prefix_provider("http.request.uri.path.")(lambda r, n: path_segment(r.path, n))


@prefix_provider("http.request.uri.query.")
def _query_key(request: Request, key: str) -> tuple[Any, bool]:
    return ",".join(query_values(request.query)[0].get(key, ())), True


# --- TLS ---------------------------------------------------------------------------------------------

_TLS_VERSIONS = {"TLSv1.3": "tls1.3", "TLSv1.2": "tls1.2", "TLSv1.1": "tls1.1", "TLSv1": "tls1.0"}


@prefix_provider("http.request.tls.")
def _tls(request: Request, key: str) -> tuple[Any, bool]:
    """`{http.request.tls.version}`, `.cipher_suite` (Go's names), `.resumed`, `.proto`,
    `.proto_mutual`, `.server_name`: the connection's TLS state; unset without TLS."""
    tls = request.tls
    if tls is None or not hasattr(tls, "cipher"):
        return None, False
    if key == "version":
        version = tls.version() or ""
        return _TLS_VERSIONS.get(version, version.lower()), True
    if key == "cipher_suite":
        from rws.net.tls import go_cipher_name

        cipher = tls.cipher()
        return go_cipher_name(cipher[0]) if cipher else "", True
    if key == "resumed":
        return bool(tls.session_reused), True
    if key == "proto":
        return tls.selected_alpn_protocol() or "", True
    if key == "proto_mutual":
        return True, True  # Go has always reported the negotiated protocol as mutual
    if key == "server_name":
        return getattr(tls, "rws_server_name", ""), True
    if key.startswith("client."):
        return _client_certificate(tls, key[len("client."):])
    return None, False


def _client_certificate(tls: Any, key: str) -> tuple[Any, bool]:
    """`{http.request.tls.client.*}`: the verified client certificate's fields."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = tls.getpeercert(binary_form=True)
    if not der:
        return None, False
    cert = x509.load_der_x509_certificate(der)
    public = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    simple: dict[str, Any] = {
        "fingerprint": lambda: hashlib.sha256(der).hexdigest(),
        "public_key": lambda: public.hex(),
        "public_key_sha256": lambda: hashlib.sha256(public).hexdigest(),
        "issuer": lambda: cert.issuer.rfc4514_string(),
        "subject": lambda: cert.subject.rfc4514_string(),
        "serial": lambda: str(cert.serial_number),
        "certificate_pem": lambda: cert.public_bytes(serialization.Encoding.PEM).decode(),
        "certificate_der_base64": lambda: base64.b64encode(der).decode(),
    }
    if key in simple:
        return simple[key](), True
    if key.startswith("san."):
        name, _, index = key[4:].partition(".")
        kinds: dict[str, Any] = {"dns_names": x509.DNSName, "emails": x509.RFC822Name, "ips": x509.IPAddress,
                                 "uris": x509.UniformResourceIdentifier}
        if name not in kinds:
            return None, False
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            values = [str(v) for v in san.get_values_for_type(kinds[name])]
        except x509.ExtensionNotFound:
            values = []
        if not index:
            return values, True
        number = _go_atoi(index)
        return (values[number], True) if number is not None and 0 <= number < len(values) else (None, False)
    return None, False


# --- the request before rewrites -----------------------------------------------------------------

provider("http.request.orig_method")(lambda r: r.orig_method)
provider("http.request.orig_uri")(lambda r: r.orig_target)
provider("http.request.orig_uri.path")(lambda r: decode_path(r.orig_raw_path))
provider("http.request.orig_uri.path.dir")(lambda r: path_dir_file(decode_path(r.orig_raw_path))[0])
provider("http.request.orig_uri.path.file")(lambda r: path_dir_file(decode_path(r.orig_raw_path))[1])
provider("http.request.orig_uri.query")(lambda r: r.orig_query)
provider("http.request.orig_uri.prefixed_query")(lambda r: _prefixed(r.orig_query))
prefix_provider("http.request.orig_uri.path.")(lambda r, n: path_segment(decode_path(r.orig_raw_path), n))


# --- headers, cookies, host labels -----------------------------------------------------------------

# Go's server moves these out of the header map, so Caddy's `{http.request.header.*}`
# never sees them (`{http.request.hostport}` has the Host header).
_HIDDEN_FIELDS = frozenset({"host", "transfer-encoding"})


@prefix_provider("http.request.header.")
def _header(request: Request, name: str) -> tuple[Any, bool]:
    if name.lower() in _HIDDEN_FIELDS:
        return "", True
    return request.headers.joined(name), True


@prefix_provider("http.response.header.")
def _response_header(request: Request, name: str) -> tuple[Any, bool]:
    return request.response_headers.joined(name), True


_COOKIE_NAME_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _cookie_value(raw: str) -> str | None:
    """Go's parseCookieValue (quotes allowed): the value, or None if it has bad bytes."""
    if len(raw) > 1 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if any(not (0x20 <= ord(c) < 0x7F) or c in '";\\' for c in raw):
        return None
    return raw


@prefix_provider("http.request.cookie.")
def _cookie(request: Request, name: str) -> tuple[Any, bool]:
    """The first cookie with this name (compared case-insensitively); unknown if none."""
    wanted = name.lower()
    for line in request.headers.get_all("Cookie"):
        for pair in line.split(";"):
            key, _, raw = pair.strip().partition("=")
            if not key or any(c not in _COOKIE_NAME_CHARS for c in key) or key.lower() != wanted:
                continue
            value = _cookie_value(raw)
            if value is not None:
                return value, True
    return None, False


@prefix_provider("http.request.host.labels.")
def _host_label(request: Request, index_text: str) -> tuple[Any, bool]:
    """The N-th label of the host from the right, lower-cased (`com` is 0 in `a.example.com`)."""
    index = _go_atoi(index_text)
    if index is None or index < 0:
        return "", False
    # as Go's SplitHostPort: without a port the Host is taken whole (`[::1]` keeps its brackets)
    labels = (request.host if request.port else request.authority).split(".")
    if index >= len(labels):
        return "", True
    return labels[len(labels) - index - 1].lower(), True


# --- per-request values ------------------------------------------------------------------------------


@provider("http.request.uuid")
def _uuid(request: Request) -> str:
    """A random UUID, made on first use and then the same for the whole request."""
    value = request.values.get("http.request.uuid")
    if not isinstance(value, str):
        value = str(uuid.uuid4())
        request.values["http.request.uuid"] = value
    return value


provider("http.request.duration")(lambda r: timedelta(seconds=max(0.0, time.time() - r.start_time)))
provider("http.request.duration_ms")(lambda r: max(0.0, time.time() - r.start_time) * 1e3)


@provider("http.request.body")
def _body(request: Request) -> bytes:
    """The body buffered by `placeholders.prepare` (found in request.values); "" before that."""
    data = request.values.get(BODY_KEY)
    return data if isinstance(data, bytes) else b""


provider("http.request.body_base64")(lambda r: base64.b64encode(_body(r)).decode("ascii"))


@prefix_provider("http.vars.")
def _vars(request: Request, name: str) -> tuple[Any, bool]:
    return request.vars.get(name), True


# --- global placeholders ---------------------------------------------------------------------------------


@prefix_provider("env.")
def _env(request: Request, name: str) -> tuple[Any, bool]:
    return os.environ.get(name, ""), True


_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
            "i686": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}

provider("system.hostname")(lambda r: socket.gethostname())
provider("system.slash")(lambda r: os.sep)
provider("system.os")(lambda r: platform.system().lower())
provider("system.arch")(lambda r: _GO_ARCH.get(platform.machine().lower(), platform.machine().lower()))
provider("system.wd")(lambda r: os.getcwd())
provider("time.now")(lambda r: datetime.now().astimezone())
provider("time.now.http")(lambda r: datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"))
provider("time.now.common_log")(lambda r: datetime.now().astimezone().strftime("%d/%b/%Y:%H:%M:%S %z"))
provider("time.now.year")(lambda r: str(datetime.now().year))
provider("time.now.unix")(lambda r: str(int(time.time())))
provider("time.now.unix_ms")(lambda r: str(time.time_ns() // 1_000_000))


@prefix_provider("file.")
def _file(request: Request, name: str) -> tuple[Any, bool]:
    """A file's contents (at most 1 MiB) without one trailing newline: for secrets in config."""
    try:
        with open(name, "rb") as f:
            data = f.read(FILE_PLACEHOLDER_MAX_BYTES)
    except (OSError, ValueError) as exc:
        log.error("placeholder: failed to read file", extra={"file": name, "working_dir": os.getcwd(),
                                                               "error": str(exc)})
        return None, True
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    return data.decode("utf-8", "replace"), True

