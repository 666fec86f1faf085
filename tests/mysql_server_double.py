"""A scripted MySQL 8 server on loopback, for the logins the local MariaDB cannot do.

MariaDB has no server side of ``caching_sha2_password`` (MySQL 8's default), and none that asks
for ``mysql_clear_password`` without PAM. This double speaks the connection phase as MySQL 8.0
does (sql/auth/sha2_password.cc, as documented in the protocol's connection-phase pages): the
greeting, TLS on an SSLRequest, the HandshakeResponse41, an AuthSwitchRequest when the user's plugin
is not the one the client answered with, caching_sha2's fast path (a scramble checked against the
cached SHA256(SHA256(password))) and its full authentication (the password in clear inside TLS, or
RSA-OAEP-encrypted to the key the client asks for with 0x02), ``mysql_clear_password``, and
``1045 28000`` for a wrong password. After the login it answers COM_QUERY and COM_PING with OK and
ends on COM_QUIT.

It is written from the protocol with ``struct`` and ``hashlib``, sharing no code with wardgate's
codec or scrambles, and PyMySQL logs in to it (tests/test_mysql_backend_login.py): a double that
a real client and wardgate's backend both get through, and fail on, in the same cases.

It can also misbehave at the door: say nothing, send garbage, refuse with an ERR first (too many
connections), or slip plaintext bytes after its greeting (an injection before TLS).
"""

from __future__ import annotations

import hashlib
import os
import socket
import socketserver
import ssl
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Capability bits the double cares about (include/mysql_com.h).
LONG_PASSWORD = 1 << 0
CONNECT_WITH_DB = 1 << 3
PROTOCOL_41 = 1 << 9
SSL_FLAG = 1 << 11
SECURE_CONNECTION = 1 << 15
PLUGIN_AUTH = 1 << 19
CONNECT_ATTRS = 1 << 20
LENENC_CLIENT_DATA = 1 << 21
MYSQL8_CAPABILITIES = 0xDFFFFFFF  # what MySQL 8.0 advertises (all but SSL_VERIFY_SERVER_CERT)
CACHING_SHA2 = "caching_sha2_password"
NATIVE = "mysql_native_password"
CLEAR = "mysql_clear_password"


@dataclass
class Login:
    """What one connection did: the client's response fields and how the login ended."""

    user: str = ""
    database: str | None = None
    capabilities: int = 0
    charset: int = 0
    client_plugin: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    outcome: str = ""  # fast, full-tls, full-rsa, clear, native, denied, error: ...
    clear_password: bytes = b""  # what came with mysql_clear_password (an RDS IAM token, say)
    ended: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


@dataclass
class DoubleConfig:
    password: str
    user_plugin: str = CACHING_SHA2  # what the account is IDENTIFIED WITH (or any other name)
    greeting_plugin: str = CACHING_SHA2  # the server's default_authentication_plugin
    cached: bool = True  # the fast path's cache already knows the password
    tls: tuple[str, str] | None = None  # certificate and key files: offers TLS
    opening: str = "greet"  # greet, silent, garbage, too-many, inject
    version: str = "8.0.40"


class MySql8Double:
    def __init__(self, config: DoubleConfig, rsa_key: rsa.RSAPrivateKey) -> None:
        self.config = config
        self.rsa_key = rsa_key
        self.public_key_pem = rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.cache: set[bytes] = set()  # SHA256(SHA256(password)) of the passwords it has seen work
        if config.cached:
            self.cache.add(_sha256(_sha256(config.password.encode())))
        self._logins: list[Login] = []
        self._tls_context: ssl.SSLContext | None = None
        if config.tls is not None:
            self._tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls_context.load_cert_chain(*config.tls)
        double = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                login = Login()
                double._logins.append(login)
                connection = _Connection(double, self.request, login)
                try:
                    connection.serve()
                except (OSError, ConnectionError, ValueError, struct.error) as exc:
                    if not login.outcome:
                        login.outcome = f"error: {type(exc).__name__}: {exc}"
                finally:
                    connection.sock.close()  # the TLS socket, when it became one
                    login.ended.set()

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> MySql8Double:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def logins(self) -> list[Login]:
        """The logins so far, once each has ended: a client that gives up (a key that does not match
        its pin, say) closes before the double's thread has written down how the login ended."""
        for login in list(self._logins):
            login.ended.wait(5)
        return list(self._logins)

    @property
    def public_key_sha256(self) -> str:
        der = self.rsa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


