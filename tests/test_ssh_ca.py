"""The SSH CA (wardgate/sshca.py) and the throwaway sshd the SSH gateway's tests use.

Certificates are checked by OpenSSH itself: ``ssh-keygen -L`` reads what we sign, and a real sshd
trusting the CA (``TrustedUserCAKeys``) lets the stock ssh client in with them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import boto3
import pytest
from moto import mock_aws

from tests import ssh_target as sshd_helpers
from tests.ssh_target import ssh_target_fixture  # noqa: F401 - the `ssh_target` fixture
from wardgate import aws
from wardgate.errors import BadRequest, ServiceUnavailable, Unauthorized
from wardgate.identity import Identity
from wardgate.sshca import (
    MAX_LIFETIME_S,
    BadKeyId,
    CertificateExpired,
    CertificateNotYetValid,
    InvalidCertificate,
    NotAUserCertificate,
    SshCertificateAuthority,
    SshSettings,
    WrongCertificateAuthority,
    WrongPrincipal,
    host_key_line,
    identity_from_key_id,
    key_id,
    load_ca,
    load_host_key,
    make_local_keys,
)

IDENTITY = Identity(
    subject="agent-7",
    issuer="https://issuer.example/",
    groups=("sre", "db-readers"),
    client_id="ci-runner",
    token_id="jti-123",
    expires_at=None,
)


@pytest.fixture(scope="module")
def ca() -> SshCertificateAuthority:
    return SshCertificateAuthority(asyncssh.generate_private_key("ssh-ed25519"))


@pytest.fixture(scope="module")
def user_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


def keygen_listing(certificate: str, folder: Path) -> str:
    path = folder / "id-cert.pub"
    path.write_text(certificate + "\n")
    return subprocess.run(
        ["ssh-keygen", "-L", "-f", str(path)], check=True, capture_output=True, text=True
    ).stdout


# ---------------------------------------------------------------- the test sshd itself


def test_the_test_sshd_lets_its_client_key_in_and_pins_its_host_key(
    ssh_target: sshd_helpers.SshTarget, tmp_path: Path
) -> None:
    done = subprocess.run(
        [*ssh_target.ssh_command("echo", "hello-from-sshd")], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello-from-sshd"
    assert ssh_target.host_key_fingerprint.startswith("SHA256:")
    # Another host key pinned for that address: the stock client refuses to connect.
    other = public_line(asyncssh.generate_private_key("ssh-ed25519")).split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{ssh_target.host}]:{ssh_target.port} {' '.join(other)}\n")
    argv = ssh_target.ssh_command("true")
    argv[argv.index(f"UserKnownHostsFile={ssh_target.known_hosts_file}")] = f"UserKnownHostsFile={wrong}"
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert refused.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in refused.stderr or "Host key verification failed" in (
        refused.stderr
    )


# ---------------------------------------------------------------- signing


def test_a_signed_certificate_reads_back_in_ssh_keygen(
    ca: SshCertificateAuthority, user_key: asyncssh.SSHKey, tmp_path: Path
) -> None:
    now = time.time()
    signed = ca.sign_user_certificate(IDENTITY, public_line(user_key), now=now)
    assert signed.certificate.startswith("ssh-ed25519-cert-v01@openssh.com ")
    assert signed.valid_after == int(now) - 30
    assert signed.valid_before == int(now) + MAX_LIFETIME_S
    listing = keygen_listing(signed.certificate, tmp_path)
    assert "Type: ssh-ed25519-cert-v01@openssh.com user certificate" in listing
    assert f"Signing CA: ED25519 {ca.fingerprint()}" in listing
    assert f"Serial: {signed.serial}" in listing
    key_id_in_listing = re.search(r'Key ID: "(.*)"', listing)
    assert key_id_in_listing is not None
    assert json.loads(key_id_in_listing.group(1)) == {
        "v": 1,
        "iss": "https://issuer.example/",
        "sub": "agent-7",
        "groups": ["sre", "db-readers"],
        "client_id": "ci-runner",
        "jti": "jti-123",
    }
    principals = listing.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == ["agent-7"]
    extensions = listing.split("Extensions:")[1].split()
    assert extensions == ["permit-pty"]
    assert "Critical Options: (none)" in listing
    valid = re.search(r"Valid: from (\S+) to (\S+)", listing)
    assert valid is not None
    assert valid.group(1) == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(int(now) - 30))
    assert valid.group(2) == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(int(now) + 3600))


def test_a_certificate_never_outlives_the_token(
    ca: SshCertificateAuthority, user_key: asyncssh.SSHKey
) -> None:
    now = int(time.time())
    short = Identity("agent-7", "https://issuer.example/", expires_at=now + 300)
    assert ca.sign_user_certificate(short, public_line(user_key), now=now).valid_before == now + 300
    long = Identity("agent-7", "https://issuer.example/", expires_at=now + 86400)
    assert ca.sign_user_certificate(long, public_line(user_key), now=now).valid_before == now + 3600
    expired = Identity("agent-7", "https://issuer.example/", expires_at=now)
    with pytest.raises(Unauthorized, match="expired"):
        ca.sign_user_certificate(expired, public_line(user_key), now=now)


def test_serials_differ(ca: SshCertificateAuthority, user_key: asyncssh.SSHKey) -> None:
    serials = {ca.sign_user_certificate(IDENTITY, user_key).serial for _ in range(8)}
    assert len(serials) == 8


@pytest.mark.parametrize(
    ("public_key", "message"),
    [
        ("", "must be an OpenSSH public key line"),
        ("not a key", "has type 'not'"),
        ("ssh-ed25519 AAAAnotbase64!!", "not a valid OpenSSH public key"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "has type 'ssh-dss'"),
        ("ssh-ed25519 AAAA\nssh-ed25519 AAAA", "single line"),
        ("ssh-ed25519-cert-v01@openssh.com AAAA", "is a certificate"),
        ("x" * 20000, "longer than"),
    ],
)
def test_bad_public_keys_are_refused_with_the_reason(
    ca: SshCertificateAuthority, public_key: str, message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        ca.sign_user_certificate(IDENTITY, public_key)


def test_a_key_line_claiming_another_type_and_a_weak_rsa_key_are_refused(
    ca: SshCertificateAuthority, user_key: asyncssh.SSHKey
) -> None:
    data = public_line(user_key).split()[1]
    with pytest.raises(BadRequest, match="algorithm mismatch"):
        ca.sign_user_certificate(IDENTITY, f"ssh-rsa {data}")
    weak = asyncssh.generate_private_key("ssh-rsa", key_size=1024)
    with pytest.raises(BadRequest, match="1024-bit RSA key"):
        ca.sign_user_certificate(IDENTITY, public_line(weak))
    strong = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    assert ca.sign_user_certificate(IDENTITY, public_line(strong)).certificate.startswith(
        "ssh-rsa-cert-v01@openssh.com "
    )


def test_an_identity_too_large_for_a_key_id_is_refused(
    ca: SshCertificateAuthority, user_key: asyncssh.SSHKey
) -> None:
    crowded = Identity("agent-7", "https://issuer.example/", groups=tuple(f"group-{n}" for n in range(600)))
    with pytest.raises(BadRequest, match="too many groups"):
        ca.sign_user_certificate(crowded, user_key)


# ---------------------------------------------------------------- reading certificates back


def test_the_identity_comes_back_from_the_certificate(
    ca: SshCertificateAuthority, user_key: asyncssh.SSHKey
) -> None:
    signed = ca.sign_user_certificate(IDENTITY, user_key)
    identity = ca.identity_from_certificate(signed.certificate)
    assert identity == Identity(
        subject="agent-7",
        issuer="https://issuer.example/",
        groups=("sre", "db-readers"),
        client_id="ci-runner",
        token_id="jti-123",
        expires_at=signed.valid_before,
    )
    assert not identity.registered  # the listener still asks the agent registry
    assert ca.identity_from_certificate(asyncssh.import_certificate(signed.certificate)) == identity
    minimal = Identity("agent-8", "https://issuer.example/")
    back = ca.identity_from_certificate(ca.sign_user_certificate(minimal, user_key).certificate)
    assert (back.subject, back.groups, back.client_id, back.token_id) == ("agent-8", (), None, None)


def test_a_certificate_of_another_ca_is_refused(
    ca: SshCertificateAuthority, user_key: asyncssh.SSHKey
) -> None:
    other = SshCertificateAuthority(asyncssh.generate_private_key("ssh-ed25519"))
    certificate = other.sign_user_certificate(IDENTITY, user_key).certificate
    expected = re.escape(f"not by this gateway's SSH CA ({ca.fingerprint()})")
    with pytest.raises(WrongCertificateAuthority, match=expected):
        ca.identity_from_certificate(certificate)


def test_validity_window_is_enforced(ca: SshCertificateAuthority, user_key: asyncssh.SSHKey) -> None:
    now = time.time()
    certificate = ca.sign_user_certificate(IDENTITY, user_key, now=now).certificate
    with pytest.raises(CertificateNotYetValid, match="not valid before"):
        ca.identity_from_certificate(certificate, now=now - 60)
    with pytest.raises(CertificateExpired, match="expired at"):
        ca.identity_from_certificate(certificate, now=now + 3600)
    assert ca.identity_from_certificate(certificate, now=now + 3599).subject == "agent-7"


def raw_certificate(ca_key: asyncssh.SSHKey, user_key: asyncssh.SSHKey, **fields: object) -> str:
    """A certificate made without sign_user_certificate's rules, to feed the checks bad ones."""
    defaults: dict[str, object] = {
        "key_id": key_id(IDENTITY),
        "principals": ["agent-7"],
        "valid_after": int(time.time()) - 30,
        "valid_before": int(time.time()) + 600,
    }
    defaults.update(fields)
    certificate = ca_key.generate_user_certificate(user_key, **defaults)  # type: ignore[arg-type]
    return certificate.export_certificate().decode()


