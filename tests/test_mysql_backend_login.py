"""The TCP gateway logs in to MySQL and MariaDB as the connection says, never as the agent.

Against the local MariaDB (users, TLS and its test CA set up by scripts/mysql-test-auth, run by
`make test`): mysql_native_password, MariaDB's ed25519, TLS verified against the connection's CA
(and refused with another CA or for another name), a REQUIRE SSL user, wrong passwords, a server
that is down, KILL QUERY. MariaDB has no server side of caching_sha2_password (MySQL 8's default
plugin) nor one that asks for mysql_clear_password without PAM: those logins run against
tests/mysql_server_double.py, a scripted MySQL 8 server that PyMySQL logs in to as well. The
double is checked by the cases where PyMySQL and wardgate's backend behave alike, and the cases
where wardgate is stricter by design are checked as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.mysql_server_double import CLEAR, NATIVE, DoubleConfig, MySql8Double
from wardgate import aws
from wardgate.credentials import Credential
from wardgate.dev.certs import DevCertificates, make_dev_certificates
from wardgate.tcp.mysql import codec
from wardgate.tcp.mysql.backend import (
    RELAYED_CAPABILITIES,
    BackendUnavailable,
    MySqlBackendLink,
    MySqlTarget,
    close_backend,
    kill_query,
    negotiate_capabilities,
    open_backend,
)

PASSWORD = "wardgate-login-pw"
MARIADB = "127.0.0.1:3306"
TEST_CA = Path("/etc/mysql/wardgate-test-tls/ca.pem")
ED25519_PLUGIN = Path("/usr/lib/mysql/plugin/auth_ed25519.so")
# What Debian's mariadb client asks for (less CLIENT_SSL, which the gateway decides itself).
CLIENT_CAPABILITIES = (
    codec.CLIENT_LONG_PASSWORD
    | codec.CLIENT_LONG_FLAG
    | codec.CLIENT_PROTOCOL_41
    | codec.CLIENT_TRANSACTIONS
    | codec.CLIENT_SECURE_CONNECTION
    | codec.CLIENT_MULTI_STATEMENTS
    | codec.CLIENT_MULTI_RESULTS
    | codec.CLIENT_PS_MULTI_RESULTS
    | codec.CLIENT_PLUGIN_AUTH
    | codec.CLIENT_SESSION_TRACK
    | codec.CLIENT_DEPRECATE_EOF
)


def _credential(password: str = PASSWORD, ca_pem: str | None = None) -> Credential:
    return Credential("authorization", "unused", password, ca_pem)


def _login(
    url: str, credential: Credential | None = None, *, timeout: float = 5.0, caps: int = CLIENT_CAPABILITIES
) -> MySqlBackendLink:
    """Log in, then log out again: the link comes back closed, for what the login negotiated."""

    async def go() -> MySqlBackendLink:
        link = await open_backend(
            MySqlTarget.from_url(url),
            credential or _credential(),
            client_capabilities=caps,
            connect_attrs=(("program_name", "wardgate-tests"),),
            timeout=timeout,
            connection="conn-1",
        )
        await _close(link)
        return link

    return asyncio.run(go())


async def _close(link: MySqlBackendLink) -> None:
    close_backend(link)
    with contextlib.suppress(OSError):
        await link.writer.wait_closed()


def _refusal(url: str, credential: Credential | None = None, *, timeout: float = 5.0) -> BackendUnavailable:
    with pytest.raises(BackendUnavailable) as refused:
        _login(url, credential, timeout=timeout)
    return refused.value


class QueryFailed(Exception):
    def __init__(self, err: codec.Err) -> None:
        super().__init__(err.message)
        self.err = err


async def _query(link: MySqlBackendLink, sql: str) -> list[list[bytes | None]]:
    """One COM_QUERY's text rows (a test's own small client on the logged-in link)."""
    caps = link.capabilities
    link.writer.write(codec.frame(bytes((codec.COM_QUERY,)) + sql.encode(), 0))
    await link.writer.drain()
    packets = codec.PacketReader(expected_sequence=1)

    async def payload() -> bytes:
        while (item := packets.next()) is None:
            data = await link.reader.read(65536)
            assert data, "the server closed the connection"
            packets.feed(data)
        return item[1]

    first = await payload()
    if first[0] == codec.ERR_HEADER:
        raise QueryFailed(codec.parse_err(first, caps))
    count, _ = codec.read_lenenc_int(first, 0)
    for _ in range(count):
        await payload()  # column definitions
    if not caps & codec.CLIENT_DEPRECATE_EOF:
        await payload()
    rows: list[list[bytes | None]] = []
    while not codec.is_eof_packet(row_payload := await payload(), caps):
        if row_payload[0] == codec.ERR_HEADER:  # ended early (KILL QUERY)
            raise QueryFailed(codec.parse_err(row_payload, caps))
        row: list[bytes | None] = []
        pos = 0
        for _ in range(count):
            if row_payload[pos] == codec.NULL_CELL:
                row.append(None)
                pos += 1
            else:
                value, pos = codec.read_lenenc_bytes(row_payload, pos)
                row.append(value)
        rows.append(row)
    return rows


WHOAMI = (
    "SELECT CURRENT_USER(), DATABASE(), (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
    "WHERE VARIABLE_NAME = 'SSL_CIPHER')"
)


def _whoami(url: str, credential: Credential | None = None) -> tuple[str, str, bool, MySqlBackendLink]:
    async def go() -> tuple[str, str, bool, MySqlBackendLink]:
        link = await open_backend(
            MySqlTarget.from_url(url),
            credential or _credential(),
            client_capabilities=CLIENT_CAPABILITIES,
            timeout=5.0,
        )
        try:
            [[user, database, cipher]] = await _query(link, WHOAMI)
        finally:
            await _close(link)
        assert user is not None and database is not None
        return user.decode(), database.decode(), bool(cipher), link

    return asyncio.run(go())


# ---- the local MariaDB ----------------------------------------------------------------------------


def test_native_password_login_as_the_connections_user_and_database() -> None:
    user, database, tls, link = _whoami(f"mysql://wardgate_native@{MARIADB}/wardgate_test")
    assert (user, database, tls) == ("wardgate_native@%", "wardgate_test", False)
    assert link.plugin == "mysql_native_password" and not link.tls
    assert "MariaDB" in link.greeting.server_version and link.connection_id > 0
    assert link.status & codec.SERVER_STATUS_AUTOCOMMIT
    # What the client asked for is relayed; compression, MariaDB's extensions and SSL are not.
    assert (
        link.capabilities & codec.CLIENT_DEPRECATE_EOF and link.capabilities & codec.CLIENT_MULTI_STATEMENTS
    )
    assert not link.capabilities & (codec.CLIENT_COMPRESS | codec.CLIENT_SSL | ~0xFFFFFFFF)


@pytest.mark.skipif(
    not ED25519_PLUGIN.exists(), reason="this MariaDB package has no auth_ed25519 (scripts/mysql-test-auth)"
)
def test_mariadb_ed25519_login() -> None:
    user, _, _, link = _whoami(f"mariadb://wardgate_ed25519@{MARIADB}/wardgate_test")
    assert user == "wardgate_ed25519@%" and link.plugin == "client_ed25519"  # by an AuthSwitchRequest
    refused = _refusal(f"mariadb://wardgate_ed25519@{MARIADB}/wardgate_test", _credential("not-it"))
    assert refused.code == 1045 and refused.sqlstate == "28000"


def test_tls_verified_against_the_connections_ca() -> None:
    ca = TEST_CA.read_text()
    url = f"mysql://wardgate_tls@{MARIADB}/wardgate_test?ssl-mode=verify-identity"
    user, _, tls, link = _whoami(url, _credential(ca_pem=ca))
    assert (user, tls, link.tls) == ("wardgate_tls@%", True, True)
    assert link.capabilities & codec.CLIENT_SSL
    # Encrypted but not verified, only where the connection says so.
    _, _, tls, _ = _whoami(f"mysql://wardgate_tls@{MARIADB}/wardgate_test?ssl-mode=required")
    assert tls


def test_another_ca_is_refused_with_a_clear_error(dev_certificates: DevCertificates) -> None:
    other_ca = dev_certificates.ca_file.read_text()  # not the database's CA
    for mode in ("verify-ca", "verify-identity"):
        url = f"mysql://wardgate_tls@{MARIADB}/wardgate_test?ssl-mode={mode}"
        refused = _refusal(url, _credential(ca_pem=other_ca))
        # MariaDB sends its CA along: a chain that ends in a CA the connection does not trust.
        assert refused.message == (
            f"TLS with the database at {MARIADB} failed: CERTIFICATE_VERIFY_FAILED "
            "(self-signed certificate in certificate chain)"
        )
        assert (refused.code, refused.sqlstate) == (2026, "HY000")


@pytest.fixture
def relay_on_another_address() -> Iterator[int]:
    """127.0.0.2:port forwarding to MariaDB: the same server under a name its certificate lacks."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", 3306)
        await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(relay, "127.0.0.2", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield int(server.sockets[0].getsockname()[1])
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def test_verify_identity_refuses_a_certificate_for_another_name(relay_on_another_address: int) -> None:
    ca = TEST_CA.read_text()
    base = f"mysql://wardgate_tls@127.0.0.2:{relay_on_another_address}/wardgate_test"
    refused = _refusal(f"{base}?ssl-mode=verify-identity", _credential(ca_pem=ca))
    assert refused.code == 2026 and refused.message.endswith(
        "failed: CERTIFICATE_VERIFY_FAILED (IP address mismatch, certificate is not valid for '127.0.0.2'.)"
    )
    # verify-ca checks the chain alone: the same server through the same address is accepted.
    user, _, tls, _ = _whoami(f"{base}?ssl-mode=verify-ca", _credential(ca_pem=ca))
    assert (user, tls) == ("wardgate_tls@%", True)


def test_a_require_ssl_user_without_tls_is_refused() -> None:
    refused = _refusal(f"mysql://wardgate_tls@{MARIADB}/wardgate_test")
    assert refused.message.startswith(
        "the database refused the gateway's credential for connection 'conn-1': "
    )
    assert "Access denied for user 'wardgate_tls'" in refused.message
    assert (refused.code, refused.sqlstate) == (1045, "28000")


def test_a_wrong_password_is_a_clear_error_without_the_password() -> None:
    refused = _refusal(f"mysql://wardgate_native@{MARIADB}/wardgate_test", _credential("not-the-password-x9"))
    assert (refused.code, refused.sqlstate) == (1045, "28000")
    assert "the gateway's credential for connection 'conn-1'" in refused.message
    assert "not-the-password-x9" not in refused.message and "not-the-password-x9" not in repr(refused)


def test_a_database_that_is_down_is_a_clear_error(closed_port: int) -> None:
    refused = _refusal(f"mysql://app@127.0.0.1:{closed_port}/db")
    assert (
        refused.message == f"the database at 127.0.0.1:{closed_port} is unreachable (ConnectionRefusedError)"
    )
    assert (refused.code, refused.sqlstate) == (2003, "08S01")


def test_kill_query_stops_a_running_statement() -> None:
    target = MySqlTarget.from_url(f"mysql://wardgate_native@{MARIADB}/wardgate_test")

    async def go() -> tuple[bool, int, float, bool, list[list[bytes | None]]]:
        link = await open_backend(target, _credential(), client_capabilities=CLIENT_CAPABILITIES, timeout=5)
        try:
            started = time.monotonic()
            running = asyncio.create_task(_query(link, "SELECT SLEEP(20)"))
            await asyncio.sleep(0.1)
            killed = await kill_query(target, _credential(), link.connection_id)
            with pytest.raises(QueryFailed) as interrupted:
                await asyncio.wait_for(running, 5)
            elapsed = time.monotonic() - started
            unknown = await kill_query(target, _credential(), 2**31 - 7)  # no such thread: False
            after = await _query(link, "SELECT 1")  # the query was killed, not the connection
            return killed, interrupted.value.err.code, elapsed, unknown, after
        finally:
            await _close(link)

    killed, code, elapsed, unknown, after = asyncio.run(go())
    assert killed and code == 1317 and elapsed < 5 and not unknown  # 1317: query execution was interrupted
    assert after == [[b"1"]]


# ---- the scripted MySQL 8 server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def dev_certificates(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return make_dev_certificates(tmp_path_factory.mktemp("mysql-double-tls"))


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


@contextlib.contextmanager
def _double(
    rsa_key: rsa.RSAPrivateKey, certs: DevCertificates | None = None, **config: Any
) -> Iterator[MySql8Double]:
    tls = (str(certs.cert_file), str(certs.key_file)) if certs is not None else None
    with MySql8Double(DoubleConfig("sesame-8", tls=tls, **config), rsa_key) as double:
        yield double


def _pymysql(double: MySql8Double, certs: DevCertificates | None, **options: Any) -> str:
    """PyMySQL's login to the double: 'ok' or its error code."""
    if certs is not None:
        options.update(ssl_ca=str(certs.ca_file), ssl_verify_identity=True)
    else:
        options.setdefault("ssl_disabled", True)
    try:
        conn = pymysql.connect(
            host="127.0.0.1",
            port=double.port,
            user="app",
            password=options.pop("password", "sesame-8"),
            database="billing",
            autocommit=None,
            connect_timeout=3,
            **options,
        )
    except pymysql.MySQLError as exc:
        return f"error {exc.args[0]}"
    conn.ping(reconnect=False)
    conn.close()
    return "ok"


def _wardgate(
    double: MySql8Double, certs: DevCertificates | None, query: str = "", password: str = "sesame-8"
) -> str:
    """wardgate's login to the double: 'ok <plugin>' or its error code."""
    if certs is not None and not query:
        query = "?ssl-mode=verify-identity"
    ca = certs.ca_file.read_text() if certs is not None else None
    try:
        link = _login(f"mysql://app@127.0.0.1:{double.port}/billing{query}", _credential(password, ca))
    except BackendUnavailable as refused:
        return f"error {refused.code}"
    return f"ok {link.plugin}"


LIKE_PYMYSQL: dict[str, tuple[dict[str, Any], bool, str, str]] = {
    # case: (double's configuration, with TLS, outcome on the double, wardgate's result)
    "fast path, no TLS": ({}, False, "fast", "ok caching_sha2_password"),
    "switch from mysql_native_password, fast": (
        {"greeting_plugin": NATIVE},
        False,
        "fast",
        "ok caching_sha2_password",
    ),
    "full authentication inside verified TLS": (
        {"cached": False},
        True,
        "full-tls",
        "ok caching_sha2_password",
    ),
    "mysql_clear_password inside verified TLS": (
        {"user_plugin": CLEAR},
        True,
        "clear",
        "ok mysql_clear_password",
    ),
    "mysql_native_password user": (
        {"user_plugin": NATIVE, "greeting_plugin": NATIVE},
        False,
        "native",
        "ok mysql_native_password",
    ),
}


@pytest.mark.parametrize("case", LIKE_PYMYSQL)
def test_caching_sha2_and_clear_password_logins_as_pymysql_does_them(
    case: str, rsa_key: rsa.RSAPrivateKey, dev_certificates: DevCertificates
) -> None:
    config, with_tls, outcome, result = LIKE_PYMYSQL[case]
    certs = dev_certificates if with_tls else None
    with _double(rsa_key, certs, **config) as double:
        assert _pymysql(double, certs) == "ok"
        assert double.logins[-1].outcome == outcome
        if not config.get("cached", True):
            double.cache.clear()  # PyMySQL's login filled it
        assert _wardgate(double, certs) == result
        assert double.logins[-1].outcome == outcome
        assert [login.tls for login in double.logins] == [with_tls, with_tls]


def test_caching_sha2_full_authentication_by_rsa_to_a_pinned_key(
    rsa_key: rsa.RSAPrivateKey, dev_certificates: DevCertificates
) -> None:
    with _double(rsa_key, cached=False) as double:
        assert _pymysql(double, None, server_public_key=double.public_key_pem) == "ok"  # PyMySQL's pin
        assert double.logins[-1].outcome == "full-rsa"
        double.cache.clear()
        assert _wardgate(double, None, f"?server-public-key-sha256={double.public_key_sha256}") == (
            "ok caching_sha2_password"
        )
        assert double.logins[-1].outcome == "full-rsa"
        double.cache.clear()
        wrong = hashlib.sha256(b"another key").hexdigest()
        assert _wardgate(double, None, f"?server-public-key-sha256={wrong}") == "error 2061"
        assert double.logins[-1].outcome.startswith("error")  # nothing was sent to that key


def test_refusals_as_pymysql_refuses(rsa_key: rsa.RSAPrivateKey, dev_certificates: DevCertificates) -> None:
    certs = dev_certificates
    with _double(rsa_key, certs) as double:  # the fast path fails, then full authentication does
        assert _pymysql(double, certs, password="wrong") == "error 1045"
        assert _wardgate(double, certs, password="wrong") == "error 1045"
        assert [login.outcome for login in double.logins] == ["denied", "denied"]
    with _double(rsa_key, opening="too-many") as double:
        assert _pymysql(double, None) == "error 1040"
        refused = _refusal(f"mysql://app@127.0.0.1:{double.port}/billing")
        assert (refused.code, refused.sqlstate) == (1040, "08004")
        assert refused.message.endswith("refused the connection: Too many connections")
    with _double(rsa_key, user_plugin="authentication_kerberos_client") as double:
        assert _pymysql(double, None).startswith("error 2059")
        refused = _refusal(f"mysql://app@127.0.0.1:{double.port}/billing")
        assert refused.code == 2059 and "'authentication_kerberos_client'" in refused.message
    with _double(rsa_key, opening="garbage") as double:
        assert _pymysql(double, None).startswith("error")
        refused = _refusal(f"mysql://app@127.0.0.1:{double.port}/billing")
        assert refused.code == 2027 and "broke the protocol: a 5526600-byte packet during the login" in (
            refused.message
        )


def test_where_wardgate_is_stricter_than_pymysql(
    rsa_key: rsa.RSAPrivateKey, dev_certificates: DevCertificates
) -> None:
    """PyMySQL sends a password to whoever answers: RSA to an unpinned key, clear text without TLS.
    wardgate sends the password itself only inside verified TLS or to a pinned key."""
    with _double(rsa_key, cached=False) as double:
        assert _pymysql(double, None) == "ok" and double.logins[-1].outcome == "full-rsa"
        double.cache.clear()
        assert _wardgate(double, None) == "error 2061"
    with _double(rsa_key, dev_certificates, cached=False) as double:
        assert _wardgate(double, dev_certificates, "?ssl-mode=required") == "error 2061"  # unverified TLS
        assert _wardgate(double, dev_certificates, "?ssl-mode=verify-ca") == "ok caching_sha2_password"
    with _double(rsa_key, user_plugin=CLEAR) as double:
        assert _pymysql(double, None) == "ok" and double.logins[-1].clear_password == b"sesame-8\0"
        refused = _refusal(f"mysql://app@127.0.0.1:{double.port}/billing")
        assert refused.code == 2061 and "mysql_clear_password" in refused.message
        assert double.logins[-1].clear_password == b""  # never sent


def test_the_database_gets_the_capabilities_attributes_and_database(rsa_key: rsa.RSAPrivateKey) -> None:
    asked = (
        CLIENT_CAPABILITIES
        | codec.CLIENT_LOCAL_FILES
        | codec.CLIENT_COMPRESS
        | codec.CLIENT_OPTIONAL_RESULTSET_METADATA
        | codec.CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS
        | codec.CLIENT_SSL
        | codec.MARIADB_CLIENT_STMT_BULK_OPERATIONS
    )
    with _double(rsa_key) as double:
        link = _login(f"mysql://app@127.0.0.1:{double.port}/billing", _credential("sesame-8"), caps=asked)
        login = double.logins[-1]
    assert (login.user, login.database, login.charset) == ("app", "billing", codec.UTF8MB4_GENERAL_CI)
    assert login.attributes == {"program_name": "wardgate-tests"}
    assert login.capabilities == link.capabilities
    for relayed in (codec.CLIENT_LOCAL_FILES, codec.CLIENT_DEPRECATE_EOF, codec.CLIENT_MULTI_STATEMENTS):
        assert login.capabilities & relayed
    for own in (codec.CLIENT_CONNECT_WITH_DB, codec.CLIENT_PLUGIN_AUTH, codec.CLIENT_CONNECT_ATTRS):
        assert login.capabilities & own
    for never in (
        codec.CLIENT_COMPRESS,
        codec.CLIENT_OPTIONAL_RESULTSET_METADATA,
        codec.CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS,
        codec.CLIENT_SSL,  # no TLS on this connection: the client's wish is not the gateway's
    ):
        assert not login.capabilities & never
    assert link.greeting.server_version == "8.0.40" and link.greeting.connection_id == 4242
    # A capability the client did not ask for is not asked of the database either.
    assert not negotiate_capabilities(codec.CLIENT_PROTOCOL_41, 0xFFFFFFFF, tls=False, attributes=False) & (
        codec.CLIENT_DEPRECATE_EOF | codec.CLIENT_MULTI_STATEMENTS | codec.CLIENT_LOCAL_FILES
    )
    assert RELAYED_CAPABILITIES < 1 << 32


def test_a_server_that_never_greets_is_a_timeout(rsa_key: rsa.RSAPrivateKey) -> None:
    with _double(rsa_key, opening="silent") as double:
        started = time.monotonic()
        refused = _refusal(f"mysql://app@127.0.0.1:{double.port}/billing", timeout=0.3)
    assert time.monotonic() - started < 2
    assert refused.message == (
        f"the database at 127.0.0.1:{double.port} did not finish the login handshake within 0.3 s"
    )
    assert (refused.code, refused.sqlstate) == (2013, "08S01")


def test_tls_refusals_at_the_door(rsa_key: rsa.RSAPrivateKey, dev_certificates: DevCertificates) -> None:
    with _double(rsa_key) as double:  # no TLS offered
        refused = _refusal(f"mysql://app@127.0.0.1:{double.port}/billing?ssl-mode=required")
        assert refused.code == 2026 and "does not offer TLS (ssl-mode=required)" in refused.message
    # Plaintext slipped in behind the greeting would be read as if it came inside TLS.
    with _double(rsa_key, dev_certificates, opening="inject") as double:
        refused = _refusal(
            f"mysql://app@127.0.0.1:{double.port}/billing?ssl-mode=verify-identity",
            _credential(ca_pem=dev_certificates.ca_file.read_text()),
        )
        assert refused.code == 2027 and "unexpected bytes after its greeting" in refused.message


def test_rds_iam_tokens_travel_as_clear_password_inside_verified_tls(
    monkeypatch: pytest.MonkeyPatch, rsa_key: rsa.RSAPrivateKey, dev_certificates: DevCertificates
) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    aws.reset_clients()
    try:
        with _double(rsa_key, dev_certificates, user_plugin=CLEAR) as double:
            url = (
                f"mysql://iam_user@127.0.0.1:{double.port}/billing?auth=rds-iam&ssl-mode=verify-identity"
                "&region=eu-west-1"
            )
            refused = _refusal(url, _credential("unused", dev_certificates.ca_file.read_text()))
            token = double.logins[-1].clear_password  # the double knows no token: it refuses, after
        assert refused.code == 1045
        assert token.startswith(f"127.0.0.1:{double.port}/?Action=connect&DBUser=iam_user&".encode())
        assert b"X-Amz-Signature=" in token and b"eu-west-1" in token and token.endswith(b"\0")
        assert double.logins[-1].tls
    finally:
        aws.reset_clients()


# ---- the upstream URL -------------------------------------------------------------------------


def test_target_from_url() -> None:
    target = MySqlTarget.from_url("mysql://app%40x@db.internal:3307/bill%2Ding")
    assert (target.user, target.host, target.port, target.database) == (
        "app@x",
        "db.internal",
        3307,
        "bill-ing",
    )
    assert (target.ssl_mode, target.auth, target.verified) == ("verify-identity", "password", True)
    assert MySqlTarget.from_url("mariadb://app@localhost/db").ssl_mode == "disabled"  # loopback
    assert MySqlTarget.from_url("mysql://app@[::1]/db").port == 3306
    assert MySqlTarget.from_url("mysql://app@db.internal/db?ssl-mode=VERIFY_CA").ssl_mode == "verify-ca"
    iam = MySqlTarget.from_url("mysql://app@db.internal/db?auth=rds-iam&region=eu-west-1")
    assert (iam.auth, iam.region, iam.ssl_mode) == ("rds-iam", "eu-west-1", "verify-identity")
    pin = "AB:" + "cd" * 31
    assert MySqlTarget.from_url(
        f"mysql://app@h/db?server-public-key-sha256={pin}"
    ).server_public_key_sha256 == (bytes.fromhex("ab" + "cd" * 31))


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("postgresql://app@h/db", "is not a mysql:// or mariadb:// URL"),
        ("mysql://app:secret@h/db", "must not carry a password"),
        ("mysql://h/db", "must name a user, a host and one database"),
        ("mysql://app@h/", "must name a user, a host and one database"),
        ("mysql://app@h/a/b", "must name a user, a host and one database"),
        ("mysql://app@h:99999/db", "has an invalid port"),
        ("mysql://app@h/db%00x", "cannot contain control characters"),
        ("mysql://app@h/db?sslmode=verify-full", "unknown parameter 'sslmode'"),
        ("mysql://app@h/db?ssl-mode=preferred", "ssl-mode=preferred falls back to plaintext"),
        ("mysql://app@h/db?ssl-mode=verify-full", "ssl-mode must be one of"),
        ("mysql://app@h/db?ssl-mode=required&ssl-mode=disabled", "given twice"),
        ("mysql://app@h/db?auth=kerberos", "auth must be 'password' or 'rds-iam'"),
        ("mysql://app@h/db?auth=rds-iam&ssl-mode=verify-ca", "needs ssl-mode=verify-identity"),
        ("mysql://app@h/db?server-public-key-sha256=abc", "must be 64 hexadecimal digits"),
        ("mysql://app@h/db#x", "cannot have a fragment"),
    ],
)
def test_bad_upstream_urls_are_refused_clearly(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("?", r"\?")):
        MySqlTarget.from_url(url)
