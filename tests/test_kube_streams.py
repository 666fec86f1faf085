"""The cluster double's streams: exec, attach and port-forward (issue 17).

Sans-I/O first (the SPDY/3.1 codec and the remote-command channel framing byte by byte, the port-forward
session, the fake container's shell and tar), then real kubectl and the Python ``kubernetes`` client
directly against the double (``wardgate.dev.kube``) over TLS.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib

import pytest

from wardgate.dev.kube import spdy
from wardgate.dev.kube.container import (
    BytesInput,
    Container,
    ExecNotFound,
    ProcessIO,
    StreamInput,
    parse,
    tokenize,
)
from wardgate.dev.kube.streams import (
    CHANNEL_PROTOCOLS,
    PortForwardSession,
    Refused,
    close_signal,
    decode_channel,
    encode_channel,
    error_channel_payload,
    exit_code_status,
    negotiate,
    stream_options,
    success_status,
)

# -- SPDY/3.1, byte by byte ----------------------------------------------------------------------------


def test_spdy_dictionary_is_the_drafts() -> None:
    # The DICTID in every SPDY/3 zlib header is this Adler-32; a different dictionary cannot talk to Go.
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_spdy_fixed_frames_byte_by_byte() -> None:
    encoder = spdy.FrameEncoder()
    assert encoder.encode(spdy.Ping(1)) == bytes.fromhex("80030006 00000004 00000001")
    assert encoder.encode(spdy.Data(3, b"hi", spdy.FLAG_FIN)) == bytes.fromhex("00000003 01000002 6869")
    assert encoder.encode(spdy.RstStream(5, spdy.CANCEL)) == bytes.fromhex(
        "80030003 00000008 00000005 00000005"
    )
    assert encoder.encode(spdy.GoAway(7, spdy.GOAWAY_OK)) == bytes.fromhex(
        "80030007 00000008 00000007 00000000"
    )
    assert encoder.encode(spdy.WindowUpdate(1, 65536)) == bytes.fromhex("80030009 00000008 00000001 00010000")
    assert encoder.encode(spdy.Settings(((0, 7, 65536),))) == bytes.fromhex(
        "80030004 0000000c 00000001 00000007 00010000"
    )
    decoder = spdy.FrameDecoder()
    frames = decoder.receive(
        bytes.fromhex(
            "80030006 00000004 00000003 00000001 00000003 616263 80030004 0000000c 00000001 01000004 00000064"
        )
    )
    assert frames == [spdy.Ping(3), spdy.Data(1, b"abc"), spdy.Settings(((1, 4, 100),))]


def _hand_made_syn_stream(stream_id: int, pairs: list[tuple[bytes, bytes]], deflate: object) -> bytes:
    """A SYN_STREAM assembled here from the draft's layout, not by the codec under test."""
    block = struct.pack(">I", len(pairs))
    for name, value in pairs:
        block += struct.pack(">I", len(name)) + name + struct.pack(">I", len(value)) + value
    assert isinstance(deflate, type(zlib.compressobj()))
    compressed = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + compressed
    return struct.pack(">HHI", 0x8003, 1, len(payload)) + payload


def test_spdy_header_blocks_share_one_compression_context_per_direction() -> None:
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    first = _hand_made_syn_stream(
        1, [(b"streamtype", b"error"), (b"port", b"80"), (b"requestid", b"0")], deflate
    )
    second = _hand_made_syn_stream(
        3, [(b"streamtype", b"data"), (b"port", b"80"), (b"requestid", b"0")], deflate
    )
    assert first[18:20] == b"\x78\xbb" or first[18] == 0x78  # a zlib stream ...
    assert first[20:24] == bytes.fromhex("e3c6a7c2")  # ... naming the SPDY dictionary
    decoder = spdy.FrameDecoder()
    frames: list[spdy.Frame] = []
    for byte in first + second:  # one byte at a time: frames only complete when whole
        frames += decoder.receive(bytes([byte]))
    assert frames == [
        spdy.SynStream(1, (("streamtype", "error"), ("port", "80"), ("requestid", "0"))),
        spdy.SynStream(3, (("streamtype", "data"), ("port", "80"), ("requestid", "0"))),
    ]
    # The second block was compressed in the first one's context: a fresh inflater cannot read it.
    with pytest.raises(spdy.SpdyError):
        spdy.FrameDecoder().receive(second)


