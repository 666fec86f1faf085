"""ssh connections (connections.py) and ssh_key credentials (credentials.py): what is accepted,
and a clear error for everything else."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import asyncssh
import jsonschema
import pytest

from wardgate.connections import Connection
from wardgate.credentials import Credential

HOST_KEY = asyncssh.generate_private_key("ssh-ed25519")
HOST_KEY_LINE = " ".join(HOST_KEY.export_public_key().decode().split()[:2])
FINGERPRINT = HOST_KEY.get_fingerprint("sha256")
SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "layers/wardgate/wardgate/policy/schema.json").read_text()
)


def ssh(url: str = "ssh://deploy@10.0.0.5:2222", host_key: str = HOST_KEY_LINE, **fields: str) -> Connection:
    return Connection("web-1", "ssh", url, "wardgate/web-1", ("sre",), host_key=host_key, **fields)


def test_ssh_connections_name_user_host_port_and_pin_the_host_key() -> None:
    connection = ssh()
    assert connection.ssh_host_key == HOST_KEY_LINE
    assert connection.to_dict()["host_key"] == HOST_KEY_LINE
    assert Connection.from_dict(connection.to_dict()) == connection
    assert ssh(host_key=FINGERPRINT).ssh_host_key == FINGERPRINT
    assert ssh(host_key=HOST_KEY_LINE + " root@web-1").ssh_host_key.endswith("root@web-1")
    assert ssh("ssh://deploy@web-1.internal").upstream_url == "ssh://deploy@web-1.internal"
    in_url = ssh(f"ssh://deploy@web-1:22?host_key={quote(FINGERPRINT)}", host_key="")
    assert in_url.ssh_host_key == FINGERPRINT
    assert "host_key" not in in_url.to_dict()
    # Other kinds' items are unchanged: no host_key key at all.
    http = Connection("api", "http", "https://api.example", None, ("sre",))
    assert "host_key" not in http.to_dict()


@pytest.mark.parametrize(
    ("url", "host_key", "message"),
    [
        ("ssh://deploy@web-1", "", "must pin its target's host key"),
        ("ssh://deploy@web-1", "   ", "must pin its target's host key"),
        ("ssh://deploy@web-1", "SHA256:short", "43 base64 characters"),
        ("ssh://deploy@web-1", "MD5:aa:bb", "not an OpenSSH public key line"),
        ("ssh://deploy@web-1", "ssh-ed25519 AAAAnot-a-key", "not an OpenSSH public key line"),
        ("ssh://deploy@web-1", "ssh-ed25519-cert-v01@openssh.com AAAA", "not a certificate"),
        ("ssh://deploy@web-1", HOST_KEY_LINE + "\n" + HOST_KEY_LINE, "one OpenSSH public key line"),
        ("ssh://web-1", HOST_KEY_LINE, "must name the target's login user"),
        ("ssh://bad user@web-1", HOST_KEY_LINE, "must name the target's login user"),
        ("ssh://deploy:pw@web-1", HOST_KEY_LINE, "must not carry a password"),
        ("https://deploy@web-1", HOST_KEY_LINE, "must be ssh://user@host[:port]"),
        ("ssh://deploy@:22", HOST_KEY_LINE, "must be ssh://user@host[:port]"),
        ("ssh://deploy@web-1:99999", HOST_KEY_LINE, "invalid port"),
        ("ssh://deploy@web-1:ssh", HOST_KEY_LINE, "invalid port"),
        ("ssh://deploy@web-1/home", HOST_KEY_LINE, "must not have a path"),
        ("ssh://deploy@web-1?user=root", HOST_KEY_LINE, "no query parameter but one host_key"),
        (f"ssh://deploy@web-1?host_key={quote(FINGERPRINT)}", FINGERPRINT, "not both"),
        (f"ssh://deploy@web-1?host_key=a&host_key={quote(FINGERPRINT)}", "", "but one host_key"),
    ],
)
def test_bad_ssh_connections_are_refused_with_the_reason(url: str, host_key: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ssh(url, host_key)


def test_only_ssh_connections_pin_a_host_key() -> None:
    with pytest.raises(ValueError, match="host_key is only for ssh connections"):
        Connection("api", "http", "https://api.example", host_key=HOST_KEY_LINE)


def test_the_policy_schema_accepts_ssh_connections() -> None:
    item = ssh().to_dict()
    item["credential_secret"] = "wardgate/web-1"
    jsonschema.validate({"connections": [item]}, {**SCHEMA, "required": []})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"connections": [{**item, "host_key": ""}]}, {**SCHEMA, "required": []})


# ---------------------------------------------------------------- ssh_key credentials


def test_an_ssh_key_credential_holds_the_key_unencrypted_and_hides_it() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    credential = Credential.from_secret(
        json.dumps({"type": "ssh_key", "private_key": key.export_private_key().decode()})
    )
    assert credential.private_key is not None
    assert asyncssh.import_private_key(credential.private_key).public_data == key.public_data
    assert credential.header_name == "" and credential.password is None
    assert "PRIVATE" not in repr(credential) and credential.private_key not in repr(credential)
    # A PEM (PKCS#8) key and an encrypted one with its passphrase: both come out as OpenSSH keys.
    pem = key.export_private_key("pkcs8-pem").decode()
    encrypted = key.export_private_key(passphrase="correct horse", rounds=2, ignore_few_rounds=True).decode()
    for doc in (
        {"type": "ssh_key", "private_key": pem},
        {"type": "ssh_key", "private_key": encrypted, "passphrase": "correct horse"},
    ):
        loaded = Credential.from_secret(json.dumps(doc)).private_key
        assert loaded is not None and loaded.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        assert asyncssh.import_private_key(loaded).public_data == key.public_data
        assert "correct horse" not in repr(Credential.from_secret(json.dumps(doc)))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "ssh_key", "private_key": "s3cr3t-not-a-key"}, "not an OpenSSH or PEM private key"),
        ({"type": "ssh_key", "private_key": ""}, "non-empty string"),
        ({"type": "ssh_key"}, "non-empty string"),
        ({"type": "ssh_key", "private_key": "ENCRYPTED"}, "it is encrypted and the secret has no passphrase"),
        ({"type": "ssh_key", "private_key": "ENCRYPTED", "passphrase": "wrong"}, "passphrase does not"),
    ],
)
def test_bad_ssh_key_credentials_say_why_without_the_secret(doc: dict[str, str], message: str) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    if doc.get("private_key") == "ENCRYPTED":
        doc = {
            **doc,
            "private_key": key.export_private_key(
                passphrase="right", rounds=2, ignore_few_rounds=True
            ).decode(),
        }
    with pytest.raises((ValueError, KeyError), match=message) as raised:
        Credential.from_secret(json.dumps(doc))
    assert "s3cr3t" not in str(raised.value) and "BEGIN" not in str(raised.value)