def test_principals_must_be_exactly_the_subject(user_key: asyncssh.SSHKey) -> None:
    ca_key = asyncssh.generate_private_key("ssh-ed25519")
    ca = SshCertificateAuthority(ca_key)
    for principals in (["agent-9"], [], ["agent-7", "root"]):
        with pytest.raises(WrongPrincipal, match="not exactly its identity's subject 'agent-7'"):
            ca.identity_from_certificate(raw_certificate(ca_key, user_key, principals=principals))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agent-7", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"v":2,"iss":"i","sub":"s","groups":[]}', "version 2"),
        ('{"v":1,"iss":"i","groups":[]}', "'sub'"),
        ('{"v":1,"iss":"","sub":"s","groups":[]}', "'iss'"),
        ('{"v":1,"iss":"i","sub":"s","groups":"admins"}', "'groups'"),
        ('{"v":1,"iss":"i","sub":"s","groups":[1]}', "'groups'"),
        ('{"v":1,"iss":"i","sub":"s","groups":[],"owner":"x"}', "unknown fields: owner"),
        ('{"v":1,"iss":"i","sub":"s","groups":[],"jti":5}', "'jti'"),
    ],
)
def test_bad_key_ids_are_refused(user_key: asyncssh.SSHKey, text: str, message: str) -> None:
    ca_key = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(BadKeyId, match=message):
        SshCertificateAuthority(ca_key).identity_from_certificate(
            raw_certificate(ca_key, user_key, key_id=text, principals=["s"])
        )


