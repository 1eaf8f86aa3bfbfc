"""The Pebble harness itself, driven with the `acme` library: issue over HTTP-01 on loopback,
short certificate lifetimes, and validations made to fail by pointing DNS elsewhere."""

from __future__ import annotations

import datetime
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from tests.tls.pebble import Pebble, free_port

pytestmark = pytest.mark.timeout(60)

NAME = "a.example.com"


class ChallengeServer:
    """HTTP-01 responses on 127.0.0.1:port: path -> key authorization."""

    def __init__(self, port: int) -> None:
        self.responses: dict[str, str] = {}
        responses = self.responses

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = responses.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def challenge_server() -> Iterator[ChallengeServer]:
    server = ChallengeServer(free_port())
    yield server
    server.close()


def acme_client(pebble: Pebble) -> tuple[client.ClientV2, JWKEC]:
    key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    # verify_ssl goes to requests' `verify`, which also takes a CA bundle path
    net = client.ClientNetwork(key, alg=ES256, verify_ssl=str(pebble.ca_file),  # type: ignore[arg-type]
                               user_agent="rws-tests")
    acme = client.ClientV2(client.ClientV2.get_directory(pebble.directory, net), net)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    return acme, key


def issue(pebble: Pebble, server: ChallengeServer, name: str = NAME) -> list[x509.Certificate]:
    """Order `name`, answer HTTP-01 through `server`, finalize; the certificate chain, leaf first."""
    acme, key = acme_client(pebble)
    cert_key = ec.generate_private_key(ec.SECP256R1())
    csr = crypto_util.make_csr(cert_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()), [name])
    order = acme.new_order(csr)
    for authz in order.authorizations:
        for challb in authz.body.challenges:
            if isinstance(challb.chall, challenges.HTTP01):
                response, validation = challb.response_and_validation(key)
                server.responses[challb.chall.path] = validation
                acme.answer_challenge(challb, response)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=20)
    order = acme.poll_and_finalize(order, deadline)
    return x509.load_pem_x509_certificates(order.fullchain_pem.encode())


def test_issues_certificate_verifying_against_root(tmp_path: Path, challenge_server: ChallengeServer) -> None:
    with Pebble(tmp_path, http_port=challenge_server.server.server_address[1], tls_port=free_port()) as pebble:
        assert pebble.orders() == 0
        leaf, *intermediates = issue(pebble, challenge_server)
        assert pebble.orders() == 1, pebble.output
        roots = x509.load_pem_x509_certificates(pebble.root_file().read_bytes())
        verifier = (verification.PolicyBuilder().store(verification.Store(roots))
                    .build_server_verifier(x509.DNSName(NAME)))
        chain = verifier.verify(leaf, intermediates)
        assert chain[-1] == roots[0]
        assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName) == [NAME]


def test_validity_sets_certificate_lifetime(tmp_path: Path, challenge_server: ChallengeServer) -> None:
    with Pebble(tmp_path, http_port=challenge_server.server.server_address[1], tls_port=free_port(),
                validity=20) as pebble:
        leaf = issue(pebble, challenge_server)[0]
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert datetime.timedelta(seconds=19) <= lifetime <= datetime.timedelta(seconds=20), lifetime


def test_default_ipv4_makes_validation_fail_then_succeed(tmp_path: Path, challenge_server: ChallengeServer) -> None:
    with Pebble(tmp_path, http_port=challenge_server.server.server_address[1], tls_port=free_port()) as pebble:
        pebble.set_default_ipv4("127.0.0.2")  # nothing listens there
        with pytest.raises(errors.ValidationError) as failed:
            issue(pebble, challenge_server)
        assert [authz.body.status for authz in failed.value.failed_authzrs] == [messages.STATUS_INVALID]
        pebble.set_default_ipv4("127.0.0.1")
        assert issue(pebble, challenge_server)[0]
        assert pebble.orders() == 2, pebble.output
