"""POST /ssh/certificate on the local stack, and the agent's CLI (``wardgate ssh login``,
``wardgate ssh-config``) against it, checked by OpenSSH itself: ``ssh-keygen -L`` reads the
certificate, ``ssh -G`` reads the Host block, and the stock ssh client logs in with them to a real
sshd that trusts the development CA and serves the gateway's host key."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest

from tests.helpers import index_entries, register_agent
from tests.ssh_target import running_sshd
from wardgate import cli
from wardgate.dev.stack import DevStack

AGENT_KEY = asyncssh.generate_private_key("ssh-ed25519")
AGENT_PUBLIC = AGENT_KEY.export_public_key().decode().strip()


def post(client: httpx.Client, token: str | None, body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return client.post("/ssh/certificate", headers=headers, content=json.dumps(body).encode())


def keygen_listing(certificate: str, folder: Path) -> str:
    path = folder / "agent-cert.pub"
    path.write_text(certificate + "\n")
    done = subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True)
    return done.stdout


def dev_host_key_line(stack: DevStack) -> str:
    return " ".join((stack.state_dir / "ssh-host-key.pub").read_text().split()[:2])


def test_the_route_issues_certificates_to_agents_and_refuses_the_rest(
    stack: DevStack, client: httpx.Client, tmp_path: Path
) -> None:
    assert stack.issuer is not None
    token = stack.issuer.mint("agent-1", ["ci", "sre"], ttl=600)
    before = int(time.time())
    answer = post(client, token, {"public_key": AGENT_PUBLIC})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["principal"] == "agent-1"
    assert body["host_key"] == body["known_hosts"] == dev_host_key_line(stack)
    assert before - 31 <= body["valid_after"] <= before - 29
    assert before + 590 <= body["valid_before"] <= before + 601  # the token's expiry, not 1 h
    listing = keygen_listing(body["certificate"], tmp_path)
    assert "user certificate" in listing and f"Serial: {body['serial']}" in listing
    key_id = re.search(r'Key ID: "(.*)"', listing)
    assert key_id is not None and json.loads(key_id.group(1)) == json.loads(body["key_id"])
    assert json.loads(body["key_id"])["sub"] == "agent-1"
    assert json.loads(body["key_id"])["groups"] == ["ci", "sre"]
    ca_line = (stack.state_dir / "ssh-ca-key.pub").read_text().split()
    ca_fingerprint = asyncssh.import_public_key(" ".join(ca_line[:2])).get_fingerprint("sha256")
    assert f"Signing CA: ED25519 {ca_fingerprint}" in listing
    certificate = asyncssh.import_certificate(body["certificate"])
    assert certificate.key.public_data == AGENT_KEY.public_data

    # Bad keys and bodies: 400 with the reason; nothing signed.
    for bad, message in (
        ({"public_key": "ssh-ed25519 AAAAnope"}, "not a valid OpenSSH public key"),
        ({"public_key": "ssh-dss AAAAB3NzaC1kc3M"}, "has type 'ssh-dss'"),
        ({"public_key": AGENT_PUBLIC, "principals": ["root"]}, "exactly one field, public_key"),
        ([AGENT_PUBLIC], "exactly one field, public_key"),
        ({"public_key": 7}, "must be a string"),
    ):
        refused = post(client, token, bad)
        assert refused.status_code == 400, refused.text
        assert message in refused.json()["error"]["message"]
    not_json = client.post("/ssh/certificate", headers={"authorization": f"Bearer {token}"}, content=b"{")
    assert not_json.status_code == 400 and "must be JSON" in not_json.json()["error"]["message"]

    # No token, a bad one, an expired one: 401, whatever the body.
    assert post(client, None, {"public_key": AGENT_PUBLIC}).json()["error"]["code"] == "missing_token"
    assert post(client, "not-a-token", {"public_key": AGENT_PUBLIC}).status_code == 401
    expired = stack.issuer.mint("agent-1", ["ci"], ttl=-120)
    late = post(client, expired, {"public_key": AGENT_PUBLIC})
    assert late.status_code == 401 and "expired" in late.json()["error"]["message"]

    # A registered agent gets one until it is revoked; then 403.
    register_agent(stack, "agent-2", "alice@example.com")
    agent_token = stack.issuer.mint("agent-2", ["ci"])
    assert post(client, agent_token, {"public_key": AGENT_PUBLIC}).status_code == 200
    assert cli.main(["revoke", "--subject", "agent-2", "--reason", "key leaked", "--by", "root"]) == 0
    time.sleep(0.6)  # the registry's cache (0.5 s) bounds how long a revocation takes
    revoked = post(client, agent_token, {"public_key": AGENT_PUBLIC})
    assert revoked.status_code == 403 and revoked.json()["error"]["code"] == "agent_revoked"

    # Every issuance and every refused caller is in the audit trail, under _admin.
    audited = [e for e in index_entries() if e["method"] == "ssh certificate"]
    issued = [e for e in audited if e["outcome"] == "admin"]
    refusals = {e["error"] for e in audited if e["outcome"] == "refused"}
    assert {e["subject"] for e in issued} == {"agent-1", "agent-2"}
    assert {"missing_token", "malformed_token", "agent_revoked"} <= refusals


def ssh_config_values(config_file: Path, alias: str) -> dict[str, str]:
    done = subprocess.run(
        ["ssh", "-G", "-F", str(config_file), alias], capture_output=True, text=True, check=True
    )
    return {key: value for key, _, value in (line.partition(" ") for line in done.stdout.splitlines())}


def test_ssh_login_and_ssh_config_get_the_stock_ssh_client_in(
    stack: DevStack, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.issuer is not None
    key = tmp_path / "keys" / "agent"
    monkeypatch.delenv("WARDGATE_TOKEN", raising=False)
    assert cli.main(["ssh", "login", "--key", str(key), "--url", stack.url]) == 1
    assert "no token: set WARDGATE_TOKEN or pass --token-file" in capsys.readouterr().err
    monkeypatch.setenv("WARDGATE_TOKEN", "not-a-token")
    assert cli.main(["ssh", "login", "--key", str(key), "--url", stack.url]) == 1
    err = capsys.readouterr().err
    assert "the gateway refused the certificate (401)" in err and "made a new ed25519 key" in err

    token_file = tmp_path / "token"
    token_file.write_text(stack.issuer.mint("agent-1", ["ci"]) + "\n")
    login = ["ssh", "login", "--key", str(key), "--url", stack.url, "--token-file", str(token_file)]
    assert cli.main(login) == 0
    out = capsys.readouterr()
    assert "certificate for agent-1 written to" in out.out and "made a new" not in out.err
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    cert_file = key.with_name("agent-cert.pub")
    certificate = asyncssh.import_certificate(cert_file.read_text())
    assert certificate.key.public_data == asyncssh.read_private_key(key).public_data
    first_key = key.read_bytes()
    # A second login keeps the key and renews the certificate.
    assert cli.main(login) == 0
    capsys.readouterr()
    assert key.read_bytes() == first_key

    # The dev stack does not run an SSH listener here: ssh-config needs its address, and says so.
    assert cli.main(["ssh-config", "--connection", "root", "--key", str(key)]) == 2
    assert "pass --gateway-host" in capsys.readouterr().err
    assert cli.main(["ssh-config", "--connection", "Bad Name", "--key", str(key), "--gateway-host", "h"]) == 2
    assert "must match" in capsys.readouterr().err

    # Stand-in for the gateway: a real sshd serving the dev host key and trusting the dev CA, with
    # agent-1 as a principal of its login user (the gateway's own listener is tests/test_ssh_gateway.py).
    ca_file = stack.state_dir / "ssh-ca-key.pub"
    principals = tmp_path / "principals"
    principals.write_text("agent-1\n")
    host_key = asyncssh.read_private_key(stack.state_dir / "ssh-host-key")
    extra = [
        f"TrustedUserCAKeys {ca_file}",
        f"AuthorizedPrincipalsFile {principals}",
        "AuthorizedKeysFile none",
    ]
    with running_sshd(tmp_path / "sshd", extra_config=extra, host_key=host_key) as gateway:
        config_file = tmp_path / "wardgate.conf"
        argv = ["ssh-config", "--connection", gateway.user, "--host-alias", "prod-web", "--key", str(key)]
        argv += ["--gateway-host", gateway.host, "--gateway-port", str(gateway.port), "-o", str(config_file)]
        assert cli.main(argv) == 0
        capsys.readouterr()
        known_hosts = key.with_name("agent-known_hosts")
        values = ssh_config_values(config_file, "prod-web")
        assert (values["hostname"], values["port"], values["user"]) == (
            gateway.host,
            str(gateway.port),
            gateway.user,
        )
        assert values["certificatefile"] == str(cert_file)
        assert values["identityfile"] == str(key)
        assert values["userknownhostsfile"] == str(known_hosts)
        assert values["stricthostkeychecking"] == "true"
        assert (values["forwardagent"], values["forwardx11"]) == ("no", "no")
        assert known_hosts.read_text() == f"[{gateway.host}]:{gateway.port} {dev_host_key_line(stack)}\n"

        done = subprocess.run(
            ["ssh", "-F", str(config_file), "-o", "BatchMode=yes", "prod-web", "echo", "via-certificate"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert done.returncode == 0, done.stderr + gateway.log_file.read_text()[-2000:]
        assert done.stdout.strip() == "via-certificate"
        # Without the certificate the key alone gets nowhere (sshd has no authorized_keys).
        cert_file.rename(tmp_path / "set-aside")
        refused = subprocess.run(
            ["ssh", "-F", str(config_file), "-o", "BatchMode=yes", "prod-web", "true"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert refused.returncode == 255


def test_connections_put_takes_an_ssh_host_key(stack: DevStack, capsys: pytest.CaptureFixture[str]) -> None:
    host_key = " ".join(AGENT_PUBLIC.split()[:2])
    argv = ["connections", "put", "--name", "web-1", "--kind", "ssh", "--upstream", "ssh://deploy@10.0.0.5"]
    assert cli.main([*argv, "--secret", "wardgate/web-1"]) == 2
    assert "must pin its target's host key" in capsys.readouterr().err
    assert cli.main([*argv, "--secret", "wardgate/web-1", "--host-key", host_key, "--group", "sre"]) == 0
    capsys.readouterr()
    assert cli.main(["connections", "ls"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (web,) = [c for c in listed if c["name"] == "web-1"]
    assert (web["kind"], web["host_key"]) == ("ssh", host_key)
    assert all("host_key" not in c for c in listed if c["kind"] != "ssh")


def test_the_api_refuses_when_the_ssh_ca_is_not_configured(
    stack: DevStack, client: httpx.Client, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wardgate import ssh_certificates

    monkeypatch.setenv("SSH_CA_KEY", "")
    ssh_certificates.ssh_certificate_api.cache_clear()
    answer = post(client, token, {"public_key": AGENT_PUBLIC})
    assert answer.status_code == 503 and "SSH_CA_KEY is not set" in answer.json()["error"]["message"]
    monkeypatch.setenv("SSH_CA_KEY", f"file:{stack.state_dir / 'ssh-ca-key'}")
    monkeypatch.setenv("SSH_HOST_PUBLIC_KEY", "garbage")
    ssh_certificates.ssh_certificate_api.cache_clear()
    answer = post(client, token, {"public_key": AGENT_PUBLIC})
    assert answer.status_code == 503 and "SSH_HOST_PUBLIC_KEY is not an OpenSSH" in answer.text
    ssh_certificates.ssh_certificate_api.cache_clear()


def test_the_gateway_endpoint_setting_and_its_known_hosts_line() -> None:
    from wardgate.errors import ServiceUnavailable
    from wardgate.ssh_certificates import GatewayEndpoint

    line = " ".join(AGENT_PUBLIC.split()[:2])
    env = {"SSH_HOST_PUBLIC_KEY": AGENT_PUBLIC}  # a comment after the key is dropped
    assert GatewayEndpoint.from_env(env).known_hosts() == line
    assert GatewayEndpoint.from_env(
        {**env, "SSH_GATEWAY_ENDPOINT": "ssh.example.com:2222"}
    ).known_hosts() == (f"[ssh.example.com]:2222 {line}")
    default_port = GatewayEndpoint.from_env({**env, "SSH_GATEWAY_ENDPOINT": "ssh.example.com"})
    assert (default_port.port, default_port.known_hosts()) == (22, f"ssh.example.com {line}")
    for bad in ("ssh.example.com:99999", "user@host", "host/path", ":22"):
        with pytest.raises(ServiceUnavailable, match="must be host"):
            GatewayEndpoint.from_env({**env, "SSH_GATEWAY_ENDPOINT": bad})
    with pytest.raises(ServiceUnavailable, match="SSH_HOST_PUBLIC_KEY is not set"):
        GatewayEndpoint.from_env({})
