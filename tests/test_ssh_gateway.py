"""SSH through the TCP gateway: Debian's OpenSSH client and asyncssh through the SSH listener to a
real throwaway sshd (tests/sshd.py). Authentication (token as password and
keyboard-interactive), exec allowed, refused (the target sees nothing), masked and recorded, what
is not served (shells, ptys, SFTP, scp, forwarding), revocation mid-session, bad input."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests import ssh_target as sshd_helpers
from tests.helpers import apply_policy_now, recorded_events, register_agent
from wardgate import aws
from wardgate.connections import Connection, ConnectionStore
from wardgate.dev.stack import DEV_POLICY, DevStack


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd_helpers.SshTarget]:
    with sshd_helpers.running_sshd(tmp_path_factory.mktemp("sshd")) as target:
        yield target


CONNECTION = "box"
IMPOSTOR = "box-impostor"  # the same target, pinned with another host key
SSH_POLICY: dict[str, Any] = {
    **DEV_POLICY,
    "rules": [
        *DEV_POLICY["rules"],
        {
            "name": "agents may look around the box",
            "effect": "allow",
            "connections": [CONNECTION, IMPOSTOR],
            "identity": {"groups": ["ci"]},
            "match": {
                "shell": {
                    "programs": [
                        "echo",
                        "cat",
                        "printf",
                        "true",
                        "false",
                        "sleep",
                        "ls",
                        "kill",
                        "scp",
                        "exit",
                    ]
                }
            },
        },
        {
            "name": "nobody removes files on the box",
            "effect": "deny",
            "connections": [CONNECTION],
            "message": "removing files on the box is not allowed",
            "match": {"shell": {"programs": ["rm"]}},
        },
    ],
}


@dataclasses.dataclass
class SshGateway:
    stack: DevStack
    token: str
    target: sshd_helpers.SshTarget
    tcp: Any
    host_key_line: str
    known_hosts: Path

    @property
    def port(self) -> int:
        return int(self.tcp.port("ssh"))

    def ssh_argv(
        self, *command: str, token: str | None = None, user: str = CONNECTION
    ) -> tuple[list[str], dict[str, str]]:
        """The stock OpenSSH client's argv and environment, the token given as the password by
        SSH_ASKPASS."""
        askpass = self.known_hosts.parent / "askpass.sh"
        secret = self.known_hosts.parent / f"token-{abs(hash(token))}"
        secret.write_text(token if token is not None else self.token)
        askpass.write_text('#!/bin/sh\ncat "$WARDGATE_TEST_TOKEN_FILE"\n')
        askpass.chmod(0o700)
        argv = [
            "ssh", "-F", "/dev/null", "-p", str(self.port),
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1",
            f"{user}@127.0.0.1", *command,
        ]  # fmt: skip
        env = {
            **os.environ,
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": ":0",
            "WARDGATE_TEST_TOKEN_FILE": str(secret),
        }
        return argv, env

    def ssh(
        self, *command: str, token: str | None = None, user: str = CONNECTION, timeout: float = 20
    ) -> subprocess.CompletedProcess[bytes]:
        argv, env = self.ssh_argv(*command, token=token, user=user)
        return subprocess.run(argv, env=env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    async def client(self, token: str | None = None, user: str = CONNECTION) -> asyncssh.SSHClientConnection:
        return await asyncssh.connect(
            "127.0.0.1", self.port, username=user, password=token if token is not None else self.token,
            known_hosts=([asyncssh.import_public_key(self.host_key_line)], [], []),
            client_keys=[], agent_path=None, config=[], preferred_auth="password",
        )  # fmt: skip

    def services(self) -> Any:
        return self.tcp.services


@pytest.fixture
def gw(stack: DevStack, token: str, sshd: sshd_helpers.SshTarget, tmp_path: Path) -> Iterator[SshGateway]:
    from wardgate.config import Settings
    from wardgate.sshca import host_key_line, load_host_key, make_local_keys
    from wardgate.tcp.config import Listener, SessionLimits, TcpSettings
    from wardgate.tcp.server import GatewayThread, build_services

    keys = make_local_keys(tmp_path / "keys")
    os.environ.update({"SSH_HOST_KEY": keys.host_key, "SSH_CA_KEY": keys.ca_key})
    aws.client("secretsmanager").create_secret(
        Name=f"wardgate/{CONNECTION}",
        SecretString=json.dumps({"type": "ssh_key", "private_key": sshd.client_private_key}),
    )
    ConnectionStore(os.environ["CONNECTIONS_TABLE"]).put(
        Connection(
            CONNECTION,
            "ssh",
            f"ssh://{sshd.user}@{sshd.host}:{sshd.port}",
            f"wardgate/{CONNECTION}",
            allowed_groups=("ci",),
            host_key=sshd.host_key_fingerprint,
        )
    )
    other_key = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")
    ConnectionStore(os.environ["CONNECTIONS_TABLE"]).put(
        Connection(
            IMPOSTOR,
            "ssh",
            f"ssh://{sshd.user}@{sshd.host}:{sshd.port}",
            f"wardgate/{CONNECTION}",
            allowed_groups=("ci",),
            host_key=other_key,
        )
    )
    apply_policy_now(stack, SSH_POLICY)
    settings = TcpSettings(
        listeners=(Listener("ssh", 0, "127.0.0.1"),),
        health_port=None,
        limits=SessionLimits(startup_timeout_s=1.5),  # an unfinished login is dropped after it
    )
    tcp = GatewayThread(lambda: build_services(Settings.from_env(), settings), settings).start()
    line = host_key_line(load_host_key())
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{tcp.port('ssh')} {line}\n")
    yield SshGateway(stack, token, sshd, tcp, line, known_hosts)
    tcp.stop()


def _events(kind: str | None = None) -> list[dict[str, Any]]:
    events = [e for e in recorded_events() if e.get("protocol") == "ssh"]
    return [e for e in events if kind is None or e["event"] == kind]


def _last(kind: str) -> dict[str, Any]:
    """The latest event of ``kind``, waiting for it: results and ends are queued as the client is
    answered, so they may land just after it returns."""
    deadline = time.monotonic() + 5
    while not _events(kind) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _events(kind)[-1]


def _target_log(gw: SshGateway) -> str:
    return gw.target.log_file.read_text(errors="replace")


# ---------------------------------------------------------------------------------------------------
# exec


def test_openssh_runs_an_allowed_command_masked_and_recorded(gw: SshGateway):
    result = gw.ssh("echo", "hello; echo card 4242424242424242 >&2; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == b"hello\n"
    assert b"card " in result.stderr and b"4242424242424242" not in result.stderr
    command = _events("command")[-1]
    assert command["operation"]["commands"][0]["program"] == "echo"
    assert command["decision"]["outcome"] == "allow"
    outcome = _last("command_result")
    assert outcome["exit_status"] == 3 and outcome["command_seq"] == command["seq"]
    assert "hello" in outcome["output"] and "4242424242424242" not in outcome["output"]
    assert outcome["masked"]
    start, end = _last("session_start"), _last("session_end")
    assert start["identity"]["subject"] == "agent-1" and end["commands"] == 1


def test_a_refused_command_never_reaches_the_target(gw: SshGateway):
    before = _target_log(gw).count("Accepted publickey")
    result = gw.ssh("rm", "-rf", "/tmp/nothing")
    assert result.returncode == 126
    assert b"removing files on the box is not allowed" in result.stderr and b"record " in result.stderr
    assert _target_log(gw).count("Accepted publickey") == before  # it never logged in there
    refused = _events("command_refused")[-1]
    assert refused["error"]["code"] == "denied_by_policy"
    assert refused["operation"]["commands"][0]["program"] == "rm"
    # a wrapped command is unwrapped: bash -c 'rm ...' is rm
    wrapped = gw.ssh("sh -c 'rm -rf /tmp/x'")
    assert wrapped.returncode == 126 and b"not allowed" in wrapped.stderr


def test_commands_are_refused_while_they_cannot_be_recorded(gw: SshGateway):
    """Fail closed: with the recording stream down a command does not reach the target; once the
    stream is back, commands run again on the same connection."""

    class Down:
        def put_batch(self, lines: list[bytes]) -> None:
            raise ConnectionError("firehose is down")

    marker = gw.target.folder / f"unrecorded-{time.time_ns()}"

    async def run() -> None:
        async with await gw.client() as conn:
            commit = gw.services().recorder.commit
            working, commit.stream = commit.stream, Down()
            try:
                refused = await conn.run(f"cat /dev/null > {marker}", encoding=None)
            finally:
                commit.stream = working
            assert refused.exit_status == 126 and b"cannot be recorded now" in (refused.stderr or b"")
            assert not marker.exists()
            assert (await conn.run("echo back", encoding=None)).stdout == b"back\n"

    asyncio.run(run())


def test_a_target_with_another_host_key_is_refused_before_any_login(gw: SshGateway):
    before = _target_log(gw).count("Accepted publickey")
    result = gw.ssh("echo", "hi", user=IMPOSTOR)
    assert result.returncode == 255 and result.stdout == b""
    assert b"presented a host key other than the one the connection pins" in result.stderr
    assert _target_log(gw).count("Accepted publickey") == before
    failed = _last("command_result")
    assert failed["error"]["code"] == "target_host_key_mismatch"


def test_a_login_that_never_finishes_is_dropped(gw: SshGateway):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as idle:
        assert idle.recv(64).startswith(b"SSH-2.0-wardgate")
        started = time.monotonic()
        idle.settimeout(5)
        while idle.recv(4096):  # our silence: the gateway ends the connection at its login timeout
            pass
        assert 1.0 < time.monotonic() - started < 4.0
    assert gw.ssh("echo", "served").stdout == b"served\n"


def test_protocol_garbage_is_refused_and_others_are_served(gw: SshGateway):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
        assert raw.recv(64).startswith(b"SSH-2.0-wardgate")
        raw.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)) * 4)
        raw.settimeout(5)
        while raw.recv(4096):  # the gateway closes its side
            pass
    assert gw.ssh("echo", "still here").stdout == b"still here\n"


def test_asyncssh_exec_streams_stdin_and_relays_signals(gw: SshGateway):
    async def run() -> None:
        async with await gw.client() as conn:
            done = await conn.run("cat", input=b"line one\nssn 078-05-1120\n", encoding=None)
            assert done.exit_status == 0
            assert isinstance(done.stdout, bytes)
            assert done.stdout.startswith(b"line one\n") and b"078-05-1120" not in done.stdout
            killed = await conn.run("kill -TERM $$", encoding=None)
            assert killed.exit_signal is not None and killed.exit_signal[0] == "TERM"
            unknown = await conn.run("nosuchprogram", encoding=None)
            assert unknown.exit_status == 126

    asyncio.run(run())


def test_a_command_needing_approval_runs_once_after_it_is_approved(gw: SshGateway, client: Any):
    from tests.approval_helpers import link_in, mail_to, press, wait_for_mail, wait_status

    rule = {
        "name": "touching files needs a human",
        "effect": "require_approval",
        "connections": [CONNECTION],
        "approvers": ["demo-approvers"],
        "message": "creating files on the box needs an on-call engineer",
        "match": {"shell": {"programs": ["touch"]}},
    }
    apply_policy_now(gw.stack, {**SSH_POLICY, "rules": [*SSH_POLICY["rules"], rule]})
    marker = gw.target.folder / f"approved-{time.time_ns()}"
    held = gw.ssh("touch", str(marker))
    assert held.returncode == 126 and not marker.exists()
    message = held.stderr.decode()
    assert "needs approval: request" in message and "/requests/" in message and "on-call engineer" in message
    request_id = message.split("request ")[1].split(" ")[0]
    poll_url = message.split("(")[1].split(")")[0]
    mail = mail_to(wait_for_mail(client, 2), "oncall@example.com")
    assert request_id in mail["text"] and "touch" in mail["text"]
    assert press(client, link_in(mail, gw.stack)).status_code == 200
    wait_status(client, poll_url, {"Authorization": f"Bearer {gw.token}"}, "approved")

    ran = gw.ssh("touch", str(marker))  # the identical command runs, once
    assert ran.returncode == 0, ran.stderr
    assert marker.exists()
    assert _events("command")[-1]["decision"]["approval"] == request_id
    again = gw.ssh("touch", str(marker))
    assert again.returncode == 126 and request_id not in again.stderr.decode()  # spent: a new request
    other = gw.ssh("touch", f"{marker}-other")  # another command needs its own approval
    assert other.returncode == 126 and request_id not in other.stderr.decode()


def test_large_and_binary_output_passes_whole_and_masked(gw: SshGateway):
    """4 MiB through the relay: bytes that are not UTF-8 arrive unchanged, a card number placed
    across the relay's 64 KiB reads is masked all the same, nothing is lost or reordered."""
    card = b"4242424242424242"
    filler = bytes(range(256)) * 256  # 64 KiB of every byte value, invalid UTF-8 included
    blob = filler[: 65536 - 8] + b" " + card + b" " + filler * 63
    source = gw.target.folder / "blob.bin"
    source.write_bytes(blob)

    async def run() -> bytes:
        async with await gw.client() as conn:
            done = await conn.run(f"cat {source}", encoding=None)
            assert done.exit_status == 0
            assert isinstance(done.stdout, bytes)
            return done.stdout

    out = asyncio.run(run())
    assert card not in out
    start = out.index(b" ", 65536 - 16) + 1
    assert out[:start] == blob[:start]  # everything before the value, byte for byte
    tail = blob[blob.index(card) + len(card) :]
    assert out.endswith(tail)  # and everything after it
    result = _last("command_result")
    assert result["output_bytes"] == len(blob) and result["masked"]
    assert len(result["output"]) <= 16 * 1024 + len("…[cut]")


