"""TLS contexts for outgoing HTTPS, one per trust anchor and container.

Loading the CA bundle takes tens of milliseconds; each httpx client would otherwise load its own.
An upstream behind a private CA (a Kubernetes API server, an internal API) is verified against
that CA alone, given as PEM with the connection's credential (``credentials.Credential.ca_pem``).
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def tls_context() -> ssl.SSLContext:
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


@functools.cache
def private_ca_context(ca_pem: str) -> ssl.SSLContext:
    """Trust exactly ``ca_pem``: not the public CAs as well, so nothing else can stand in for it."""
    try:
        return ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"the CA bundle is not valid PEM ({type(exc).__name__})") from None