class _Connection:
    def __init__(self, double: MySql8Double, sock: socket.socket, login: Login) -> None:
        self.double = double
        self.config = double.config
        self.sock: Any = sock
        self.login = login
        self.seq = 0
        self.nonce = b""

    # ---- framing ----
    def send(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack("<I", len(payload))[:3] + bytes((self.seq,)) + payload)
        self.seq = (self.seq + 1) & 0xFF

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the client closed the connection")
            data += chunk
        return data

    def receive(self) -> bytes:
        header = self._exactly(4)
        length = int.from_bytes(header[:3], "little")
        if header[3] != self.seq:
            raise ValueError(f"packet sequence id {header[3]}, expected {self.seq}")
        self.seq = (self.seq + 1) & 0xFF
        return self._exactly(length)

    def new_nonce(self) -> bytes:
        # Printable and NUL-free, as MySQL's generate_user_salt makes them.
        return bytes(0x21 + b % 94 for b in os.urandom(20))

    # ---- the connection phase ----
    def serve(self) -> None:
        opening = self.config.opening
        if opening == "silent":
            self.sock.recv(1)  # until the client gives up
            return
        if opening == "garbage":
            self.sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            return
        if opening == "too-many":
            self.send(b"\xff" + struct.pack("<H", 1040) + b"Too many connections")
            return
        self.nonce = self.new_nonce()
        greeting = self.greeting()
        if opening == "inject":  # a fake OK right behind the greeting, in plaintext, in the same segment,
            # with the sequence id that answers SSLRequest (1) and HandshakeResponse (2)
            fake_ok = b"\x07\x00\x00\x03\x00\x00\x00\x02\x00\x00\x00"
            self.sock.sendall(struct.pack("<I", len(greeting))[:3] + b"\x00" + greeting + fake_ok)
            self.seq = 1
        else:
            self.send(greeting)
        payload = self.receive()
        caps = struct.unpack_from("<I", payload)[0]
        if len(payload) == 32 and caps & SSL_FLAG:
            if self.double._tls_context is None:
                raise ValueError("an SSLRequest to a server without TLS")
            self.sock = self.double._tls_context.wrap_socket(self.sock, server_side=True)
            self.login.tls = True
            payload = self.receive()
        client_plugin, answer = self.parse_response(payload)
        self.authenticate(client_plugin, answer)
        if self.login.outcome == "denied":
            return
        self.seq = 0  # each command starts a new exchange
        while True:
            command = self.receive()
            self.seq = 1  # the answer to a command follows it
            if command[:1] == b"\x01":
                return
            if command[:1] in (b"\x03", b"\x0e"):
                self.send(b"\x00\x00\x00\x02\x00\x00\x00")
            else:
                self.send(b"\xff" + struct.pack("<H", 1047) + b"#08S01Unknown command")
            self.seq = 0

    def greeting(self) -> bytes:
        caps = MYSQL8_CAPABILITIES if self.config.tls else MYSQL8_CAPABILITIES & ~SSL_FLAG
        plugin = self.config.greeting_plugin.encode()
        return b"".join(
            [
                b"\x0a",
                self.config.version.encode() + b"\x00",
                struct.pack("<I", 4242),
                self.nonce[:8],
                b"\x00",
                struct.pack("<H", caps & 0xFFFF),
                bytes((255,)),  # utf8mb4_0900_ai_ci
                struct.pack("<H", 2),  # SERVER_STATUS_AUTOCOMMIT
                struct.pack("<H", caps >> 16),
                bytes((21,)),
                b"\x00" * 10,
                self.nonce[8:] + b"\x00",
                plugin + b"\x00",
            ]
        )

    def parse_response(self, payload: bytes) -> tuple[str, bytes]:
        caps, _max_packet, charset = struct.unpack_from("<IIB", payload)
        login = self.login
        login.capabilities, login.charset = caps, charset
        end = payload.index(b"\x00", 32)
        login.user = payload[32:end].decode()
        pos = end + 1
        if caps & LENENC_CLIENT_DATA:
            length, pos = _lenenc(payload, pos)
        else:
            length, pos = payload[pos], pos + 1
        answer = payload[pos : pos + length]
        pos += length
        if caps & CONNECT_WITH_DB and pos < len(payload):
            end = payload.index(b"\x00", pos)
            login.database = payload[pos:end].decode()
            pos = end + 1
        if caps & PLUGIN_AUTH and pos < len(payload):
            end = payload.index(b"\x00", pos)
            login.client_plugin = payload[pos:end].decode()
            pos = end + 1
        if caps & CONNECT_ATTRS and pos < len(payload):
            size, pos = _lenenc(payload, pos)
            block, pos = payload[pos : pos + size], pos + size
            at = 0
            while at < len(block):
                key_length, at = _lenenc(block, at)
                key, at = block[at : at + key_length].decode(), at + key_length
                value_length, at = _lenenc(block, at)
                login.attributes[key], at = block[at : at + value_length].decode(), at + value_length
        if pos != len(payload):
            raise ValueError(f"{len(payload) - pos} bytes left in the handshake response")
        return login.client_plugin, answer

    def authenticate(self, client_plugin: str, answer: bytes) -> None:
        wanted = self.config.user_plugin
        if client_plugin != wanted:
            self.nonce = self.new_nonce()
            data = b"" if wanted == CLEAR else self.nonce + b"\x00"
            self.send(b"\xfe" + wanted.encode() + b"\x00" + data)
            answer = self.receive()
        if wanted == CLEAR:
            self.login.clear_password = answer
            self.finish(answer == self.config.password.encode() + b"\x00", "clear")
        elif wanted == CACHING_SHA2:
            self.caching_sha2(answer)
        elif wanted == NATIVE:
            stage2 = hashlib.sha1(hashlib.sha1(self.config.password.encode()).digest()).digest()
            stage1 = _xor(answer, hashlib.sha1(self.nonce + stage2).digest()) if len(answer) == 20 else b""
            self.finish(hashlib.sha1(stage1).digest() == stage2, "native")
        else:
            self.finish(False, "unknown plugin")

    def caching_sha2(self, scramble: bytes) -> None:
        if len(scramble) == 32:
            for stored in self.double.cache:
                stage1 = _xor(scramble, _sha256(stored + self.nonce))
                if _sha256(stage1) == stored:
                    self.send(b"\x01\x03")  # fast_auth_success
                    self.finish(True, "fast")
                    return
        self.send(b"\x01\x04")  # perform_full_authentication
        reply = self.receive()
        if self.login.tls:
            self.finish(reply == self.config.password.encode() + b"\x00", "full-tls")
            return
        encrypted = reply
        if reply == b"\x02":  # request_public_key; a client that has the key encrypts at once
            self.send(b"\x01" + self.double.public_key_pem)
            encrypted = self.receive()
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        plain = self.double.rsa_key.decrypt(encrypted, oaep)
        stream = (self.nonce * (len(plain) // 20 + 1))[: len(plain)]
        self.finish(_xor(plain, stream) == self.config.password.encode() + b"\x00", "full-rsa")

    def finish(self, accepted: bool, how: str) -> None:
        if accepted:
            self.double.cache.add(_sha256(_sha256(self.config.password.encode())))
            self.login.outcome = how
            self.send(b"\x00\x00\x00\x02\x00\x00\x00")
            return
        self.login.outcome = "denied"
        message = f"Access denied for user '{self.login.user}'@'127.0.0.1' (using password: YES)"
        self.send(b"\xff" + struct.pack("<H", 1045) + b"#28000" + message.encode())


def _lenenc(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size
