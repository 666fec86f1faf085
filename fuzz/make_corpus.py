"""Write the seed corpora, ``fuzz/corpus/<target>/<sha1>``, from the tests' own data.

``python fuzz/make_corpus.py`` (re)writes every seed; files it did not write (crash reproducers
kept as regression seeds) stay. The SQL, Kubernetes and shell seeds are the bypass corpora of
the tests (tests/sql_bypass_corpus.py, tests/k8s_bypass_corpus.py, tests/shell_bypass_corpus.py);
the others are the shapes the unit tests and the docs use. The PostgreSQL value seeds add real
wire values when the tests' PostgreSQL (``WARDGATE_TEST_PG``) answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "wardgate"), str(FUZZ_DIR)]

from tests.k8s_bypass_corpus import K8S_BYPASS_CORPUS  # noqa: E402
from tests.shell_bypass_corpus import SHELL_BYPASS_CORPUS  # noqa: E402
from tests.sql_bypass_corpus import BYPASS_CORPUS  # noqa: E402

from wardgate.policy.packs import PACKS  # noqa: E402
from wardgate.tcp.postgres import codec  # noqa: E402

HTTP_PATHS = [
    "/v1/items",
    "/v1/items/?limit=5&q=a%20b",
    "a/b",
    "/a%20b/caf%c3%a9?q=%C3%A9",
    "/%41%62c/%7euser",
    "/a%3Ab/x@y?list=1,2;3&k=v:w@x/y?z",
    "/a%3fb/a%23b/a%25b",
    "/.well-known/x/.../b",
    "/@evil.example.com/x?next=@evil.example.com:81",
    "/:80@evil.example.com/",
    "/a/../b",
    "/%2e%2E/x",
    "/a%2f..%2fadmin",
    "/a%5C..%5Cadmin",
    "/a%0D%0Ab",
    "/%c0%ae%c0%ae",
    "/%2561dmin",
    "//evil.example.com/x",
    "/a;/..;/admin",
    "/v1/users/42?x=a+b&y=%2F%3F",
    "/v1/x?a=%zz",
    "/v1/x?a=1#frag",
]

DATAAPI = [
    ("Execute", {"sql": "SELECT 1"}),
    (
        "Execute",
        {
            "resourceArn": "arn:aws:rds:us-east-1:1:cluster:x",
            "secretArn": "arn:aws:secretsmanager:x",
            "database": "appdb",
            "sql": "SELECT * FROM t WHERE a = :a AND d = :d AND n = :n AND j = :j",
            "parameters": [
                {"name": "a", "value": {"longValue": 7}},
                {"name": "d", "value": {"stringValue": "2024-02-29"}, "typeHint": "DATE"},
                {"name": "n", "value": {"stringValue": "1.50"}, "typeHint": "DECIMAL"},
                {"name": "j", "value": {"stringValue": '{"a": [1]}'}, "typeHint": "JSON"},
                {"name": "b", "value": {"blobValue": "AAEC"}},
                {"name": "u", "value": {"isNull": True}},
            ],
            "transactionId": "tx-1",
            "includeResultMetadata": True,
            "continueAfterTimeout": False,
            "resultSetOptions": {"decimalReturnType": "DOUBLE_OR_LONG", "longReturnType": "STRING"},
            "formatRecordsAs": "JSON",
        },
    ),
    (
        "Execute",
        {
            "sql": "SELECT ':x', $$:y$$, \"a:b\", c::text, /* :z */ :w -- :q\n",
            "parameters": [
                {"name": "w", "value": {"stringValue": "12:34:56"}, "typeHint": "TIME"},
            ],
        },
    ),
    (
        "Execute",
        {
            "sql": "INSERT INTO t VALUES (:t, :u, :f, :b)",
            "parameters": [
                {"name": "t", "value": {"stringValue": "2024-01-02 03:04:05.25"}, "typeHint": "TIMESTAMP"},
                {
                    "name": "u",
                    "value": {"stringValue": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
                    "typeHint": "UUID",
                },
                {"name": "f", "value": {"doubleValue": 1.5}},
                {"name": "b", "value": {"booleanValue": True}},
            ],
        },
    ),
    (
        "BatchExecute",
        {
            "sql": "INSERT INTO t VALUES (:a)",
            "parameterSets": [
                [{"name": "a", "value": {"longValue": 1}}],
                [{"name": "a", "value": {"longValue": 2}}],
            ],
            "transactionId": "tx-2",
        },
    ),
    ("BeginTransaction", {"resourceArn": "arn:x", "secretArn": "arn:y", "database": "appdb"}),
    ("CommitTransaction", {"resourceArn": "arn:x", "secretArn": "arn:y", "transactionId": "tx-1"}),
    ("RollbackTransaction", {"transactionId": "tx-1"}),
    ("Execute", {"sql": "SELECT 1", "database": "other", "schema": "public"}),
    ("Execute", {"sql": "SELECT 1; SELECT 2", "parameters": [{"name": "1x", "value": {}}]}),
]

SCIM = [
    ("GET /Users", b""),
    ("GET /Users?startIndex=1&count=100", b""),
    ("GET /Users?filter=userName%20eq%20%22alice%40example.com%22", b""),
    ('GET /Users?filter=userName eq "alice@example.com"&startIndex=2&count=1', b""),
    ("GET /Users?filter=externalId%20eq%20%22ext-1%22", b""),
    ("GET /Users?filter=urn:ietf:params:scim:schemas:core:2.0:User:id%20eq%20%22u1%22", b""),
    ("GET /Users?filter=userName%20eq%20%22a%5C%22b%22", b""),
    ("GET /Users?filter=displayName%20co%20%22x%22", b""),
    ("GET /Users/u1", b""),
    ("DELETE /Users/u1", b""),
    ("GET /Groups", b""),
]
SCIM_BODIES = [
    (
        "POST /Users",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bob@example.com",
            "name": {"givenName": "Bob", "familyName": "Doe"},
            "emails": [{"primary": True, "value": "bob@example.com", "type": "work"}],
            "externalId": "00u1abc",
            "active": True,
        },
    ),
    ("POST /Users", {"userName": "carol@example.com", "active": "False"}),
    ("PUT /Users/u1", {"userName": "alice@example.com", "displayName": "Alice", "active": False}),
    ("PATCH /Users/u1", {"Operations": [{"op": "replace", "value": {"active": False}}]}),
    (
        "PATCH /Users/u1",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": "active", "value": "True"},
                {"op": "add", "path": "name.givenName", "value": "Al"},
                {"op": "remove", "path": 'emails[type eq "work"]'},
                {
                    "op": "replace",
                    "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                    "value": "a@b.c",
                },
            ],
        },
    ),
]


def policy_seeds() -> list[bytes]:
    example = (ROOT / "policies" / "example.yaml").read_bytes()
    docs = (ROOT / "docs" / "policy.md").read_text()
    blocks = [block.encode() for block in re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL)]
    connections = (
        b"connections:\n"
        b"  - {name: billing, kind: http, upstream_url: https://b.example/api, allowed_groups: [ci]}\n"
        b"  - {name: warehouse, kind: sql, upstream_url: postgresql://db.example/app}\n"
        b"  - {name: prod, kind: k8s, upstream_url: https://k8s.example}\n"
        b"  - {name: downloads, kind: http, upstream_url: https://d.example}\n"
    )
    packs = b"packs:\n" + b"".join(
        f"  - {{name: {name}, connections: [{'warehouse' if protocol == 'sql' else 'prod'}]"
        f"{', params: {namespaces: [prod]}' if 'namespaces' in accepted else ''}}}\n".encode()
        for name, (protocol, _, accepted) in PACKS.items()
    )
    rules = (
        b"rules:\n"
        b"  - name: sql writes\n    effect: deny\n    connections: [warehouse]\n"
        b"    match: {sql: {kinds: [delete, update], tables: [users], where_missing: true}}\n"
        b"  - name: shell\n    effect: require_approval\n    approvers: [ops@example.com]\n"
        b"    match: {shell: {programs: [rm, sudo]}}\n"
        b"  - name: unparseable\n    effect: allow\n    match: {sql: {unparseable: true}}\n"
        b"settings: {unparseable: require_approval}\n"
    )
    anchors = b"rules:\n  - &a {name: r, effect: allow, match: {http: {methods: &m [GET]}}}\n  - *a\n"
    return [
        example,
        *(connections + block for block in blocks),
        connections + packs + rules,
        example
        + b"\n#---\n"
        + blocks[-1]
        + b"\n#---\nconnections: [{name: downloads, kind: http, upstream_url: https://d.example}]\n",
        anchors,
    ]


def codec_seeds() -> list[bytes]:
    def payload(parser: int, message: bytes, skip: int = 5) -> bytes:
        return bytes((1, parser)) + message[skip:]

    frontend = [
        codec.startup_message({"user": "agent", "database": "demo-pg", "application_name": "psql"}),
        codec.query("SELECT 1"),
        codec.parse("s1", "SELECT $1::int", (23,)),
        codec.bind("p1", "s1", [b"42", None], (0, 1), (1,)),
        codec.describe("P", "p1"),
        codec.execute("p1", 100),
        codec.close("S", "s1"),
        codec.sync(),
        codec.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc"),
        codec.copy_fail("no"),
        codec.terminate(),
    ]
    backend = [
        codec.authentication_sasl(["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]),
        codec.authentication_md5_password(b"salt"),
        codec.parameter_status("server_version", "16.2"),
        codec.backend_key_data(1234, b"\x01\x02\x03\x04"),
        codec.row_description(
            [codec.Column("email", 16384, 2, 25, -1, -1, 0), codec.Column("n", 0, 0, 20, 8, -1, 1)]
        ),
        codec.data_row([b"jane.doe@example.com", None, b"4242424242424242"]),
        codec.error_response("42501", "permission denied", detail="d", hint="h"),
        codec.command_complete("SELECT 1"),
        codec.parameter_description((23, 25)),
        codec.ready_for_query(b"T"),
        codec.negotiate_protocol_version(0, ["_pq_.x"]),
    ]
    seeds = [
        payload(0, codec.startup_message({"user": "u", "database": "d"}), 4),
        payload(0, codec.ssl_request(), 4),
        payload(0, codec.cancel_request(7, b"\x00" * 32), 4),
        payload(1, codec.parse("", "SELECT $1", (0, 25))),
        payload(2, codec.bind("", "", [b"\x00\x01", None, b"x"], (1,), (0, 1))),
        payload(3, codec.describe("S", "s")),
        payload(4, codec.close("P", "")),
        payload(5, codec.execute("", 0)),
        payload(6, codec.query("SELECT 'é'; DROP TABLE x")),
        payload(7, codec.password_message(b"token\x00")),
        payload(8, codec.sasl_initial_response("SCRAM-SHA-256", None)),
        payload(9, codec.copy_fail("stop")),
        payload(10, backend[4]),
        payload(11, backend[5]),
        payload(12, backend[6]),
        payload(13, backend[7]),
        payload(14, backend[0]),
        payload(14, backend[1]),
        payload(15, backend[0], 9),
        payload(16, backend[3]),
        payload(17, backend[2]),
        payload(18, backend[8]),
        payload(19, backend[9]),
        payload(20, backend[10]),
        bytes((1, 21)) + b"\x00\x00\x02\x00\x00\x00\x01",  # CopyOutResponse: text, two text columns
        bytes((1, 22)) + struct.pack("!i", 99) + b"chan\x00payload\x00",  # NotificationResponse
    ]
    # Framing: mode 0, flags (bit 0: start-up phase), switch to typed after N untyped messages, max
    # message choice, 3 bytes of chunking seed, then the stream.
    seeds.append(bytes((0, 1, 1, 4, 1, 2, 3)) + b"".join(frontend))
    seeds.append(bytes((0, 1, 2, 4, 9, 9, 9)) + codec.ssl_request() + b"".join(frontend))
    seeds.append(bytes((0, 0, 255, 4, 5, 6, 7)) + b"".join(backend))
    seeds.append(bytes((0, 0, 255, 2, 0, 0, 1)) + b"".join(backend))  # max_message 64: some too long
    seeds.append(bytes((0, 1, 255, 4, 0, 1, 0)) + codec.ssl_request() + codec.gssenc_request())
    return seeds


def values_seeds() -> list[bytes]:
    from pg_values import encode

    seeds = []
    samples: dict[int, list[bytes | None]] = {
        25: [b"jane.doe@example.com", b"card 4242 4242 4242 4242", b"+14155552671", b"10.1.2.3", b"", None],
        114: [b'{"a": "jane.doe@example.com", "n": 4242424242424242, "user": {"email": "x"}}', b"5", b"[]"],
        3802: [b'{"token": "abc", "items": [{"card": "4242424242424242"}]}'],
        20: [b"4242424242424242", b"-1", b"0"],
        1700: [b"4242424242424242.00", b"NaN", b"-Infinity", b"1.5"],
        869: [b"10.1.2.3", b"10.1.2.3/24", b"2001:db8::1"],
        650: [b"10.0.0.0/8"],
        17: [b"\\x6a616e65406578616d706c652e636f6d", b"jane@example.com\\000x"],
        1009: [b'{"jane@example.com",NULL,"a b","q\\"\\\\"}', b"[0:1]={a,b}", b"{{a,b},{c,d}}", b"{}"],
        1016: [b"{4242424242424242,NULL}"],
        199: [b'{"{\\"a\\": \\"jane@example.com\\"}"}'],
    }
    for oid, cells in samples.items():
        for profile in (0, 1, 3, 5, 6):
            seeds.append(encode(profile, [(0, oid, 0), (1, 25, 0)], [c for v in cells for c in (v, b"x")]))
    binary: dict[int, list[bytes]] = {
        20: [struct.pack(">q", 4242424242424242)],
        23: [struct.pack(">i", 424242424)],
        1700: [struct.pack(">hhHH", 4, 3, 0, 0) + struct.pack(">4H", 42, 4242, 4242, 4242)],
        869: [bytes((2, 32, 0, 4, 10, 1, 2, 3)), bytes((3, 128, 0, 16)) + bytes(15) + b"\x01"],
        3802: [b'\x01{"email": "jane.doe@example.com"}'],
        17: [b"jane.doe@example.com", b"\xff\xfe"],
        1016: [
            struct.pack(">iiIii", 1, 1, 20, 2, 1)
            + struct.pack(">iq", 8, 4242424242424242)
            + struct.pack(">i", -1)
        ],
        1009: [struct.pack(">iiIii", 1, 0, 25, 1, 1) + struct.pack(">i", 20) + b"jane.doe@example.com"],
        2950: [bytes(16)],
        16384: [b"\x00"],
    }
    for oid, values in binary.items():
        for profile in (0, 1, 2, 5):
            seeds.append(
                encode(profile, [(0, oid, 1), (4, 20, 1)], [c for v in values for c in (v, bytes(8))])
            )
    seeds += _server_values(encode)
    return seeds


def _server_values(encode: Callable[..., bytes]) -> list[bytes]:
    """Text and binary values of many types as the tests' PostgreSQL sends them (none if it is down)."""
    try:
        import psycopg
        from psycopg import pq
    except ImportError:
        return []
    dsn = os.environ.get("WARDGATE_TEST_PG") or (
        "host=127.0.0.1 port=5432 dbname=wardgate_test user=wardgate "
        "password=wardgate-test-pw connect_timeout=3"
    )
    expressions = [
        "'jane.doe@example.com'::varchar",
        "4242424242424242::int8",
        "4242424242424242.00::numeric",
        "'-0.001'::numeric",
        "'10.1.2.3/24'::inet",
        "'::ffff:10.1.2.3'::inet",
        "'10.0.0.0/8'::cidr",
        "'\\x6a616e65'::bytea",
        '\'{"a": [1, "jane.doe@example.com"]}\'::jsonb',
        "ARRAY[[1, 2], [3, NULL]]::int8[]",
        "'[0:1]={a,b}'::text[]",
        "ARRAY['10.1.2.3'::inet]",
        "ARRAY[1.5]::numeric[]",
        "'2024-01-02 03:04:05.25'::timestamp",
        "'12:34:56.5'::time",
        "1.5::float4",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
        "ROW(1, 'x')",
    ]
    seeds: list[bytes] = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for expression in expressions:
                for fmt in (0, 1):
                    res = conn.pgconn.exec_params(f"SELECT {expression}".encode(), [], result_format=fmt)
                    if res.status != pq.ExecStatus.TUPLES_OK:
                        continue
                    oid, value = res.ftype(0), res.get_value(0, 0)
                    seeds.append(encode(0, [(0, oid, fmt)], [value]))
    except psycopg.Error:
        return []
    return seeds


