"""SFTP, scp, rsync and git through the SSH listener to a real sshd (tests/ssh_target.py), by policy:
SFTP off (the default), read-only, read-write with path rules (decided on the path the target
resolves: ``..`` and symlinks cannot leave the allowed tree), each file operation recorded with the
SHA-256 of what went through; rsync and git through exec where policy allows their server commands.
Clients: Debian's sftp, scp (OpenSSH 9: SFTP underneath), rsync and git, and asyncssh's SFTP client."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import asyncssh
import pytest

from tests.helpers import apply_policy_now, register_agent
from tests.test_ssh_gateway import CONNECTION, SSH_POLICY, SshGateway, _events, _last, gw, sshd

__all__ = ["gw", "sshd"]  # the SSH listener's fixtures, shared with test_ssh_gateway.py


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """On the target (the same machine): data/ is what policy opens; outside/ is not."""
    root = tmp_path.resolve() / "target"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "outside").mkdir()
    (root / "data" / "report.bin").write_bytes(os.urandom(300_000) + b"end")
    (root / "outside" / "secret.txt").write_text("not for agents\n")
    (root / "data" / "escape").symlink_to(root / "outside" / "secret.txt")
    (root / "data" / "dangling").symlink_to(root / "outside" / "planted.txt")
    return root


def _grant(gw: SshGateway, tree: Path, *features: str) -> None:
    rule = {
        "name": f"agents may use sftp ({', '.join(features)}) in data/",
        "effect": "allow",
        "connections": [CONNECTION],
        "identity": {"groups": ["ci"]},
        "match": {"shell": {"features": list(features), "args": [f"{tree}/data", f"{tree}/data/*"]}},
    }
    apply_policy_now(gw.stack, {**SSH_POLICY, "rules": [*SSH_POLICY["rules"], rule]})
    gw.tcp.services.gate.policies._cached = None


def _openssh(
    gw: SshGateway, program: str, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """Debian's ``program`` (sftp, scp) through the gateway, the token given by SSH_ASKPASS."""
    argv, env = gw.ssh_argv()
    options = argv[1 : argv.index(f"{CONNECTION}@127.0.0.1")]
    options[options.index("-p")] = "-P"
    return subprocess.run([program, *options, *args], env=env, input=stdin, capture_output=True, timeout=30)


async def _read(remote: Any, size: int = -1, offset: int | None = None) -> bytes:
    """``remote.read`` of a file opened in binary mode (asyncssh's annotations say str)."""
    return cast(bytes, await remote.read(size, offset))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _transfers(direction: str) -> list[dict[str, Any]]:
    _last("file_transfer")
    return [e for e in _events("file_transfer") if e["direction"] == direction]


def test_sftp_is_off_unless_policy_grants_it(gw: SshGateway, tree: Path, tmp_path: Path) -> None:
    async def run() -> None:
        async with await gw.client() as conn:
            with pytest.raises(asyncssh.Error):
                async with conn.start_sftp_client():
                    pass

    asyncio.run(run())
    got = tmp_path / "got.bin"
    result = _openssh(gw, "scp", f"{CONNECTION}@127.0.0.1:{tree}/data/report.bin", str(got))
    assert result.returncode != 0 and not got.exists()
    assert b"SFTP is not served" in result.stderr
    assert _last("channel_refused")["subsystem"] == "sftp"


