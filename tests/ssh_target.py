"""A throwaway OpenSSH server for the SSH gateway's tests: Debian's sshd on a free port of 127.0.0.1.

Each server has its own folder: an ed25519 host key, an authorized_keys file holding a generated
client key, and a config (``sshd -D -e -f``) that logs in the current user (root in CI:
``PermitRootLogin prohibit-password``) by key only, with ``internal-sftp``. Nothing of the
machine's own sshd is read or started. scripts/services (need ``ssh``) installs openssh-server.

Use ``running_sshd(folder)`` directly, or the ``ssh_target`` fixture (module scope): import
``ssh_target_fixture`` into the test module and take a parameter ``ssh_target: SshTarget``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # Debian's sshd refuses to start without it
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    host_key_line: str  # "ssh-ed25519 AAAA..." (no comment), what a known_hosts line pins
    host_key_fingerprint: str  # "SHA256:..."
    client_key_file: Path  # OpenSSH private key, unencrypted, 0600
    client_key: asyncssh.SSHKey
    known_hosts_file: Path  # "[127.0.0.1]:<port> <host_key_line>"
    folder: Path
    log_file: Path

    @property
    def client_private_key(self) -> str:
        return self.client_key.export_private_key().decode()

    def ssh_command(self, *remote: str) -> list[str]:
        """The stock ssh client's argv, straight to this server, trusting only its pinned host key."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key_file),
            "-o",
            f"UserKnownHostsFile={self.known_hosts_file}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-p",
            str(self.port),
            f"{self.user}@{self.host}",
            *remote,
        ]


def _write_private_key(path: Path, key: asyncssh.SSHKey) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        file.write(key.export_private_key())


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as conn:
            return conn.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def _config(
    folder: Path, port: int, user: str, host_key: Path, authorized_keys: Path, extra: Sequence[str]
) -> str:
    return "\n".join(
        [
            *extra,  # first: sshd keeps the first value it reads of each keyword
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key}",
            f"PidFile {folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            f"AllowUsers {user}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "StrictModes no",
            "UsePAM no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            "",
        ]
    )


@contextlib.contextmanager
def running_sshd(
    folder: Path,
    host: str = "127.0.0.1",
    extra_config: Sequence[str] = (),
    host_key: asyncssh.SSHKey | None = None,
) -> Iterator[SshTarget]:
    """sshd in ``folder``; ``extra_config`` lines come first (e.g. ``TrustedUserCAKeys <file>``);
    ``host_key``: the host key to serve with (default: a new ed25519 key)."""
    if not os.access(SSHD, os.X_OK):
        pytest.fail(f"{SSHD} is missing: run scripts/services ssh (installs openssh-server)")
    if not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwuid(os.getuid()).pw_name
    if host_key is None:
        host_key = asyncssh.generate_private_key("ssh-ed25519", comment="wardgate test target")
    client_key = asyncssh.generate_private_key("ssh-ed25519", comment="wardgate test client")
    host_key_file, client_key_file = folder / "ssh_host_ed25519_key", folder / "client_ed25519"
    _write_private_key(host_key_file, host_key)
    _write_private_key(client_key_file, client_key)
    authorized_keys = folder / "authorized_keys"
    authorized_keys.write_bytes(client_key.export_public_key())
    algorithm, data = host_key.export_public_key().decode().split()[:2]
    host_key_line = f"{algorithm} {data}"
    log_file = folder / "sshd.log"
    for _attempt in range(5):  # a free port may be taken between the probe and sshd's bind
        port = _free_port(host)
        config_file = folder / "sshd_config"
        config_file.write_text(_config(folder, port, user, host_key_file, authorized_keys, extra_config))
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config_file)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None and not _banner(host, port):
            time.sleep(0.02)
        if process.poll() is None and _banner(host, port):
            break
        process.kill()
        process.wait()
    else:
        pytest.fail(f"sshd did not start; its log:\n{log_file.read_text(errors='replace')[-4000:]}")
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[{host}]:{port} {host_key_line}\n")
    try:
        yield SshTarget(
            host=host,
            port=port,
            user=user,
            host_key_line=host_key_line,
            host_key_fingerprint=host_key.get_fingerprint("sha256"),
            client_key_file=client_key_file,
            client_key=client_key,
            known_hosts_file=known_hosts,
            folder=folder,
            log_file=log_file,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module", name="ssh_target")
def ssh_target_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshTarget]:
    folder = tmp_path_factory.mktemp("sshd")
    with running_sshd(folder) as target:
        yield target
    shutil.rmtree(folder, ignore_errors=True)
