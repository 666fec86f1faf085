"""The public CAs as OpenSSL's hashed directory (``wardgate.tls``): the same trust as the bundle, at
no load cost, and never used unless it is the bundle's.

Real handshakes on loopback against certificates of CAs made here: what the directory trusts is
what OpenSSL finds in it by subject hash at handshake time.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wardgate import tls

NOW = datetime.datetime.now(datetime.UTC)


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if issuer is None:  # a CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class Ca:
    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = _certificate(name, self.key, None)
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def server_pem(self, folder: Path) -> Path:
        """A certificate for 127.0.0.1 issued by this CA, with its key, as one PEM file."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate("upstream", key, (self.cert.subject, self.key))
        path = folder / f"server-{id(cert)}.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return path


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Ca], int]]:
    """``serve(ca)``: a TLS server on loopback presenting a certificate of ``ca``; its port."""
    servers: list[socket.socket] = []

    def start(ca: Ca) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca.server_pem(tmp_path))
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                try:
                    with context.wrap_socket(conn, server_side=True) as tls_conn:
                        tls_conn.sendall(b"hello")
                except (OSError, ssl.SSLError):
                    pass  # the client refused our certificate

        threading.Thread(target=accept, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for listener in servers:
        listener.close()


def handshake(context: ssl.SSLContext, port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        return conn.recv(5)


def bundle_of(folder: Path, *cas: Ca) -> Path:
    path = folder / f"bundle-{len(list(folder.glob('bundle-*')))}.pem"
    path.write_text(
        "# comments and blank lines between certificates are kept out\n\n".join(c.pem for c in cas)
    )
    return path


def test_the_directory_trusts_exactly_its_bundles_cas(tmp_path: Path, serve: Callable[[Ca], int]) -> None:
    trusted, other, unknown = Ca("wardgate test root A"), Ca("wardgate test root B"), Ca("not in the bundle")
    bundle = bundle_of(tmp_path, trusted, other)
    assert tls.write_ca_directory(bundle, tmp_path / "ca") == 2
    assert len(list((tmp_path / "ca").glob("*.[0-9]"))) == 2

    context = tls.public_ca_context(bundle, tmp_path / "ca")
    assert context.cert_store_stats()["x509_ca"] == 0  # nothing loaded up front: looked up when needed
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert handshake(context, serve(trusted)) == b"hello"
    assert handshake(context, serve(other)) == b"hello"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(context, serve(unknown))


def test_cas_whose_names_collide_are_both_found(tmp_path: Path, serve: Callable[[Ca], int]) -> None:
    first, second = Ca("wardgate same name"), Ca("wardgate same name")  # same subject hash, other keys
    bundle = bundle_of(tmp_path, first, second)
    tls.write_ca_directory(bundle, tmp_path / "ca")
    assert sorted(p.suffix for p in (tmp_path / "ca").glob("*.[0-9]")) == [".0", ".1"]
    context = tls.public_ca_context(bundle, tmp_path / "ca")
    assert handshake(context, serve(first)) == handshake(context, serve(second)) == b"hello"


def test_a_directory_of_another_bundle_or_half_written_is_not_used(
    tmp_path: Path, serve: Callable[[Ca], int]
) -> None:
    old, new = Ca("wardgate old root"), Ca("wardgate new root")
    tls.write_ca_directory(bundle_of(tmp_path, old), tmp_path / "ca")
    current = bundle_of(tmp_path, new)  # the bundle changed since the directory was written
    context = tls.public_ca_context(current, tmp_path / "ca")
    assert context.cert_store_stats()["x509_ca"] == 1  # the bundle, loaded
    assert handshake(context, serve(new)) == b"hello"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(context, serve(old))

    (tmp_path / "ca" / tls.BUNDLE_DIGEST).unlink()  # as if the writer stopped before its last step
    tls.write_ca_directory(current, tmp_path / "ca2")
    (tmp_path / "ca2" / tls.BUNDLE_DIGEST).unlink()
    assert tls.public_ca_context(current, tmp_path / "ca2").cert_store_stats()["x509_ca"] == 1
    assert tls.public_ca_context(current, tmp_path / "missing").cert_store_stats()["x509_ca"] == 1


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")  # old CAs' serials
def test_certifis_bundle_as_a_directory(tmp_path: Path) -> None:
    """What the layer's Makefile writes (``python -m wardgate.tls``): every certificate of certifi's
    bundle, and the context for public upstreams and issuers reads it instead of the bundle."""
    bundle = Path(certifi.where())
    assert tls.main([str(tmp_path / "ca")]) == 0
    files = list((tmp_path / "ca").glob("*.[0-9]"))
    assert len(files) == bundle.read_text().count("-----BEGIN CERTIFICATE-----") > 100
    loaded = {x509.load_pem_x509_certificate(f.read_bytes()).fingerprint(hashes.SHA256()) for f in files}
    assert loaded == {
        c.fingerprint(hashes.SHA256()) for c in x509.load_pem_x509_certificates(bundle.read_bytes())
    }
    assert tls.public_ca_context(bundle, tmp_path / "ca").cert_store_stats()["x509_ca"] == 0