def test_read_only_downloads_and_nothing_else(gw: SshGateway, tree: Path, tmp_path: Path) -> None:
    _grant(gw, tree, "sftp_read")
    source = tree / "data" / "report.bin"
    before = sorted(p.name for p in (tree / "data").iterdir())

    async def run() -> bytes:
        async with await gw.client() as conn, conn.start_sftp_client() as sftp:
            assert sorted(await sftp.listdir(f"{tree}/data")) == sorted([".", "..", *before])
            async with sftp.open(f"{tree}/data/report.bin", "rb") as remote:
                data = await _read(remote)
            for refused in (
                sftp.open(f"{tree}/data/new.txt", "wb"),
                sftp.remove(f"{tree}/data/report.bin"),
                sftp.rename(f"{tree}/data/report.bin", f"{tree}/data/moved.bin"),
                sftp.mkdir(f"{tree}/data/made"),
                sftp.open(f"{tree}/outside/secret.txt", "rb"),
            ):
                with pytest.raises(asyncssh.SFTPPermissionDenied, match="wardgate: refused"):
                    await refused
        return data

    assert asyncio.run(run()) == source.read_bytes()
    download = _transfers("download")[-1]
    assert download["resolved"] == str(source) and download["size"] == source.stat().st_size
    assert download["sha256"] == _sha256(source)
    assert sorted(p.name for p in (tree / "data").iterdir()) == before  # the target is unchanged

    # Debian's scp (SFTP underneath) and sftp: downloads work, uploads are refused
    got = tmp_path / "by-scp.bin"
    result = _openssh(gw, "scp", f"{CONNECTION}@127.0.0.1:{source}", str(got))
    assert result.returncode == 0, result.stderr
    assert got.read_bytes() == source.read_bytes()
    upload = _openssh(gw, "scp", str(got), f"{CONNECTION}@127.0.0.1:{tree}/data/uploaded.bin")
    assert upload.returncode != 0 and b"Permission denied" in upload.stderr
    batch = f"get {source} {tmp_path}/by-sftp.bin\nput {got} {tree}/data/put.bin\nrm {source}\n"
    _openssh(gw, "sftp", f"{CONNECTION}@127.0.0.1", stdin=batch.encode())
    assert (tmp_path / "by-sftp.bin").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in (tree / "data").iterdir()) == before
    refused = [e for e in _events("file_operation") if "error" in e]
    assert {e["operation"]["op"] for e in refused} >= {"upload", "remove", "rename", "mkdir", "download"}


def test_read_write_inside_the_allowed_tree_only(gw: SshGateway, tree: Path, tmp_path: Path) -> None:
    _grant(gw, tree, "sftp_read", "sftp_write")
    payload = os.urandom(200_000)
    local = tmp_path / "upload.bin"
    local.write_bytes(payload)

    async def run() -> None:
        async with await gw.client() as conn, conn.start_sftp_client() as sftp:
            await sftp.put(str(local), f"{tree}/data/sub/upload.bin")
            await sftp.rename(f"{tree}/data/sub/upload.bin", f"{tree}/data/upload.bin")
            await sftp.mkdir(f"{tree}/data/made")
            await sftp.remove(f"{tree}/data/report.bin")
            for refused in (
                sftp.put(str(local), f"{tree}/outside/upload.bin"),
                sftp.put(str(local), f"{tree}/data/../outside/traversal.bin"),  # resolved first
                sftp.open(f"{tree}/data/sub/../../outside/secret.txt", "rb"),
                sftp.open(f"{tree}/data/escape", "rb"),  # a symlink out of the tree
                sftp.open(f"{tree}/data/dangling", "wb"),  # would create outside/planted.txt
                sftp.rename(f"{tree}/data/upload.bin", f"{tree}/outside/upload.bin"),
                sftp.remove(f"{tree}/outside/secret.txt"),
            ):
                with pytest.raises(asyncssh.SFTPPermissionDenied, match="wardgate: refused"):
                    await refused
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="links is not allowed"):
                await sftp.symlink(f"{tree}/outside", f"{tree}/data/door")

    asyncio.run(run())
    assert (tree / "data" / "upload.bin").read_bytes() == payload
    assert (tree / "data" / "made").is_dir() and not (tree / "data" / "report.bin").exists()
    assert sorted(p.name for p in (tree / "outside").iterdir()) == ["secret.txt"]
    assert not (tree / "data" / "door").exists()
    upload = _transfers("upload")[-1]
    assert upload["resolved"] == f"{tree}/data/sub/upload.bin"
    assert upload["sha256"] == hashlib.sha256(payload).hexdigest() and upload["size"] == len(payload)

    by_scp = _openssh(gw, "scp", str(local), f"{CONNECTION}@127.0.0.1:{tree}/data/by-scp.bin")
    assert by_scp.returncode == 0, by_scp.stderr
    assert (tree / "data" / "by-scp.bin").read_bytes() == payload
    outside = _openssh(gw, "scp", str(local), f"{CONNECTION}@127.0.0.1:{tree}/outside/by-scp.bin")
    assert outside.returncode != 0 and not (tree / "outside" / "by-scp.bin").exists()