def test_host_certificates_and_garbage_are_refused(
    ca: SshCertificateAuthority, user_key: asyncssh.SSHKey
) -> None:
    ca_key = asyncssh.generate_private_key("ssh-ed25519")
    host_certificate = ca_key.generate_host_certificate(
        user_key, key_id(IDENTITY), principals=["agent-7"], valid_before=int(time.time()) + 600
    ).export_certificate()
    with pytest.raises(NotAUserCertificate, match="host certificate"):
        SshCertificateAuthority(ca_key).identity_from_certificate(host_certificate)
    for garbage in (b"", b"ssh-ed25519-cert-v01@openssh.com AAAA", public_line(user_key).encode()):
        with pytest.raises(InvalidCertificate, match="not a valid OpenSSH certificate"):
            ca.identity_from_certificate(garbage)
    # A signature that does not verify: the signed key id changed to another subject.
    certificate = ca.sign_user_certificate(IDENTITY, user_key).certificate
    kind, body = certificate.split()[:2]
    blob = base64.b64decode(body)
    forged = blob.replace(b'"sub":"agent-7"', b'"sub":"agent-8"')
    assert forged != blob
    with pytest.raises(InvalidCertificate, match="not a valid OpenSSH certificate"):
        ca.identity_from_certificate(f"{kind} {base64.b64encode(forged).decode()}")
    assert ca.identity_from_certificate(f"{kind} {body}").subject == "agent-7"


def test_key_id_round_trip_and_certificate_errors_are_401() -> None:
    assert identity_from_key_id(key_id(IDENTITY)) == Identity(
        "agent-7", "https://issuer.example/", ("sre", "db-readers"), "ci-runner", "jti-123"
    )
    assert issubclass(InvalidCertificate, Unauthorized)
    assert InvalidCertificate("x").status == 401


# ---------------------------------------------------------------- OpenSSH accepts them


