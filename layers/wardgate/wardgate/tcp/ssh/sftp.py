"""SFTP through the SSH listener, by policy: every file operation decided, then made on the target.

The client's SFTP requests are served by ``SftpProxy`` (an asyncssh ``SFTPServer``), which makes the
same request to the target's SFTP server over the connection's pinned target connection. Each
request that names a path is decided first, on the path as the *target* resolves it (its
``realpath``: ``..`` and symlinks followed), so a rule's path globs cannot be escaped by a
traversal or a link out of the allowed tree. A path that does not exist yet (an upload, a mkdir)
is its resolved parent plus its name; a dangling symlink is refused (what it would create cannot
be checked). Creating links is never served (a link is a door out of the allowed tree).

Policy (docs/policy.md): a ``shell`` rule naming the feature ``sftp_read`` (downloads, listings,
stat) or ``sftp_write`` (uploads, remove, rename, mkdir, rmdir, setstat), with ``args`` globs
for the resolved paths. Only an allow rule that names the feature grants it (a broad
``programs: ["*"]`` never opens file transfer). No such rule: the subsystem is refused (off).

Recorded: ``file_operation`` per decided request (path, resolved path, decision; durable before
anything changes on the target), ``file_transfer`` when a file handle closes (bytes, SHA-256 of
the bytes read or written, in offset order).

Downloads are read ahead (``_ReadAhead``): asyncssh's SFTP server answers a session's requests one
at a time, so the many reads a client keeps in flight (OpenSSH: up to 64) would each wait for a
round trip to the target. On a handle opened only for reading (its open decided like any other),
while the client reads in order, the next reads are already made on the target, within a bounded
window per handle and per session; the client is answered from them. Bytes read ahead are the
client's only once it asks for them: the hash and byte count are taken from what is answered,
and what was never asked for is dropped at close. Any write through the session drops what was
read ahead (a later read sees the write, as when requests are served one by one).

Uploads are written behind (``_WriteBehind``): a write is answered once its request is on its way
to the target, whose answer is awaited behind the client's next writes, within a bounded window;
a write the target failed fails the client's next request on that handle, at the latest its close
(which waits for every write), and the transfer's record says so.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import os
import posixpath
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

import asyncssh

from wardgate.errors import GatewayError
from wardgate.operations.shell import ShellCommand, ShellOperation
from wardgate.policy.engine import Decision, PolicySet

if TYPE_CHECKING:
    from wardgate.tcp.ssh.session import SshSession

PROGRAM = "<sftp>"
READ = "sftp_read"
WRITE = "sftp_write"
FEATURES = (READ, WRITE)
SFTP_VERSION = 3  # what OpenSSH speaks
WRITE_FLAGS = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_APPEND
HASH_WINDOW_BYTES = 4 * 1024 * 1024  # out-of-order chunks held per handle for the hash; beyond: none
# Reads made on the target before the client asks (_ReadAhead). OpenSSH reads 255 KiB at a time
# (sshd's largest read), so a handle's window is 16 of them: enough to keep a loopback target busy.
READ_AHEAD_BYTES = 4 * 1024 * 1024  # per handle
SESSION_READ_AHEAD_BYTES = 16 * 1024 * 1024  # per SFTP session, over all its handles (and writes behind)
WRITE_BEHIND_BYTES = 4 * 1024 * 1024  # per handle: written, not yet confirmed by the target


def file_operation(path: str, feature: str) -> ShellOperation:
    """What policy decides for one file operation: the command ``<sftp> <resolved path>`` with
    the feature ``sftp_read`` or ``sftp_write`` (rules match the path with ``args`` globs)."""
    command = ShellCommand(
        argv=(PROGRAM, path), program=PROGRAM, effective_programs=(PROGRAM,), operator=None, redirects=()
    )
    return ShellOperation(text=f"{PROGRAM} {feature} {path}", commands=(command,), features=(feature,))


def _names_feature(policy_set: PolicySet, rule_name: str | None, feature: str) -> bool:
    return any(
        feature in [str(f).lower() for f in (rule.conditions.get("features") or [])]
        for rule in policy_set.rules
        if rule.name == rule_name and rule.effect == "allow"
    )


def sftp_enabled(session: SshSession, policy_set: PolicySet) -> bool:
    """Whether any allow rule naming an SFTP feature could apply to this identity on this
    connection (otherwise SFTP is off and the subsystem is refused outright)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    for rule in policy_set.rules:
        if rule.effect != "allow" or rule.protocol != "shell":
            continue
        named = [str(f).lower() for f in (rule.conditions.get("features") or [])]
        if not set(named) & set(FEATURES):
            continue
        if "*" not in rule.connections and session.connection.name not in rule.connections:
            continue
        if rule.applies_to(session.identity, now):
            return True
    return False


