"""One TLS context for every outgoing HTTPS client of a container.

Loading the CA bundle takes tens of milliseconds; each httpx client would otherwise load its own.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def tls_context() -> ssl.SSLContext:
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