# ---------------------------------------------------------------------------------------------------
# rsync and git: exec of their server commands, decided like any other command


def _ssh_command(gw: SshGateway) -> tuple[str, dict[str, str]]:
    """The ``ssh`` command line rsync -e and GIT_SSH_COMMAND take (the token by SSH_ASKPASS)."""
    argv, env = gw.ssh_argv()
    return " ".join(argv[: argv.index(f"{CONNECTION}@127.0.0.1")]), env


def _allow_programs(gw: SshGateway, *programs: str) -> None:
    rule = {
        "name": "agents may sync and fetch on the box",
        "effect": "allow",
        "connections": [CONNECTION],
        "identity": {"groups": ["ci"]},
        "match": {"shell": {"programs": list(programs)}},
    }
    apply_policy_now(gw.stack, {**SSH_POLICY, "rules": [*SSH_POLICY["rules"], rule]})
    gw.tcp.services.gate.policies._cached = None


def test_rsync_runs_where_policy_allows_its_server_command(
    gw: SshGateway, tree: Path, tmp_path: Path
) -> None:
    ssh, env = _ssh_command(gw)
    pulled, pushed = tmp_path / "pulled", tree / "data" / "pushed"
    pull = ["rsync", "-a", "-e", ssh, f"{CONNECTION}@127.0.0.1:{tree}/data/", f"{pulled}/"]
    push = ["rsync", "-a", "-e", ssh, f"{pulled}/", f"{CONNECTION}@127.0.0.1:{pushed}/"]

    refused = subprocess.run(pull, env=env, capture_output=True, timeout=30)
    assert refused.returncode != 0 and b"wardgate: refused" in refused.stderr
    assert not (pulled / "report.bin").exists()
    assert "rsync --server --sender" in _last("command_refused")["operation"]["text"]

    _allow_programs(gw, "rsync")
    done = subprocess.run(pull, env=env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (pulled / "report.bin").read_bytes() == (tree / "data" / "report.bin").read_bytes()
    done = subprocess.run(push, env=env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (pushed / "report.bin").read_bytes() == (tree / "data" / "report.bin").read_bytes()


def test_git_clone_runs_where_policy_allows_upload_pack(gw: SshGateway, tmp_path: Path) -> None:
    repo = tmp_path.resolve() / "repo.git"
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", "--bare", str(repo)], check=True)
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    (work / "README").write_text("through wardgate\n")
    subprocess.run([*git, "-C", str(work), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "first"], check=True)
    subprocess.run([*git, "-C", str(work), "push", "-q", str(repo), "HEAD:main"], check=True)
    ssh, env = _ssh_command(gw)
    env = {**env, "GIT_SSH_COMMAND": ssh}
    url = f"ssh://{CONNECTION}@127.0.0.1:{gw.port}{repo}"

    refused = subprocess.run([*git, "clone", "-q", url, str(tmp_path / "no")], env=env, capture_output=True)
    assert refused.returncode != 0 and b"wardgate: refused" in refused.stderr
    assert _last("command_refused")["operation"]["text"] == f"git-upload-pack '{repo}'"

    _allow_programs(gw, "git-upload-pack")
    clone = subprocess.run([*git, "clone", "-q", url, str(tmp_path / "yes")], env=env, capture_output=True)
    assert clone.returncode == 0, clone.stderr
    assert (tmp_path / "yes" / "README").read_text() == "through wardgate\n"
    push = subprocess.run(  # git-receive-pack is not allowed: a push is refused
        [*git, "-C", str(tmp_path / "yes"), "push", "-q", "origin", "HEAD:other"],
        env=env,
        capture_output=True,
    )
    assert push.returncode != 0 and b"wardgate: refused" in push.stderr


def test_legacy_scp_stays_refused_when_sftp_is_granted(gw: SshGateway, tree: Path, tmp_path: Path) -> None:
    _grant(gw, tree, "sftp_read", "sftp_write")  # scp -O is an exec of scp -f/-t: not governed per file
    got = tmp_path / "legacy.bin"
    result = _openssh(gw, "scp", "-O", f"{CONNECTION}@127.0.0.1:{tree}/data/report.bin", str(got))
    assert result.returncode != 0 and b"scp is not served" in result.stderr
    assert not got.exists()


def test_uploads_are_refused_while_they_cannot_be_recorded_and_a_withdrawn_grant_applies_at_once(
    gw: SshGateway, tree: Path
) -> None:
    """Fail closed: with the recording stream down an upload never reaches the target; the policy
    in force decides each operation, so withdrawing the grant refuses the next one."""

    class Down:
        def put_batch(self, lines: list[bytes]) -> None:
            raise ConnectionError("firehose is down")

    _grant(gw, tree, "sftp_read", "sftp_write")

    async def run() -> None:
        async with await gw.client() as conn, conn.start_sftp_client() as sftp:
            commit = gw.services().recorder.commit
            working, commit.stream = commit.stream, Down()
            try:
                with pytest.raises(asyncssh.SFTPPermissionDenied, match="cannot be recorded now"):
                    await sftp.open(f"{tree}/data/unrecorded.txt", "wb")
            finally:
                commit.stream = working
            assert not (tree / "data" / "unrecorded.txt").exists()
            assert await sftp.exists(f"{tree}/data/report.bin")
            apply_policy_now(gw.stack, SSH_POLICY)
            gw.tcp.services.gate.policies._cached = None
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="no rule allows"):
                await sftp.stat(f"{tree}/data/report.bin")

    asyncio.run(run())


def test_revoking_the_agent_ends_its_sftp_session(gw: SshGateway, tree: Path) -> None:
    from wardgate import cli

    register_agent(gw.stack, "agent-1", "alice@example.com", CONNECTION)
    _grant(gw, tree, "sftp_read")

    async def run() -> float:
        async with await gw.client() as conn, conn.start_sftp_client() as sftp:
            assert await sftp.exists(f"{tree}/data/report.bin")
            revoke = ["revoke", "--owner", "alice@example.com", "--reason", "offboarded", "--by", "root"]
            assert await asyncio.to_thread(cli.main, revoke) == 0
            revoked = time.monotonic()
            await asyncio.wait_for(conn.wait_closed(), 3)
        return time.monotonic() - revoked

    assert asyncio.run(run()) < 1.0
    assert _last("session_end")["outcome"] == "ended"


def test_a_hash_is_taken_in_offset_order_or_not_at_all() -> None:
    from wardgate.tcp.ssh.sftp import _Digest

    data = os.urandom(100_000)
    chunks = [(offset, data[offset : offset + 32_768]) for offset in range(0, len(data), 32_768)]

    async def digest(order: list[tuple[int, bytes]]) -> dict[str, Any]:
        taken = _Digest()
        for offset, chunk in order:
            await taken.add(offset, chunk)
        return await taken.summary()

    want = {"bytes": len(data), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert asyncio.run(digest(chunks)) == want
    assert asyncio.run(digest(chunks[::-1])) == want  # pipelined requests answered out of order
    # the same bytes twice: not one file's content
    assert asyncio.run(digest([*chunks, chunks[0]])) == {
        "bytes": len(data) + 32_768,
        "size": None,
        "sha256": None,
    }


# ---------------------------------------------------------------------------------------------------
# Downloads read ahead (sftp._ReadAhead): the target is asked before the client, the client's
# answers and hash stay exactly what it asked for


@pytest.fixture
def target_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Every read the gateway makes on the target, as (handle id, offset, size): asyncssh's SFTP
    client file, called through as it is, watched on the gateway's thread only (the test's own
    asyncssh client uses the same class on the main thread)."""
    import threading

    made: list[tuple[int, int, int]] = []
    read = asyncssh.SFTPClientFile.read

    async def watched(self: asyncssh.SFTPClientFile, size: int = -1, offset: int | None = None) -> Any:
        if threading.current_thread() is not threading.main_thread():
            made.append((id(self), offset or 0, size))
        return await read(self, size, offset)

    monkeypatch.setattr(asyncssh.SFTPClientFile, "read", watched)
    return made


CHUNK = 32_768


def test_a_download_is_read_ahead_and_only_what_the_client_asked_for_is_hashed(
    gw: SshGateway, tree: Path, target_reads: list[tuple[int, int, int]]
) -> None:
    from wardgate.tcp.ssh.sftp import READ_AHEAD_BYTES

    _grant(gw, tree, "sftp_read")
    big = tree / "data" / "big.bin"
    big.write_bytes(os.urandom(3 * READ_AHEAD_BYTES))
    content = big.read_bytes()

    async def run() -> list[bytes]:
        async with (
            await gw.client() as conn,
            conn.start_sftp_client() as sftp,
            sftp.open(str(big), "rb") as remote,
        ):
            chunks = [await _read(remote, CHUNK, offset) for offset in (0, CHUNK, 2 * CHUNK)]
        return chunks

    assert b"".join(asyncio.run(run())) == content[: 3 * CHUNK]
    # the target was read ahead of the client, within the handle's window
    furthest = max(offset + size for _, offset, size in target_reads)
    assert 3 * CHUNK < furthest <= 3 * CHUNK + READ_AHEAD_BYTES
    assert {size for _, _, size in target_reads} == {CHUNK}  # the client's own size
    download = _transfers("download")[-1]
    assert download["bytes"] == download["size"] == 3 * CHUNK  # what the client received, no more
    assert download["sha256"] == hashlib.sha256(content[: 3 * CHUNK]).hexdigest()


def test_reads_out_of_order_a_seek_and_a_close_with_reads_in_flight(
    gw: SshGateway, tree: Path, target_reads: list[tuple[int, int, int]]
) -> None:
    _grant(gw, tree, "sftp_read")
    source = tree / "data" / "report.bin"
    content = source.read_bytes()
    offsets = list(range(0, len(content), CHUNK))

    async def run() -> None:
        async with await gw.client() as conn, conn.start_sftp_client() as sftp:
            # backwards: every read is a seek, answered as asked; the hash is still exact
            async with sftp.open(str(source), "rb") as remote:
                backwards = {offset: await _read(remote, CHUNK, offset) for offset in reversed(offsets)}
            assert b"".join(backwards[offset] for offset in offsets) == content
            # in order, then a seek back and forth: the window is dropped and started again
            async with sftp.open(str(source), "rb") as remote:
                assert await _read(remote, CHUNK, 0) == content[:CHUNK]
                assert await _read(remote, CHUNK, CHUNK) == content[CHUNK : 2 * CHUNK]
                assert await _read(remote, 1000, 250_000) == content[250_000:251_000]
                assert await _read(remote, CHUNK, 2 * CHUNK) == content[2 * CHUNK : 3 * CHUNK]
            # closed at once while the reads ahead are on their way: the session goes on
            before = len(target_reads)
            async with sftp.open(str(source), "rb") as remote:
                assert await _read(remote, CHUNK, 0) == content[:CHUNK]
            assert len(target_reads) - before > 1  # there were reads ahead to drop
            async with sftp.open(str(source), "rb") as remote:
                assert await _read(remote) == content

    asyncio.run(run())
    backwards, sought, dropped, whole = _transfers("download")[-4:]
    assert backwards["sha256"] == whole["sha256"] == _sha256(source) and whole["size"] == len(content)
    assert sought["bytes"] == 3 * CHUNK + 1000 and sought["sha256"] is None  # not one run of bytes
    assert dropped["bytes"] == CHUNK and dropped["sha256"] == hashlib.sha256(content[:CHUNK]).hexdigest()


def test_nothing_is_read_ahead_that_was_refused_or_could_be_stale(
    gw: SshGateway, tree: Path, target_reads: list[tuple[int, int, int]]
) -> None:
    """A refused open reads nothing; a handle that may write is read as asked only; a write
    through the session drops what was read ahead, so a later read sees it."""
    _grant(gw, tree, "sftp_read", "sftp_write")
    source = tree / "data" / "report.bin"
    content = bytearray(source.read_bytes())

    async def run() -> None:
        async with await gw.client() as conn, conn.start_sftp_client() as sftp:
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="wardgate: refused"):
                await sftp.open(f"{tree}/outside/secret.txt", "rb")
            assert target_reads == []
            async with sftp.open(str(source), "r+b") as both:
                assert await _read(both, CHUNK, 0) == content[:CHUNK]
                assert await _read(both, CHUNK, CHUNK) == content[CHUNK : 2 * CHUNK]
            assert [(offset, size) for _, offset, size in target_reads] == [(0, CHUNK), (CHUNK, CHUNK)]
            async with sftp.open(str(source), "rb") as reader, sftp.open(str(source), "r+b") as writer:
                assert await _read(reader, CHUNK, 0) == content[:CHUNK]
                assert await _read(reader, CHUNK, CHUNK) == content[CHUNK : 2 * CHUNK]
                assert max(offset for _, offset, _ in target_reads) > 2 * CHUNK  # read ahead
                await writer.write(b"written after the read ahead", 3 * CHUNK)
                content[3 * CHUNK : 3 * CHUNK + 28] = b"written after the read ahead"
                assert await _read(reader, CHUNK, 2 * CHUNK) == content[2 * CHUNK : 3 * CHUNK]
                assert await _read(reader, CHUNK, 3 * CHUNK) == content[3 * CHUNK : 4 * CHUNK]

    asyncio.run(run())
    assert source.read_bytes() == bytes(content)


def test_read_ahead_is_bounded_per_session(
    gw: SshGateway, tree: Path, target_reads: list[tuple[int, int, int]]
) -> None:
    from wardgate.tcp.ssh.sftp import READ_AHEAD_BYTES, SESSION_READ_AHEAD_BYTES

    _grant(gw, tree, "sftp_read")
    handles = SESSION_READ_AHEAD_BYTES // READ_AHEAD_BYTES + 2  # more than the session's budget holds
    big = tree / "data" / "big.bin"
    big.write_bytes(os.urandom(2 * READ_AHEAD_BYTES))

    async def run() -> None:
        async with await gw.client() as conn, conn.start_sftp_client() as sftp:
            files = [await sftp.open(str(big), "rb") for _ in range(handles)]
            for remote in files:
                await _read(remote, CHUNK, 0)
            asked = handles * CHUNK
            read_ahead = sum(size for _, _, size in target_reads) - asked
            assert 0 < read_ahead <= SESSION_READ_AHEAD_BYTES
            assert len({handle for handle, _, _ in target_reads}) == handles
            for remote in files:
                await remote.close()
            # closing gave the budget back: a new handle reads ahead again
            target_reads.clear()
            async with sftp.open(str(big), "rb") as remote:
                await _read(remote, CHUNK, 0)
                assert sum(size for _, _, size in target_reads) > CHUNK

    asyncio.run(run())


# ---------------------------------------------------------------------------------------------------
# Uploads written behind (sftp._WriteBehind): answered once sent, confirmed behind the client


def test_writes_behind_are_seen_in_order_and_a_failed_one_fails_the_handle(
    gw: SshGateway, tree: Path
) -> None:
    _grant(gw, tree, "sftp_read", "sftp_write")
    payload = os.urandom(40 * CHUNK)
    written = tree / "data" / "behind.bin"

    async def run() -> None:
        async with await gw.client() as conn, conn.start_sftp_client() as sftp:
            writer = await sftp.open(str(written), "wb")
            for offset in range(0, len(payload) - 32 * CHUNK, CHUNK):
                await writer.write(payload[offset : offset + CHUNK], offset)
            # one write larger than the target takes in one request: written through
            await writer.write(payload[len(payload) - 32 * CHUNK :], len(payload) - 32 * CHUNK)
            # before the close: what was written is what another handle reads, and fstat's size
            async with sftp.open(str(written), "rb") as reader:
                assert await _read(reader) == payload
            assert (await writer.stat()).size == len(payload)
            await writer.close()
            # a write the target cannot make (an offset past what a file may have) fails the
            # handle: that request or the next, at the latest the close
            broken = await sftp.open(f"{tree}/data/broken.bin", "wb")
            with pytest.raises(asyncssh.SFTPError):
                await broken.write(b"never", 2**63)
                await broken.write(b"after", 0)
                await broken.close()

    asyncio.run(run())
    assert written.read_bytes() == payload
    uploads = _transfers("upload")
    done = next(e for e in uploads if e["resolved"] == str(written))
    assert done["sha256"] == hashlib.sha256(payload).hexdigest() and "error" not in done
    deadline = time.monotonic() + 5  # recorded as the close is answered: it may land just after
    while not (broken := [e for e in _transfers("upload") if e["resolved"] == f"{tree}/data/broken.bin"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert broken[-1]["error"]["code"] == "target_write_failed"