# ---------------------------------------------------------------------------------------------------
# what is not served


def test_shells_ptys_sftp_scp_and_forwarding_are_refused(gw: SshGateway):
    async def run() -> None:
        async with await gw.client() as conn:
            shell = await conn.run(None, encoding=None) if False else await conn.create_process(encoding=None)
            shell.stdin.write_eof()
            out = await shell.wait()
            assert out.exit_status == 126 and b"interactive shells are not allowed" in (out.stderr or b"")
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_connection(asyncssh.SSHTCPSession, gw.target.host, gw.target.port)
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)
            with pytest.raises(asyncssh.Error):
                async with conn.start_sftp_client():
                    pass
            scp = await conn.run("scp -f /etc/hostname", encoding=None)
            assert scp.exit_status == 126 and b"scp is not served" in (scp.stderr or b"")
            pty = await conn.run("true", term_type="xterm", encoding=None)
            assert pty.exit_status == 126 and b"ptys are not allowed" in (pty.stderr or b"")

    asyncio.run(run())
    assert _events("channel_refused")
    argv, env = gw.ssh_argv("echo", "no pty")
    argv.insert(1, "-tt")  # no policy grants ptys here: the command with one is refused
    with_tty = subprocess.run(argv, env=env, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert with_tty.returncode == 126 and b"ptys are not allowed" in with_tty.stdout + with_tty.stderr
    assert b"no pty" not in with_tty.stdout


def test_a_granted_terminal_is_relayed_and_recorded_as_asciicast(gw: SshGateway):
    grant = {
        "name": "agents may open terminals on the box",
        "effect": "allow",
        "connections": [CONNECTION],
        "identity": {"groups": ["ci"]},
        "match": {"shell": {"features": ["interactive_shell", "pty"]}},
    }
    apply_policy_now(gw.stack, {**SSH_POLICY, "rules": [*SSH_POLICY["rules"], grant]})

    async def run() -> tuple[bytes, int | None]:
        async with await gw.client() as conn:
            shell = await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
            shell.stdin.write(b"echo READY$((6*7))\n")
            out = b""
            while b"READY42" not in out:  # the shell runs on the target: now resize it
                out += await asyncio.wait_for(shell.stdout.read(4096), 10)
            shell.change_terminal_size(100, 30)
            shell.stdin.write(b"stty size; echo card 4242424242424242; exit 7\n")
            while True:
                chunk = await asyncio.wait_for(shell.stdout.read(4096), 10)
                if not chunk:
                    break
                out += chunk
            done = await shell.wait()
            return out, done.exit_status

    out, status = asyncio.run(run())
    assert status == 7
    assert b"30 100" in out and b"4242424242424242" not in out
    start, end = _last("terminal_start"), _last("terminal_end")
    assert (start["width"], start["height"], start["term"], start["command"]) == (80, 24, "xterm", None)
    assert end["exit_status"] == 7 and end["channel"] == start["channel"]
    frames = [f for e in _events("terminal_output") for f in e["frames"]]
    codes = {code for _, code, _ in frames}
    assert {"o", "i", "r"} <= codes and ["r", "100x30"] in [f[1:] for f in frames]
    assert all("4242424242424242" not in data for _, _, data in frames)  # input and output masked
    assert _events("command")[-1]["operation"]["features"] == ["interactive_shell"]
    from wardgate.auditing.export import to_asciicast

    record = [e for e in _events() if e["record_id"] == start["record_id"]]
    cast = [json.loads(line) for line in to_asciicast(record).splitlines()]
    assert cast[0]["version"] == 2 and (cast[0]["width"], cast[0]["height"]) == (80, 24)
    played = "".join(data for _, code, data in cast[1:] if code == "o")
    assert "30 100" in played and "4242424242424242" not in played


# ---------------------------------------------------------------------------------------------------
# authentication


def test_bad_logins_are_refused_with_their_reason(gw: SshGateway):
    bad = gw.ssh("true", token="not-a-token")
    assert bad.returncode == 255 and b"wardgate:" in bad.stderr
    unknown = gw.ssh("true", user="no-such-connection")
    assert unknown.returncode == 255 and b"no-such-connection" in unknown.stderr
    assert gw.stack.issuer is not None
    outsider = gw.stack.issuer.mint("agent-9", ["strangers"])
    denied = gw.ssh("true", token=outsider)
    assert denied.returncode == 255 and b"none of the groups" in denied.stderr
    codes = {e["error"]["code"] for e in _events("session_refused")}
    assert {"denied_by_policy"} <= codes and len(codes) >= 2


def test_keyboard_interactive_takes_the_token(gw: SshGateway):
    async def run() -> None:
        async with asyncssh.connect(
            "127.0.0.1", gw.port, username=CONNECTION, password=gw.token,
            known_hosts=([asyncssh.import_public_key(gw.host_key_line)], [], []),
            client_keys=[], agent_path=None, config=[], preferred_auth="keyboard-interactive",
        ) as conn:  # fmt: skip
            done = await conn.run("echo ok", encoding=None)
            assert done.stdout == b"ok\n"

    asyncio.run(run())


def _certificate(gw: SshGateway, sign: Any, name: str) -> tuple[Path, Path]:
    """A fresh user key and the certificate ``sign(public key line)`` returns, as OpenSSH files."""
    folder = gw.known_hosts.parent
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_file, cert_file = folder / name, folder / f"{name}-cert.pub"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.export_private_key())
    cert_file.write_text(sign(key.export_public_key().decode()) + "\n")
    return key_file, cert_file


