"""The Rwsfile forms of the small TLS modules, as other directives reach them through the
registry: `spec.rwsfile(d)` with the cursor on the module's name."""

from __future__ import annotations

from typing import Any

import pytest

from rws import registry
from rws.config.decode import decode
from rws.errors import RwsfileError
from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.parse import parse_text


def parse_form(module_id: str, line: str) -> Any:
    """Parse `line` (its first token names the module) with the module's Rwsfile form,
    and check the result decodes with the module's config class."""
    spec = registry.find(module_id)
    assert spec is not None and spec.rwsfile is not None
    (entry,) = parse_text(line, "Rwsfile")
    value = spec.rwsfile(Dispenser(entry))
    inline_keys = {"tls.issuance": "module", "tls.ca_pool.source": "provider", "tls.permission": "module",
                   "tls.get_certificate": "via"}
    namespace = module_id.rsplit(".", 1)[0]
    body = {k: v for k, v in value.items() if k != inline_keys[namespace]} if namespace in inline_keys else value
    decode(spec.config, body, module_id)
    return value


@pytest.mark.parametrize(("module_id", "line", "expected"), [
    ("tls.ca_pool.source.file", "file a.pem {\n\tpem_file b.pem c.pem\n}\n",
     {"provider": "file", "pem_files": ["a.pem", "b.pem", "c.pem"]}),
    ("tls.ca_pool.source.inline", "inline {\n\ttrust_der AAAA\n\ttrust_der BBBB\n}\n",
     {"provider": "inline", "trusted_ca_certs": ["AAAA", "BBBB"]}),
    ("tls.handshake_match.sni", "sni a.example b.example\n", ["a.example", "b.example"]),
    ("tls.handshake_match.remote_ip", "remote_ip 10.0.0.0/8 !10.1.0.0/16\n",
     {"ranges": ["10.0.0.0/8"], "not_ranges": ["10.1.0.0/16"]}),
    ("tls.handshake_match.local_ip", "local_ip private_ranges\n",
     {"ranges": ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "127.0.0.1/8", "fd00::/8", "::1"]}),
    ("tls.permission.http", "http https://ask.example/check\n", {"module": "http", "endpoint": "https://ask.example/check"}),
    ("tls.get_certificate.http", "http https://certs.example/\n", {"via": "http", "url": "https://certs.example/"}),
    ("tls.issuance.internal", "internal {\n\tlifetime 1d\n\tsign_with_root\n}\n",
     {"module": "internal", "lifetime": 86400 * 10**9, "sign_with_root": True}),
    ("tls.issuance.zerossl", "zerossl KEY {\n\tvalidity_days 90\n}\n",
     {"module": "zerossl", "api_key": "KEY", "validity_days": 90}),
    ("tls.issuance.acme", "acme https://ca.example/dir {\n\ttest_dir https://staging.example/dir\n\temail a@b.c\n}\n",
     {"module": "acme", "ca": "https://ca.example/dir", "test_ca": "https://staging.example/dir", "email": "a@b.c"}),
])
def test_module_forms(module_id: str, line: str, expected: Any) -> None:
    assert parse_form(module_id, line) == expected


@pytest.mark.parametrize(("module_id", "line", "message"), [
    ("tls.ca_pool.source.file", "file\n", "no certificates specified"),
    ("tls.ca_pool.source.file", "file {\n\tpem a.pem\n}\n", "unrecognized subdirective 'pem'"),
    ("tls.ca_pool.source.inline", "inline AAAA\n", "wrong argument count"),
    ("tls.handshake_match.sni", "sni\n", "wrong argument count"),
    ("tls.handshake_match.sni", "sni a.example {\n\tx\n}\n", "blocks are not supported"),
    ("tls.permission.http", "http\n", "wrong argument count"),
    ("tls.issuance.zerossl", "zerossl KEY {\n\tvalidity_days 90\n\tvalidity_days 30\n}\n", "validity days is already specified: 90"),
])
def test_bad_module_forms(module_id: str, line: str, message: str) -> None:
    with pytest.raises(RwsfileError, match=message):
        parse_form(module_id, line)