def test_spdy_encoder_round_trip_and_refusals() -> None:
    encoder, decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
    frames: list[spdy.Frame] = [
        spdy.SynReply(1, (("a", "b\x00c"),), spdy.FLAG_FIN),
        spdy.HeadersFrame(1, (("x-y", "z"),)),
        spdy.SynStream(2, (), spdy.FLAG_UNIDIRECTIONAL, associated_stream_id=1, priority=3),
    ]
    assert decoder.receive(b"".join(encoder.encode(f) for f in frames)) == frames
    with pytest.raises(spdy.SpdyError, match="lower-case"):
        encoder.encode(spdy.SynReply(1, (("Port", "80"),)))
    with pytest.raises(spdy.SpdyError, match="version"):
        spdy.FrameDecoder().receive(bytes.fromhex("80020006 00000004 00000001"))
    with pytest.raises(spdy.SpdyError, match="too short"):
        spdy.FrameDecoder().receive(bytes.fromhex("80030006 00000002 0000"))
    # Unknown control frames (NOOP, CREDENTIAL) are skipped.
    assert spdy.FrameDecoder().receive(bytes.fromhex("80030005 00000000 80030006 00000004 00000009")) == [
        spdy.Ping(9)
    ]


# -- remote-command channels -------------------------------------------------------------------------


def test_channel_framing_byte_by_byte() -> None:
    v5, v4 = CHANNEL_PROTOCOLS["v5.channel.k8s.io"], CHANNEL_PROTOCOLS["v4.channel.k8s.io"]
    text = CHANNEL_PROTOCOLS["v4.base64.channel.k8s.io"]
    assert encode_channel(v5, 1, b"hi\n") == b"\x01hi\n"
    assert encode_channel(text, 2, b"oops") == "2b29wcw=="
    assert decode_channel(v4, b"\x00ls\n") == (0, b"ls\n")
    assert decode_channel(text, "0bHMK") == (0, b"ls\n")
    assert decode_channel(v5, close_signal(0)) == (255, b"\x00")
    assert close_signal(0) == b"\xff\x00"
    for bad in (b"", "x"):
        with pytest.raises(ValueError):
            decode_channel(v5, bad)
    # kubectl 1.32 offers v5 first, the Python client v5 then v4; an unknown-only offer is refused.
    assert negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io"]) == v5
    assert negotiate(["v4.channel.k8s.io", "v5.channel.k8s.io"]) == v4
    assert negotiate(["v9.channel.k8s.io"]) is None
    assert negotiate([]) == CHANNEL_PROTOCOLS["channel.k8s.io"]


def test_error_channel_status() -> None:
    v4, v1 = CHANNEL_PROTOCOLS["v4.channel.k8s.io"], CHANNEL_PROTOCOLS["channel.k8s.io"]
    failure = exit_code_status(["sh", "-c", "exit 3"], 3)
    assert json.loads(error_channel_payload(v4, failure) or b"") == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], "
        "exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    assert json.loads(error_channel_payload(v4, success_status()) or b"")["status"] == "Success"
    assert error_channel_payload(v1, success_status()) is None
    assert error_channel_payload(v1, failure) == failure["message"].encode()


def test_stream_options_refusals() -> None:
    pod = {"metadata": {"name": "debug"}, "spec": {"containers": [{"name": "shell"}]}, "status": {}}
    options = stream_options(pod, "exec", {"command": ["sh", "-c", "echo hi"], "stdout": ["true"]})
    assert (options.container, options.command, options.stdout, options.stdin) == (
        "shell",
        ["sh", "-c", "echo hi"],
        True,
        False,
    )
    for query, message in (
        (
            {"command": ["ls"], "stdout": ["1"], "container": ["nope"]},
            "container nope is not valid for pod debug",
        ),
        ({"stdout": ["1"]}, "you must specify at least one command for the container"),
        ({"command": ["ls"]}, "you must specify at least 1 of stdin, stdout, stderr"),
    ):
        with pytest.raises(Refused, match=message) as refused:
            stream_options(pod, "exec", query)
        assert refused.value.status["code"] == 400
    done = {**pod, "status": {"phase": "Succeeded"}}
    with pytest.raises(Refused, match="completed pod"):
        stream_options(done, "attach", {})


# -- port-forward's SPDY session, sans-I/O ---------------------------------------------------------------


def _pod_with_port(port: int) -> dict[str, object]:
    return {
        "metadata": {"name": "web-1", "namespace": "prod", "uid": "u-1"},
        "spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": port}]}]},
    }