class _Budget:
    """Bytes a session may have read ahead over all its handles (memory per session is bounded)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size


def _forget(task: asyncio.Task[bytes]) -> None:
    """A read ahead nobody will ask for: stopped, its outcome (an error too) dropped."""
    task.cancel()
    task.add_done_callback(lambda done: None if done.cancelled() else done.exception())


class _ReadAhead:
    """A download handle's reads made on the target before the client asks for them (see the
    module's docstring). Read ahead only follows a client reading in order: a read that starts
    where the previous one ended (the first at offset 0 too) tops the window up with reads of the
    same size at the offsets that follow; a read elsewhere (a seek) drops the window and is made
    as asked. A read that came back short marks the end of the file: nothing is read beyond it."""

    def __init__(self, remote: asyncssh.SFTPClientFile, budget: _Budget) -> None:
        self.remote = remote
        self.budget = budget
        self.ahead: dict[int, tuple[int, asyncio.Task[bytes]]] = {}  # offset -> (size, the read)
        self.held = 0  # bytes of the reads in self.ahead (done or in flight)
        self.size = 0  # the size of each read ahead
        self.next = 0  # where the next read ahead starts
        self.last_end = 0  # where the client's previous read ended
        self.end: int | None = None  # the end of the file, as a short read ahead found it

    async def read(self, offset: int, size: int) -> bytes:
        entry = self.ahead.pop(offset, None)
        if entry is not None:
            self._release(entry[0])
        if entry is not None and entry[0] == size:
            reading = entry[1]
        else:
            if entry is not None:
                _forget(entry[1])
            if offset != self.last_end and not (self.ahead and min(self.ahead) <= offset < self.next):
                self.drop()  # a seek: what was read ahead will not be asked for
            reading = asyncio.ensure_future(self._read(offset, size))
        if offset == self.last_end:  # reading in order: keep the window ahead of the client full
            self._top_up(offset + size, size)
        data = await reading
        self.last_end = offset + len(data)
        return data

    async def _read(self, offset: int, size: int) -> bytes:
        data = cast(bytes, await self.remote.read(size, offset))
        if len(data) < size:  # sshd reads a regular file short only at its end
            self.end = offset + len(data) if self.end is None else min(self.end, offset + len(data))
        elif self.end is not None and offset + size > self.end:  # it has grown since
            self.end = None
        return data

    def _top_up(self, after: int, size: int) -> None:
        if not self.ahead:
            self.size = size  # the window's reads are all of one size: the client's
        self.next = max(self.next, after)
        while (
            (self.end is None or self.next < self.end)
            and self.held + self.size <= READ_AHEAD_BYTES
            and self.budget.take(self.size)
        ):
            self.ahead[self.next] = (self.size, asyncio.ensure_future(self._read(self.next, self.size)))
            self.held += self.size
            self.next += self.size

    def _release(self, size: int) -> None:
        self.held -= size
        self.budget.give_back(size)

    def drop(self) -> None:
        """Forget every read ahead (a seek, a write through the session, the handle closing)."""
        for size, task in self.ahead.values():
            self._release(size)
            _forget(task)
        self.ahead.clear()
        self.next = 0

    async def stop(self) -> None:
        """Drop the window and wait for its reads to end (before the handle is closed on the target)."""
        tasks = [task for _, task in self.ahead.values()]
        self.drop()
        await asyncio.gather(*tasks, return_exceptions=True)


class _WriteBehind:
    """An upload handle's writes not yet confirmed by the target (see the module's docstring). The
    target serves a session's requests in the order they are sent, so a later read, stat or
    rename (of this handle or any other) sees every write sent before it."""

    def __init__(self, remote: asyncssh.SFTPClientFile, budget: _Budget) -> None:
        self.remote = remote
        self.budget = budget
        self.sent: collections.deque[tuple[asyncio.Task[int], int]] = collections.deque()
        self.held = 0
        self.failure: str | None = None  # the first write the target failed, for the record

    async def write(self, data: bytes, offset: int) -> None:
        self._confirmed()
        if self.failure is not None:  # once a write failed, so does every later one
            raise asyncssh.SFTPFailure(f"wardgate: an earlier write failed on the target: {self.failure}")
        # Written through: when the session's budget is spent, and a write larger than the target
        # takes in one request (asyncssh splits it into requests sent a loop turn later, so a request
        # the client sends next could overtake them).
        if len(data) > (self.remote.write_len or len(data)) or not self.budget.take(len(data)):
            await self.settle()
            await self.remote.write(data, offset)
            return
        writing = asyncio.ensure_future(self.remote.write(data, offset))
        writing.add_done_callback(_retrieved)
        self.sent.append((writing, len(data)))
        self.held += len(data)
        await asyncio.sleep(0)  # its request leaves first: whatever the client sends next follows it
        while self.held > WRITE_BEHIND_BYTES:
            await asyncio.wait([self.sent[0][0]])
            self._confirmed()
        self._confirmed()

    def _confirmed(self) -> None:
        """Forget the writes the target answered; raise the first it failed."""
        while self.sent and self.sent[0][0].done():
            writing, size = self.sent.popleft()
            self.held -= size
            self.budget.give_back(size)
            self._raise_failure(writing)

    def _raise_failure(self, writing: asyncio.Task[int]) -> None:
        failed = writing.exception() if not writing.cancelled() else asyncssh.SFTPConnectionLost("cancelled")
        if failed is None:
            return
        if self.failure is None:
            self.failure = f"{type(failed).__name__}: {failed}"
        if isinstance(failed, asyncssh.SFTPError):
            raise asyncssh.SFTPFailure(f"wardgate: an earlier write failed on the target: {failed.reason}")
        raise asyncssh.SFTPConnectionLost(f"wardgate: an earlier write failed on the target ({failed})")

    async def settle(self) -> None:
        """Every write confirmed (close, fsync, fstat, fsetstat wait for them), or raise the first
        failure."""
        if self.sent:
            await asyncio.wait([writing for writing, _ in self.sent])
        self._confirmed()
        if self.failure is not None:
            raise asyncssh.SFTPFailure(f"wardgate: an earlier write failed on the target: {self.failure}")


def _retrieved(task: asyncio.Task[int]) -> None:
    """A write's failure is reported by ``_confirmed``, or (the session ending) of no interest."""
    if not task.cancelled():
        task.exception()


