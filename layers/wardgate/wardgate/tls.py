"""TLS contexts for outgoing HTTPS, one per trust anchor and container.

The public CAs are certifi's bundle. Loading it parses its ~120 certificates: tens of milliseconds
of a cold start (the JWKS fetch and the upstream pool both need the context). The same bundle as
OpenSSL's hashed directory (``CA_DIRECTORY``: one ``<subject hash>.<n>`` file per certificate,
written into the layer by its Makefile with ``python -m wardgate.tls``) costs nothing to load:
OpenSSL reads the one or two CAs a handshake looks up. The directory is used only if the bundle
beside it is the one it was written from (its SHA-256, written last); otherwise the bundle is
loaded, as before. Both are build output of the same layer, equally trusted.

An upstream behind a private CA (a Kubernetes API server, an internal API) is verified against
that CA alone, given as PEM with the connection's credential (``credentials.Credential.ca_pem``).
"""

from __future__ import annotations

import functools
import hashlib
import ssl
import sys
from pathlib import Path

CA_DIRECTORY = Path(__file__).with_name("ca-directory")
BUNDLE_DIGEST = "bundle.sha256"  # in CA_DIRECTORY: the SHA-256 of the bundle it holds, written last


@functools.cache
def tls_context() -> ssl.SSLContext:
    import certifi

    return public_ca_context(Path(certifi.where()), CA_DIRECTORY)


def public_ca_context(bundle: Path, directory: Path) -> ssl.SSLContext:
    """Trust the CAs of ``bundle``: from ``directory`` when it holds exactly them, else the bundle."""
    try:
        written_from = (directory / BUNDLE_DIGEST).read_text().strip()
    except OSError:
        written_from = ""
    if written_from and written_from == hashlib.sha256(bundle.read_bytes()).hexdigest():
        return ssl.create_default_context(capath=str(directory))
    return ssl.create_default_context(cafile=str(bundle))


@functools.cache
def private_ca_context(ca_pem: str) -> ssl.SSLContext:
    """Trust exactly ``ca_pem``: not the public CAs as well, so nothing else can stand in for it."""
    try:
        return ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"the CA bundle is not valid PEM ({type(exc).__name__})") from None


def write_ca_directory(bundle: Path, directory: Path, openssl: str = "openssl") -> int:
    """Write ``bundle``'s certificates as OpenSSL's hashed directory (``openssl x509 -subject_hash``
    names each one, ``.0``, ``.1``... apart when names collide; plain files, since layer zips may
    not keep symbolic links), the bundle's digest last. Returns how many certificates it holds."""
    import re  # build time only: kept out of the functions' imports
    import shutil
    import subprocess

    data = bundle.read_bytes()
    pem_certificate = r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----"
    certificates = re.findall(pem_certificate, data.decode("ascii"), re.S)
    if not certificates:
        raise ValueError(f"{bundle} holds no PEM certificate")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for pem in certificates:
        subject_hash = subprocess.run(
            [openssl, "x509", "-noout", "-subject_hash"],
            input=pem,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        if not re.fullmatch(r"[0-9a-f]{8}", subject_hash):
            raise ValueError(f"openssl gave {subject_hash!r} as a subject hash")
        n = 0
        while (directory / f"{subject_hash}.{n}").exists():
            n += 1
        (directory / f"{subject_hash}.{n}").write_text(pem + "\n")
    (directory / BUNDLE_DIGEST).write_text(hashlib.sha256(data).hexdigest() + "\n")
    return len(certificates)


def main(argv: list[str]) -> int:
    """``python -m wardgate.tls [DIRECTORY]``: certifi's bundle as ``CA_DIRECTORY`` (or DIRECTORY)."""
    import certifi

    directory = Path(argv[0]) if argv else CA_DIRECTORY
    count = write_ca_directory(Path(certifi.where()), directory)
    print(f"{directory}: {count} certificates of {certifi.where()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