def _open_pair(client: spdy.FrameEncoder, port: int, request_id: str, first_id: int) -> bytes:
    headers = (("port", str(port)), ("requestid", request_id))
    return client.encode(spdy.SynStream(first_id, (("streamtype", "error"), *headers))) + client.encode(
        spdy.SynStream(first_id + 2, (("streamtype", "data"), *headers))
    )


def test_port_forward_session_answers_a_declared_port() -> None:
    session, client, reader = PortForwardSession(_pod_with_port(80)), spdy.FrameEncoder(), spdy.FrameDecoder()
    replies = reader.receive(session.receive(_open_pair(client, 80, "0", 1) + client.encode(spdy.Ping(1))))
    assert replies == [spdy.SynReply(1), spdy.SynReply(3), spdy.Ping(1)]
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert reader.receive(session.receive(client.encode(spdy.Data(3, request[:10])))) == []
    answer = reader.receive(session.receive(client.encode(spdy.Data(3, request[10:]))))
    assert answer == [
        spdy.Data(
            3,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
            b"Connection: close\r\n\r\nhello from web-1:80\n",
            spdy.FLAG_FIN,
        ),
        spdy.Data(1, b"", spdy.FLAG_FIN),
    ]
    session.receive(client.encode(spdy.GoAway(3)))
    assert session.finished


def test_port_forward_session_refuses_an_undeclared_port_as_a_kubelet() -> None:
    session, client, reader = PortForwardSession(_pod_with_port(80)), spdy.FrameEncoder(), spdy.FrameDecoder()
    frames = reader.receive(session.receive(_open_pair(client, 81, "7", 5)))
    assert frames[:2] == [spdy.SynReply(5), spdy.SynReply(7)]
    error, data = frames[2], frames[3]
    assert isinstance(error, spdy.Data) and error.stream_id == 5 and error.fin
    assert b"error forwarding port 81 to pod u-1" in error.data
    assert b"dial tcp4 127.0.0.1:81: connect: connection refused" in error.data
    assert data == spdy.Data(7, b"", spdy.FLAG_FIN)
    # A stream without a usable port is reset; garbage ends the session with GOAWAY (PROTOCOL_ERROR).
    bad = client.encode(spdy.SynStream(9, (("streamtype", "data"), ("port", "x"))))
    assert reader.receive(session.receive(bad)) == [spdy.RstStream(9, spdy.PROTOCOL_ERROR)]
    broken = PortForwardSession(_pod_with_port(80))
    assert spdy.FrameDecoder().receive(broken.receive(bytes.fromhex("80010006 00000004 00000001"))) == [
        spdy.GoAway(0, spdy.GOAWAY_PROTOCOL_ERROR)
    ]
    assert broken.finished


# -- the fake container ------------------------------------------------------------------------------


def _container() -> Container:
    return Container("default", "debug", "shell", {"DB_PASSWORD": "s3cr3t-Passw0rd!"})


def _run(
    container: Container, argv: list[str], stdin: bytes = b"", tty: bool = False
) -> tuple[int, bytes, bytes]:
    out, err = bytearray(), bytearray()
    status = container.exec(
        argv, ProcessIO(BytesInput(stdin), out.extend, err.extend, threading.Event(), tty)
    )
    return status, bytes(out), bytes(err)


def test_shell_commands_and_exit_codes() -> None:
    container = _container()
    assert _run(container, ["echo", "hi"]) == (0, b"hi\n", b"")
    assert _run(container, ["sh", "-c", "exit 3"]) == (3, b"", b"")
    assert _run(container, ["printenv", "DB_PASSWORD"]) == (0, b"s3cr3t-Passw0rd!\n", b"")
    assert _run(container, ["/bin/hostname"]) == (0, b"debug\n", b"")
    assert _run(container, ["sh", "-c", "nosuch --flag"]) == (127, b"", b"sh: 1: nosuch: not found\n")
    assert _run(container, ["cat", "/etc/hostname", "/nope"]) == (
        1,
        b"debug\n",
        b"cat: /nope: No such file or directory\n",
    )
    assert _run(container, ["sh", "-c", "echo 'unclosed"])[0] == 2
    with pytest.raises(ExecNotFound, match='exec: "nosuch": executable file not found in \\$PATH'):
        _run(container, ["nosuch"])
    assert "password: s3cr3t-Passw0rd!" in _run(container, ["cat", "/app/config.yaml"])[1].decode()
    assert _run(container, ["ls", "/tmp"]) == (0, b"", b"")
    assert _run(container, ["id"])[1] == b"uid=0(root) gid=0(root) groups=0(root)\n"