class _Transfer:
    """An open file: what went through it, hashed in offset order."""

    def __init__(
        self,
        remote: asyncssh.SFTPClientFile,
        path: str,
        resolved: str,
        direction: str,
        read_ahead: _ReadAhead | None = None,
        write_behind: _WriteBehind | None = None,
    ) -> None:
        self.remote = remote
        self.path = path
        self.resolved = resolved
        self.direction = direction  # "read" or "write" (what the handle may do)
        self.read_ahead = read_ahead  # handles opened only for reading
        self.write_behind = write_behind  # handles opened for writing
        self.read = _Digest()
        self.written = _Digest()

    def seek(self, offset: int, whence: int) -> int:
        """asyncssh asks this for a client's data ranges (``ranges@asyncssh.com``): the target's
        holes are not known here, so the whole file is data (the client then reads it all)."""
        return offset if whence == os.SEEK_DATA else offset + 2**62


# The SHA-256 of what went through is taken on a thread of its own: hashlib lets go of the GIL on
# large buffers, so the event loop relays the next chunks meanwhile (it was an eighth of the
# gateway's CPU in a copy). One worker hashes chunks in the order they are given: each digest's.
_HASHING = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="wardgate-sftp-sha256")
HASH_BACKLOG_BYTES = (
    8 * 1024 * 1024
)  # per digest, given to the thread and not hashed yet: beyond, the copy waits
HASH_INLINE_BYTES = (
    16 * 1024
)  # smaller chunks (hashlib keeps the GIL for them) are hashed at once when nothing waits