def _ssh_with_certificate(gw: SshGateway, key_file: Path, cert_file: Path, *command: str) -> Any:
    argv = [
        "ssh", "-F", "/dev/null", "-p", str(gw.port), "-i", str(key_file),
        "-o", f"CertificateFile={cert_file}", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={gw.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "PreferredAuthentications=publickey",
        f"{CONNECTION}@127.0.0.1", *command,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)


def test_openssh_logs_in_with_a_certificate_of_wardgates_ca(gw: SshGateway):
    from wardgate.sshca import load_ca

    identity = gw.services().gate.validator.validate(gw.token)
    authority = load_ca()
    key_file, cert_file = _certificate(
        gw, lambda pub: authority.sign_user_certificate(identity, pub).certificate, "ok"
    )
    result = _ssh_with_certificate(gw, key_file, cert_file, "echo", "by certificate")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"by certificate\n"
    assert _events("session_start")[-1]["identity"]["subject"] == "agent-1"


def test_bad_certificates_are_refused_with_their_reason(gw: SshGateway):
    from wardgate.sshca import SshCertificateAuthority, key_id, load_ca

    identity = gw.services().gate.validator.validate(gw.token)
    other_ca = SshCertificateAuthority(asyncssh.generate_private_key("ssh-ed25519"))
    ca_key = asyncssh.import_private_key(Path(os.environ["SSH_CA_KEY"].removeprefix("file:")).read_bytes())

    def foreign(pub: str) -> str:
        return other_ca.sign_user_certificate(identity, pub).certificate

    def expired(pub: str) -> str:
        return load_ca().sign_user_certificate(identity, pub, now=time.time() - 7200).certificate

    def not_yet(pub: str) -> str:
        cert = ca_key.generate_user_certificate(
            asyncssh.import_public_key(pub), key_id(identity), principals=["agent-1"],
            valid_after=int(time.time()) + 3600, valid_before=int(time.time()) + 7200,
        )  # fmt: skip
        return str(cert.export_certificate().decode())

    def another_principal(pub: str) -> str:
        cert = ca_key.generate_user_certificate(
            asyncssh.import_public_key(pub), key_id(identity), principals=["root"],
            valid_before=int(time.time()) + 600,
        )  # fmt: skip
        return str(cert.export_certificate().decode())

    for sign, reason in [
        (foreign, b"not by this gateway's SSH CA"),
        (expired, b"the certificate expired"),
        (not_yet, b"not valid before"),
        (another_principal, b"are not exactly its identity's subject"),
    ]:
        key_file, cert_file = _certificate(gw, sign, sign.__name__)
        result = _ssh_with_certificate(gw, key_file, cert_file, "echo", "no")
        assert result.returncode == 255 and result.stdout == b"", sign.__name__
        assert reason in result.stderr, (sign.__name__, result.stderr)
    plain = gw.known_hosts.parent / "plain"
    plain.touch(mode=0o600)
    plain.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    argv = [
        "ssh", "-F", "/dev/null", "-p", str(gw.port), "-i", str(plain), "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={gw.known_hosts}",
        "-o", "PreferredAuthentications=publickey", f"{CONNECTION}@127.0.0.1", "true",
    ]  # fmt: skip
    refused = subprocess.run(argv, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert refused.returncode == 255 and b"a plain public key is not accepted" in refused.stderr


def test_the_local_stack_serves_ssh(gw: SshGateway):
    """wardgate dev's own SSH listener (the test stack binds it on a free port), with the stack's
    host key, the one POST /ssh/certificate hands agents."""
    from wardgate.dev.stack import quick_start

    stack = gw.stack
    assert stack.ssh_port_bound
    local = dataclasses.replace(gw, tcp=stack.tcp)
    assert local.port == stack.ssh_port_bound != gw.port
    known = gw.known_hosts.parent / "dev_known_hosts"
    known.write_text(f"[127.0.0.1]:{local.port} {os.environ['SSH_HOST_PUBLIC_KEY']}\n")
    result = dataclasses.replace(local, known_hosts=known).ssh("echo", "dev")
    assert result.returncode == 0 and result.stdout == b"dev\n", result.stderr
    assert f"ssh -p {stack.ssh_port_bound} my-box@127.0.0.1" in quick_start(stack)


# ---------------------------------------------------------------------------------------------------
# kill switch


def test_revoking_the_agent_ends_its_session_within_a_second(gw: SshGateway):
    register_agent(gw.stack, "agent-1", "alice@example.com", CONNECTION)
    argv, env = gw.ssh_argv("sleep", "30")
    with subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as ssh:
        deadline = time.monotonic() + 10
        while not gw.services().sessions.live() or not _events("command"):
            assert time.monotonic() < deadline and ssh.poll() is None
            time.sleep(0.02)
        from wardgate import cli

        assert (
            cli.main(["revoke", "--owner", "alice@example.com", "--reason", "offboarded", "--by", "root"])
            == 0
        )
        revoked = time.monotonic()
        _, stderr = ssh.communicate(timeout=5)
        assert time.monotonic() - revoked < 1.0
    assert ssh.returncode == 255 and b"revoked" in stderr
    deadline = time.monotonic() + 3
    while not _events("session_end") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _events("session_end")[-1]["outcome"] == "ended"
    again = gw.ssh("true")
    assert again.returncode == 255 and b"revoked" in again.stderr


def test_a_session_ends_once_its_token_has_expired(gw: SshGateway):
    services = gw.services()
    services.limits = dataclasses.replace(services.limits, token_grace_s=0.0)
    services.sessions.limits = services.limits
    assert gw.stack.issuer is not None
    short = gw.stack.issuer.mint("agent-1", ["ci"], ttl=2)
    argv, env = gw.ssh_argv("sleep", "30", token=short)
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert done.returncode == 255 and b"token expired" in done.stderr
    assert time.monotonic() - started < 6
    deadline = time.monotonic() + 3
    while not _events("session_end") and time.monotonic() < deadline:  # written as the connection ends
        time.sleep(0.02)
    assert _events("session_end")[-1]["reason"].startswith("the session's token expired")


# ---------------------------------------------------------------------------------------------------
# The target's connection begun at login (target.EarlyConnection): its key exchange overlaps the
# session's admission and first decision; it logs in only for an allowed command


def _target_connections(gw: SshGateway) -> int:
    return _target_log(gw).count("Connection from 127.0.0.1")


def _logins(gw: SshGateway) -> int:
    return _target_log(gw).count("Accepted publickey")


def _wait_for(condition: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_target_connection_begins_at_login_and_logs_in_only_for_an_allowed_command(
    gw: SshGateway,
) -> None:
    connections, logins = _target_connections(gw), _logins(gw)

    async def run() -> None:
        async with await gw.client() as conn:
            # admitted, nothing asked yet: the target's key exchange has begun
            await asyncio.to_thread(_wait_for, lambda: _target_connections(gw) > connections, "a connection")
            refused = await conn.run("rm -rf /tmp/nothing", encoding=None)
            assert refused.exit_status == 126
            # meanwhile a whole other session logs in and runs: this one's connection still waits
            other = await asyncio.to_thread(gw.ssh, "echo", "other")
            assert other.stdout == b"other\n" and _logins(gw) == logins + 1
            first = await conn.run("echo first", encoding=None)  # logs in on the connection begun
            assert first.stdout == b"first\n"
            assert (_target_connections(gw), _logins(gw)) == (connections + 2, logins + 2)
            second = await conn.run("echo second", encoding=None)  # a connection of its own
            assert second.stdout == b"second\n"
            assert (_target_connections(gw), _logins(gw)) == (connections + 3, logins + 3)

    asyncio.run(run())


def test_a_session_that_asks_nothing_or_is_refused_never_logs_in_to_the_target(gw: SshGateway) -> None:
    logins = _logins(gw)
    assert gw.stack.issuer is not None
    outsider = gw.stack.issuer.mint("agent-9", ["strangers"])  # proven, but not admitted on the connection

    async def idle() -> None:
        async with await gw.client() as conn:
            await asyncio.to_thread(_wait_for, lambda: "Connection from" in _target_log(gw), "a connection")
            # while it idles, a refused session, then a whole allowed one
            assert (await asyncio.to_thread(gw.ssh, "echo", "hi", token=outsider)).returncode == 255
            assert (await asyncio.to_thread(gw.ssh, "echo", "hi")).stdout == b"hi\n"
            conn.close()

    asyncio.run(idle())
    assert _logins(gw) == logins + 1  # the allowed command's alone


def test_an_unauthenticated_client_never_causes_a_target_connection(gw: SshGateway) -> None:
    connections = _target_connections(gw)
    assert gw.ssh("echo", "hi", token="not-a-token").returncode == 255
    assert gw.ssh("echo", "hi").stdout == b"hi\n"  # by now an early connection would have shown
    assert _target_connections(gw) == connections + 1


@pytest.fixture
def aes_gcm_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDGATE_SSH_CIPHERS", "aes256-gcm@openssh.com, aes128-gcm@openssh.com")


def test_the_ciphers_offered_to_clients_can_be_narrowed(aes_gcm_only: None, gw: SshGateway) -> None:
    from wardgate.tcp.ssh.session import client_ciphers

    argv, env = gw.ssh_argv("echo", "hi")
    chosen = subprocess.run([argv[0], "-v", *argv[1:]], env=env, capture_output=True, timeout=20)
    assert chosen.stdout == b"hi\n" and b"cipher: aes128-gcm@openssh.com" in chosen.stderr
    chacha = subprocess.run(
        [argv[0], "-c", "chacha20-poly1305@openssh.com", *argv[1:]], env=env, capture_output=True, timeout=20
    )
    assert chacha.returncode == 255 and b"no matching cipher" in chacha.stderr
    os.environ["WARDGATE_SSH_CIPHERS"] = "aes256-gcm@openssh.com,rot13"
    with pytest.raises(ValueError, match="unknown ciphers rot13"):
        client_ciphers()


# ---------------------------------------------------------------------------------------------------
# the wire (tcp/ssh/wire.py)


def _kexinit() -> bytes:
    """A client's unencrypted SSH_MSG_KEXINIT packet (RFC 4253 7.1)."""
    names = [b"curve25519-sha256", b"ssh-ed25519", *[b"aes128-gcm@openssh.com"] * 2]
    names += [b"hmac-sha2-256"] * 2 + [b"none"] * 2 + [b""] * 2
    payload = bytes([20]) + os.urandom(16)
    payload += b"".join(len(n).to_bytes(4, "big") + n for n in names) + b"\x00" + bytes(4)
    pad = 8 - (5 + len(payload)) % 8
    pad += 8 if pad < 4 else 0
    return (1 + len(payload) + pad).to_bytes(4, "big") + bytes([pad]) + payload + bytes(pad)


def _unacknowledged(sock: socket.socket) -> int:
    """``tcpi_unacked`` of Linux's ``struct tcp_info``: segments sent and not yet acknowledged."""
    return int.from_bytes(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[24:28], "little")


def _acknowledged_after(port: int) -> float:
    """Seconds from sending a client's KEXINIT to the gateway's ACK of it (the gateway sent its own
    KEXINIT first, so it has nothing to send back)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.sendall(b"SSH-2.0-OpenSSH_9.2p1 test\r\n")
        received = b""
        while b"\n" not in received or len(received) < received.index(b"\n") + 5:
            received += raw.recv(65536)
        kexinit = received[received.index(b"\n") + 1 :]
        while len(kexinit) < 4 + int.from_bytes(kexinit[:4], "big"):  # the gateway's KEXINIT, whole
            kexinit += raw.recv(65536)
        time.sleep(0.05)  # whatever acknowledgement of ours was pending has left
        sent = time.monotonic()
        raw.sendall(_kexinit())
        while _unacknowledged(raw) and time.monotonic() - sent < 1:
            time.sleep(0.001)
        return time.monotonic() - sent


def test_the_gateway_acknowledges_what_it_reads_at_once(gw: SshGateway) -> None:
    """OpenSSH leaves Nagle's algorithm on: its ECDH_INIT waits until its KEXINIT is acknowledged,
    which Linux delays at least 40 ms when the reader sends nothing back. The gateway acknowledges
    at once (TCP_QUICKACK): the handshake does not stall (the best of three tries, so a busy
    machine's scheduling is not mistaken for a delayed ACK)."""
    best = min(_acknowledged_after(gw.port) for _ in range(3))
    assert best < 0.035, f"acknowledged after {best * 1000:.1f} ms (a delayed ACK: 40 ms or more)"


def _received_ignore_packets(gw: SshGateway, *, encryption: str) -> int:
    """SSH_MSG_IGNORE packets an asyncssh client received from the gateway while ``cat`` echoed
    100 KB through it (counted from asyncssh's packet log on this thread: the gateway's is another)."""
    import logging
    import threading

    counted: list[str] = []
    me = threading.get_ident()

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == me and "Received MSG_IGNORE" in record.getMessage():
                counted.append(record.getMessage())

    async def run() -> None:
        async with asyncssh.connect(
            "127.0.0.1", gw.port, username=CONNECTION, password=gw.token,
            known_hosts=([asyncssh.import_public_key(gw.host_key_line)], [], []),
            client_keys=[], agent_path=None, config=[], preferred_auth="password",
            encryption_algs=[encryption],
        ) as conn:  # fmt: skip
            assert conn.get_extra_info("recv_cipher") == encryption
            done = await conn.run("cat", input=b"x" * 100_000, encoding=None)
            assert done.exit_status == 0 and done.stdout == b"x" * 100_000

    handler = Count(logging.DEBUG)
    logger = logging.getLogger("asyncssh")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    asyncssh.set_debug_level(3)  # packets are logged at 3
    try:
        asyncio.run(run())
    finally:
        asyncssh.set_debug_level(1)
        logger.setLevel(level)
        logger.removeHandler(handler)
    return len(counted)


def test_no_ignore_packet_precedes_each_packet_under_an_aead_cipher(gw: SshGateway) -> None:
    """asyncssh sends an empty SSH_MSG_IGNORE ahead of every packet (RFC 4251's countermeasure for
    CBC); the gateway sends none under AES-GCM or ChaCha20-Poly1305, where it only doubled the
    packets, encryptions and writes of a copy."""
    from wardgate.tcp.ssh.wire import needs_ignore_packets

    assert _received_ignore_packets(gw, encryption="aes128-gcm@openssh.com") == 0
    assert _received_ignore_packets(gw, encryption="chacha20-poly1305@openssh.com") == 0
    assert not needs_ignore_packets("aes256-ctr")
    assert needs_ignore_packets("aes128-cbc") and needs_ignore_packets(None)


@pytest.fixture
def cbc_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDGATE_SSH_CIPHERS", "aes128-cbc")


def test_ignore_packets_are_kept_under_a_cbc_cipher(cbc_offered: None, gw: SshGateway) -> None:
    """Where an operator offers a CBC cipher (not by default), asyncssh's ignore packets stay."""
    assert _received_ignore_packets(gw, encryption="aes128-cbc") > 5