def test_shell_scripts() -> None:
    container = _container()
    script = (
        "cd /tmp && echo first > notes.txt; echo second >> notes.txt\n"
        "cat notes.txt | grep sec; false || echo recovered && echo chained\n"
        "NAME=world; echo \"hello $NAME\" '$NAME' ${NAME}; echo $? ; ls /tmp/*.txt\n"
        "mkdir -p /tmp/a/b && test -d /tmp/a/b && echo made; rm -r /tmp/a; [ -e /tmp/a ] || echo gone\n"
        "nosuch 2>/tmp/err; echo status $?; cat /tmp/err; ls /nope 2>&1 | wc -l"
    )
    status, out, err = _run(container, ["bash", "-c", script])
    assert out.decode().splitlines() == [
        "second",
        "recovered",
        "chained",
        "hello world $NAME world",
        "0",
        "/tmp/notes.txt",
        "made",
        "gone",
        "status 127",
        "sh: 1: nosuch: not found",
        "1",
    ]
    assert (status, err) == (0, b"")
    assert container.fs.read("/tmp/notes.txt") == b"first\nsecond\n"
    assert tokenize("a 'b c' \"d $E\"") and parse(tokenize("a && b | c; d")) == parse(tokenize("a&&b|c;d"))


def test_interactive_shell_on_a_tty_echoes_and_uses_crlf() -> None:
    container = _container()
    stopped = threading.Event()
    stdin = StreamInput(stopped)
    out = bytearray()
    process = ProcessIO(stdin, out.extend, out.extend, stopped, True, stdin.interrupted)
    result: list[int] = []
    shell = threading.Thread(target=lambda: result.append(container.exec(["sh"], process)))
    shell.start()
    stdin.feed(b"echo hi\r", tty=True)
    stdin.feed(b"ech\x7fho $HOSTNAME\rexit 5\r", tty=True)
    shell.join(timeout=5)
    assert result == [5]
    assert bytes(out) == b"# echo hi\r\nhi\r\n# ech\b \bho $HOSTNAME\r\ndebug\r\n# exit 5\r\n"


def test_non_tty_shell_reads_commands_from_stdin() -> None:
    status, out, _ = _run(_container(), ["sh"], b"echo one\nexit 4\necho never\n")
    assert (status, out) == (4, b"one\n")


def test_sleep_ends_when_the_session_stops() -> None:
    container = _container()
    stopped = threading.Event()
    process = ProcessIO(BytesInput(), lambda data: None, lambda data: None, stopped)
    result: list[int] = []
    sleeper = threading.Thread(target=lambda: result.append(container.exec(["sleep", "30"], process)))
    sleeper.start()
    stopped.set()
    sleeper.join(timeout=2)
    assert result == [130]


def test_tar_round_trip_as_kubectl_cp_runs_it() -> None:
    container = _container()
    container.fs.mkdir("/data/sub", parents=True)
    container.fs.write("/data/sub/report.csv", b"a,b\n1,2\n")
    status, archive, err = _run(container, ["tar", "cf", "-", "/data"])
    assert status == 0 and err == b"tar: Removing leading `/' from member names\n"
    other = _container()
    # kubectl cp local pod:/tmp/x runs "tar -xmf - -C /tmp" with the archive on stdin.
    assert _run(other, ["tar", "-xmf", "-", "-C", "/tmp"], archive) == (0, b"", b"")
    assert other.fs.read("/tmp/data/sub/report.csv") == b"a,b\n1,2\n"
    assert _run(other, ["tar", "-tvf", "-"], archive)[1].decode().splitlines() == [
        "data/",
        "data/sub/",
        "data/sub/report.csv",
    ]
    # An archive that climbs out of -C is refused member by member.
    import io
    import tarfile

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as out:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 1
        out.addfile(info, io.BytesIO(b"x"))
    status, _, err = _run(other, ["tar", "xf", "-", "-C", "/tmp"], evil.getvalue())
    assert status == 2 and b"Member name contains '..'" in err
    assert not other.fs.is_file("/etc/passwd")
    assert _run(other, ["tar", "xf", "-"], b"not a tar")[0] == 2