class _Digest:
    def __init__(self) -> None:
        self.hasher: Any = hashlib.sha256()
        self.next = 0
        self.pending: dict[int, bytes] = {}
        self.held = 0
        self.bytes = 0
        self.backlog: collections.deque[tuple[concurrent.futures.Future[None], int]] = collections.deque()
        self.backlog_bytes = 0

    async def add(self, offset: int, data: bytes) -> None:
        self.bytes += len(data)
        if self.hasher is None or not data:
            return
        if offset == self.next:
            self._hash(data)
            self.next += len(data)
            while self.next in self.pending:
                chunk = self.pending.pop(self.next)
                self.held -= len(chunk)
                self._hash(chunk)
                self.next += len(chunk)
            await self._settle(HASH_BACKLOG_BYTES)
        elif offset > self.next and offset not in self.pending and self.held + len(data) <= HASH_WINDOW_BYTES:
            self.pending[offset] = data
            self.held += len(data)
        else:  # overlapping or rewound: the bytes are not one file's content in order
            self.hasher, self.pending = None, {}

    def _hash(self, chunk: bytes) -> None:
        if not self.backlog and len(chunk) < HASH_INLINE_BYTES:
            self.hasher.update(chunk)
            return
        self.backlog.append((_HASHING.submit(self.hasher.update, chunk), len(chunk)))
        self.backlog_bytes += len(chunk)

    async def _settle(self, limit: int) -> None:
        """Forget hashed chunks; wait while more than ``limit`` bytes are still to be hashed."""
        while self.backlog and (self.backlog[0][0].done() or self.backlog_bytes > limit):
            hashing, size = self.backlog.popleft()
            if hashing.done():
                hashing.result()
            else:
                await asyncio.wrap_future(hashing)
            self.backlog_bytes -= size

    async def summary(self) -> dict[str, Any]:
        await self._settle(0)
        whole = self.hasher is not None and not self.pending
        return {
            "bytes": self.bytes,
            "size": self.next if whole else None,
            "sha256": self.hasher.hexdigest() if whole else None,
        }


def _failure(write_behind: _WriteBehind | None) -> dict[str, Any]:
    """A transfer's record names the first write the target failed (the bytes counted and hashed
    are what the client sent)."""
    if write_behind is None or write_behind.failure is None:
        return {}
    return {"error": {"code": "target_write_failed", "message": write_behind.failure}}


def _text(path: bytes) -> str:
    return (
        path.decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    )