def corpora() -> dict[str, Iterable[bytes]]:
    def joined(method: str, path: str, query: str) -> bytes:
        return f"{method} {path}{'?' + query if query else ''}".encode("utf-8", "surrogateescape")

    return {
        "http_path": [p.encode() for p in HTTP_PATHS]
        + [f"{path}?{query}".encode() for _, path, query, _ in K8S_BYPASS_CORPUS],
        "sql_parser": [sql.encode("utf-8", "surrogatepass") for _, sql, _ in BYPASS_CORPUS],
        "k8s_request": [joined(method, path, query) for method, path, query, _ in K8S_BYPASS_CORPUS],
        "shell_parser": [command.encode("utf-8", "surrogatepass") for command, _ in SHELL_BYPASS_CORPUS],
        "dataapi_request": [
            f"{operation}\n".encode() + json.dumps(body).encode() for operation, body in DATAAPI
        ]
        + [b"BeginTransaction\n", b"Execute\n[1]", b"Nope\n{}"],
        "scim_filter": [line.encode() + b"\n" + body for line, body in SCIM]
        + [line.encode() + b"\n" + json.dumps(body).encode() for line, body in SCIM_BODIES],
        "policy_yaml": policy_seeds(),
        "pg_codec": codec_seeds(),
        "pg_values": values_seeds(),
        "mysql_codec": harness_seeds("mysql_codec"),
        "mysql_values": harness_seeds("mysql_values"),
    }


def harness_seeds(target: str) -> list[bytes]:
    """The seeds a harness builds itself (``seeds()`` in fuzz/<target>.py)."""
    seeds: Callable[[], list[bytes]] = __import__(target).seeds
    return seeds()


def main() -> None:
    for target, seeds in corpora().items():
        folder = FUZZ_DIR / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        unique = {hashlib.sha1(seed).hexdigest(): seed for seed in seeds}  # noqa: S324 - names, as libFuzzer's
        for name, seed in unique.items():
            (folder / name).write_bytes(seed)
        print(f"{target}: {len(unique)} seeds")


if __name__ == "__main__":
    main()
