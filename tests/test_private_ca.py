"""Upstreams behind a private CA (a Kubernetes API server, an internal API): verified against that CA alone.

A real HTTPS echo upstream on loopback with a certificate from a CA made here; the CA travels with the
connection's credential (``ca_pem``), never in the code or the public trust store.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wardgate.connections import Connection, ConnectionStore
from wardgate.credentials import Credential
from wardgate.dev.stack import DevStack
from wardgate.dev.upstream import EchoUpstream

TOKEN = "cluster-token-123"


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[tuple[EchoUpstream, str]]:
    """An HTTPS echo upstream for 127.0.0.1 whose certificate chains to a fresh private CA."""
    ca_key, ca_cert = _ca("wardgate test cluster CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    upstream = EchoUpstream(f"Bearer {TOKEN}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    upstream.server.socket = context.wrap_socket(upstream.server.socket, server_side=True)
    upstream.start()
    try:
        yield upstream, _pem(ca_cert)
    finally:
        upstream.stop()


def _connect(stack: DevStack, upstream: EchoUpstream, name: str, secret: dict[str, str]) -> None:
    boto3.client("secretsmanager").create_secret(Name=f"wardgate/{name}", SecretString=json.dumps(secret))
    ConnectionStore(stack.function_env()["CONNECTIONS_TABLE"]).put(
        Connection(name, "http", upstream.url.replace("http://", "https://"), f"wardgate/{name}", ("ci",))
    )


def test_an_upstream_behind_a_private_ca_is_verified_against_that_ca(stack, client, auth, tls_upstream):
    upstream, ca_pem = tls_upstream
    _connect(stack, upstream, "internal", {"type": "bearer", "token": TOKEN, "ca_pem": ca_pem})

    response = client.get("/http/internal/v1/status", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["credential"] == "accepted"


def test_without_its_ca_the_upstream_is_refused_not_trusted(stack, client, auth, tls_upstream):
    upstream, _ = tls_upstream
    _connect(stack, upstream, "no-ca", {"type": "bearer", "token": TOKEN})
    _, other_ca = _ca("some other CA")
    _connect(stack, upstream, "wrong-ca", {"type": "bearer", "token": TOKEN, "ca_pem": _pem(other_ca)})

    for name in ("no-ca", "wrong-ca"):
        response = client.get(f"/http/{name}/v1/status", headers=auth)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_tls_error"
    assert upstream.requests == []  # no request reached it, so no credential was sent


def test_a_ca_bundle_that_is_not_pem_is_a_clear_error(stack, client, auth, tls_upstream):
    upstream, _ = tls_upstream
    with pytest.raises(ValueError, match="ca_pem must hold PEM certificates"):
        Credential.from_secret(json.dumps({"type": "bearer", "token": TOKEN, "ca_pem": "not a certificate"}))
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    _connect(stack, upstream, "broken-ca", {"type": "bearer", "token": TOKEN, "ca_pem": broken})
    response = client.get("/http/broken-ca/v1/status", headers=auth)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "credential_unavailable"
    assert "CA bundle is unusable" in response.json()["error"]["message"]