class SftpProxy(asyncssh.SFTPServer):
    """The client's SFTP requests, decided one by one and made on the target's SFTP server."""

    def __init__(
        self,
        chan: asyncssh.SSHServerChannel[bytes],
        session: SshSession,
        connection: asyncssh.SSHClientConnection,
        target: asyncssh.SFTPClient,
        channel: int,
    ) -> None:
        super().__init__(chan)
        self.session = session
        self.target_connection = connection  # to the target; closed when the client's SFTP session ends
        self.target = target
        self.channel_number = channel
        self.handles: set[_Transfer] = set()
        self.transfer_budget = _Budget(SESSION_READ_AHEAD_BYTES)  # read ahead and written behind

    # ------------------------------------------------------------------ deciding
    async def _resolve(self, path: bytes) -> bytes:
        """``path`` as the target resolves it; a path that does not exist is its parent's resolved
        path plus its name (what a create would make)."""
        try:
            return bytes(await self.target.realpath(path))
        except asyncssh.SFTPNoSuchFile:
            pass
        name = posixpath.basename(path.rstrip(b"/"))
        if name in (b"", b".", b".."):
            raise asyncssh.SFTPPermissionDenied(f"wardgate: the path {_text(path)!r} cannot be checked")
        try:
            await self.target.lstat(path)
        except asyncssh.SFTPNoSuchFile:
            parent = posixpath.dirname(path.rstrip(b"/")) or b"."
            return posixpath.join(bytes(await self.target.realpath(parent)), name)
        # it exists but does not resolve: a dangling symlink, whose target a create would make
        raise asyncssh.SFTPPermissionDenied(
            f"wardgate: {_text(path)!r} is a link whose target cannot be resolved: refused"
        )

    async def _decide(self, what: str, feature: str, path: bytes, durable: bool = True) -> str:
        """Decide ``what`` (open, remove...) on ``path``; refused: SFTP's permission denied with the
        reason. Returns the resolved path (text). Recorded before it is made on the target."""
        if feature == WRITE:
            self._drop_read_ahead()
        session = self.session
        resolved = _text(await self._resolve(path))
        policy_set = await session.services.policy_set()  # a grant withdrawn applies at once
        operation = file_operation(resolved, feature)
        decision = session._decide(policy_set, operation)
        refusal = ""
        if decision.outcome == "require_approval":
            refusal = f"{decision.reason}; file operations cannot wait for approval, so it is refused"
        elif decision.outcome != "allow":
            refusal = decision.reason
        elif not _names_feature(policy_set, decision.rule, feature):
            refusal = f"no rule naming the feature {feature!r} allows {what} of {resolved!r}"
            decision = Decision("deny", refusal, "wardgate.sftp", policy_set.version)
        event: dict[str, Any] = {
            "channel": self.channel_number,
            "operation": {"protocol": "sftp", "op": what, "path": _text(path), "resolved": resolved},
            "decision": decision.to_record(),
        }
        if refusal:
            session.record.refused += 1
            event["error"] = {"code": "denied_by_policy", "message": refusal}
            session.services.recorder.write_later(
                session.record, "file_operation", session._recording_failed, **event
            )
            raise asyncssh.SFTPPermissionDenied(f"wardgate: refused: {refusal}")
        session.record.statements += 1
        if durable:
            try:
                await session.services.recorder.write(session.record, "file_operation", **event)
            except GatewayError as unrecorded:
                raise asyncssh.SFTPPermissionDenied(
                    f"wardgate: not done: it cannot be recorded now ({unrecorded.message})"
                ) from None
        else:
            session.services.recorder.write_later(
                session.record, "file_operation", session._recording_failed, **event
            )
        return resolved

    # ------------------------------------------------------------------ files
    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> _Transfer:  # type: ignore[override]
        writes = bool(
            pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_APPEND)
        )
        resolved = await self._decide("upload" if writes else "download", WRITE if writes else READ, path)
        if writes and pflags & asyncssh.FXF_READ:  # read-write handles need both grants
            await self._decide("download", READ, path)
        remote = await self.target.open(path, pflags, attrs, encoding=None)
        read_ahead = None if writes else _ReadAhead(remote, self.transfer_budget)
        write_behind = _WriteBehind(remote, self.transfer_budget) if writes else None
        transfer = _Transfer(
            remote, _text(path), resolved, "write" if writes else "read", read_ahead, write_behind
        )
        self.handles.add(transfer)
        return transfer

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:  # type: ignore[override]
        assert isinstance(file_obj, _Transfer)
        if file_obj.read_ahead is not None:
            data = await file_obj.read_ahead.read(offset, size)
        else:
            data = cast(bytes, await file_obj.remote.read(size, offset))
        await file_obj.read.add(offset, data)  # what the client is answered, never what was read ahead
        return data

    def _drop_read_ahead(self) -> None:
        """A write through this session: later reads must see it, so nothing read before it is served."""
        for transfer in self.handles:
            if transfer.read_ahead is not None:
                transfer.read_ahead.drop()

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:  # type: ignore[override]
        assert isinstance(file_obj, _Transfer)
        if file_obj.direction != "write":
            raise asyncssh.SFTPPermissionDenied("wardgate: this file was opened for reading")
        self._drop_read_ahead()
        assert file_obj.write_behind is not None
        await file_obj.write_behind.write(data, offset)
        await file_obj.written.add(offset, data)
        return len(data)

    async def close(self, file_obj: object) -> None:  # type: ignore[override]
        assert isinstance(file_obj, _Transfer)
        self.handles.discard(file_obj)
        try:
            if file_obj.read_ahead is not None:
                await file_obj.read_ahead.stop()
            if file_obj.write_behind is not None:
                try:
                    await file_obj.write_behind.settle()
                finally:
                    await file_obj.remote.close()
            else:
                await file_obj.remote.close()
        finally:
            await self._record_transfer(file_obj)

    async def _record_transfer(self, transfer: _Transfer) -> None:
        session = self.session
        for direction, digest in (("download", transfer.read), ("upload", transfer.written)):
            if digest.bytes or direction == ("upload" if transfer.direction == "write" else "download"):
                session.services.recorder.write_later(
                    session.record,
                    "file_transfer",
                    session._recording_failed,
                    channel=self.channel_number,
                    direction=direction,
                    path=transfer.path,
                    resolved=transfer.resolved,
                    **await digest.summary(),
                    **_failure(transfer.write_behind if direction == "upload" else None),
                )

    async def _settled(self, transfer: _Transfer) -> None:
        if transfer.write_behind is not None:
            await transfer.write_behind.settle()

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:  # type: ignore[override]
        assert isinstance(file_obj, _Transfer)
        await self._settled(file_obj)
        return await file_obj.remote.stat()

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:  # type: ignore[override]
        assert isinstance(file_obj, _Transfer)
        if file_obj.direction != "write":
            raise asyncssh.SFTPPermissionDenied("wardgate: this file was opened for reading")
        self._drop_read_ahead()
        await self._settled(file_obj)
        await file_obj.remote.setstat(attrs)

    async def fsync(self, file_obj: object) -> None:  # type: ignore[override]
        assert isinstance(file_obj, _Transfer)
        await self._settled(file_obj)
        await file_obj.remote.fsync()

    # ------------------------------------------------------------------ names
    async def realpath(self, path: bytes) -> bytes:  # type: ignore[override]
        # Only a name: clients ask it of "." first; what is at the name is decided when it is used.
        return bytes(await self.target.realpath(path))

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:  # type: ignore[override]
        await self._decide("stat", READ, path, durable=False)
        return await self.target.stat(path)

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:  # type: ignore[override]
        await self._decide("stat", READ, path, durable=False)
        return await self.target.lstat(path)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:  # type: ignore[override]
        await self._decide("list", READ, path, durable=False)
        async for name in self.target.scandir(path):
            yield name

    async def readlink(self, path: bytes) -> bytes:  # type: ignore[override]
        await self._decide("readlink", READ, path, durable=False)
        return bytes(await self.target.readlink(path))

    async def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:  # type: ignore[override]
        await self._decide("statvfs", READ, path, durable=False)
        return await self.target.statvfs(path)

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:  # type: ignore[override]
        await self._decide("setstat", WRITE, path)
        await self.target.setstat(path, attrs)

    async def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:  # type: ignore[override]
        await self._decide("setstat", WRITE, path)
        await self.target.setstat(path, attrs, follow_symlinks=False)

    async def remove(self, path: bytes) -> None:  # type: ignore[override]
        await self._decide("remove", WRITE, path)
        await self.target.remove(path)

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:  # type: ignore[override]
        await self._decide("mkdir", WRITE, path)
        await self.target.mkdir(path, attrs)

    async def rmdir(self, path: bytes) -> None:  # type: ignore[override]
        await self._decide("rmdir", WRITE, path)
        await self.target.rmdir(path)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:  # type: ignore[override]
        await self._decide("rename", WRITE, oldpath)
        await self._decide("rename_to", WRITE, newpath)
        await self.target.rename(oldpath, newpath)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:  # type: ignore[override]
        await self._decide("rename", WRITE, oldpath)
        await self._decide("rename_to", WRITE, newpath)
        await self.target.posix_rename(oldpath, newpath)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("wardgate: creating links is not allowed over SFTP")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("wardgate: creating links is not allowed over SFTP")

    # ------------------------------------------------------------------ never served
    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPOpUnsupported("wardgate: SFTP versions above 3 are not served")

    def fstatvfs(self, file_obj: object) -> asyncssh.SFTPVFSAttrs:
        raise asyncssh.SFTPOpUnsupported("wardgate: fstatvfs is not served")

    def lock(self, file_obj: object, offset: int, length: int, flags: int) -> None:
        raise asyncssh.SFTPOpUnsupported("wardgate: locks are not served")

    def unlock(self, file_obj: object, offset: int, length: int) -> None:
        raise asyncssh.SFTPOpUnsupported("wardgate: locks are not served")

    def format_user(self, uid: int | None) -> str:
        return str(uid) if uid is not None else ""  # the target's ids, never the gateway's user names

    def format_group(self, gid: int | None) -> str:
        return str(gid) if gid is not None else ""

    async def exit(self) -> None:  # type: ignore[override]
        """The client's SFTP session ended: handles left open are recorded, the target closed."""
        for transfer in list(self.handles):
            self.handles.discard(transfer)
            if transfer.read_ahead is not None:
                transfer.read_ahead.drop()
            if transfer.write_behind is not None:
                with contextlib.suppress(asyncssh.SFTPError):
                    await transfer.write_behind.settle()
            await self._record_transfer(transfer)
        self.target.exit()
        self.target_connection.close()
        with contextlib.suppress(Exception):  # OpenSSH's scp fails a copy that ends without a status
            self.channel.exit(0)