def test_openssh_accepts_the_certificates_against_an_sshd_trusting_the_ca(tmp_path: Path) -> None:
    ca = SshCertificateAuthority(asyncssh.generate_private_key("ssh-ed25519"))
    ca_file = tmp_path / "user_ca.pub"
    ca_file.write_text(ca.public_key_line() + "\n")
    agent_key = asyncssh.generate_private_key("ssh-ed25519")
    with sshd_helpers.running_sshd(
        tmp_path / "sshd", extra_config=[f"TrustedUserCAKeys {ca_file}", "AuthorizedKeysFile none"]
    ) as target:
        key_file = tmp_path / "agent"
        key_file.touch(mode=0o600)
        key_file.write_bytes(agent_key.export_private_key())
        identity = Identity(target.user, "https://issuer.example/", ("sre",))
        cert_file = tmp_path / "agent-cert.pub"
        cert_file.write_text(ca.sign_user_certificate(identity, agent_key).certificate + "\n")
        argv = target.ssh_command("echo", "certified")
        argv[argv.index(str(target.client_key_file))] = str(key_file)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "certified"
        assert '"sub":"' + target.user + '"' in target.log_file.read_text()  # sshd logs the key id
        # Signed for another principal: sshd refuses it too.
        cert_file.write_text(
            ca.sign_user_certificate(Identity("agent-7", "https://issuer.example/"), agent_key).certificate
        )
        refused = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        assert refused.returncode == 255


# ---------------------------------------------------------------- keys: local files and Secrets Manager


def test_local_keys_are_made_once_private_and_load(tmp_path: Path) -> None:
    settings = make_local_keys(tmp_path)
    ca_file = Path(settings.ca_key.removeprefix("file:"))
    host_file = Path(settings.host_key.removeprefix("file:"))
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(host_file.stat().st_mode) == 0o600
    before = ca_file.read_bytes(), host_file.read_bytes()
    assert make_local_keys(tmp_path) == settings
    assert (ca_file.read_bytes(), host_file.read_bytes()) == before  # kept across starts
    ca = load_ca(settings)
    assert (tmp_path / "ssh-ca-key.pub").read_text().split()[:2] == ca.public_key_line().split()
    host = load_host_key(settings)
    assert host_key_line(host) == " ".join((tmp_path / "ssh-host-key.pub").read_text().split()[:2])
    assert host_key_line(host) != ca.public_key_line()


@pytest.fixture
def secrets_manager(restore_env: None) -> Iterator[None]:
    os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        aws.reset_clients()
        yield
    aws.reset_clients()


def test_keys_from_secrets_manager(secrets_manager: None) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    ca_key = asyncssh.generate_private_key("ssh-ed25519")
    ca_arn = client.create_secret(Name="wardgate/ssh-ca", SecretString=ca_key.export_private_key().decode())[
        "ARN"
    ]
    client.create_secret(Name="wardgate/ssh-host", SecretString="not a key at all: s3cr3t-value")
    os.environ.update(SSH_CA_KEY=ca_arn, SSH_HOST_KEY="wardgate/ssh-host")
    assert load_ca().public_key_line() == host_key_line(ca_key)
    with pytest.raises(ServiceUnavailable, match="host key is not an unencrypted OpenSSH private key") as bad:
        load_host_key()
    assert "s3cr3t" not in str(bad.value)
    with pytest.raises(ServiceUnavailable, match="SSH CA key unavailable"):
        load_ca(SshSettings(ca_key="wardgate/no-such-secret"))
    with pytest.raises(ServiceUnavailable, match="SSH_CA_KEY is not set"):
        load_ca(SshSettings())
    with pytest.raises(ServiceUnavailable, match="SSH_HOST_KEY is not set"):
        load_host_key(SshSettings())


def test_a_checking_only_ca_from_the_public_key_line(user_key: asyncssh.SSHKey) -> None:
    ca = SshCertificateAuthority(asyncssh.generate_private_key("ssh-ed25519"))
    checker = load_ca(SshSettings(ca_public_key=ca.public_key_line()))
    signed = ca.sign_user_certificate(IDENTITY, user_key)
    assert checker.identity_from_certificate(signed.certificate).subject == "agent-7"
    assert checker.public_key_line() == ca.public_key_line()
    with pytest.raises(ServiceUnavailable, match="only checks certificates"):
        checker.sign_user_certificate(IDENTITY, user_key)
    other = SshCertificateAuthority(asyncssh.generate_private_key("ssh-ed25519"))
    with pytest.raises(WrongCertificateAuthority):
        checker.identity_from_certificate(other.sign_user_certificate(IDENTITY, user_key).certificate)
    with pytest.raises(ServiceUnavailable, match="SSH_CA_PUBLIC_KEY is not an OpenSSH public key line"):
        load_ca(SshSettings(ca_public_key="nonsense"))
