"""The cluster double's streams: exec, attach and port-forward (issue 17).

Sans-I/O first (the SPDY/3.1 codec and the remote-command channel framing byte by byte, the port-forward
session, the fake container's shell and tar), then real kubectl and the Python ``kubernetes`` client
directly against the double (``wardgate.dev.kube``) over TLS.
"""

from __future__ import annotations

import base64
import fcntl
import http.client
import io
import json
import os
import pty
import random
import re
import select
import ssl
import struct
import subprocess
import tarfile
import termios
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from kubernetes import client
from kubernetes.stream import portforward, stream

from tests.kube_fixtures import (
    DOUBLE_TOKEN,
    kube_double,
    kubectl,
    kubectl_path,
    start_kube_double,
    write_kubeconfig,
)
from wardgate.dev.kube import spdy, streams
from wardgate.dev.kube.container import (
    BytesInput,
    Container,
    ExecNotFound,
    ProcessIO,
    StreamInput,
    parse,
    tokenize,
)
from wardgate.dev.kube.server import KubeDouble
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

__all__ = ["kube_double"]  # the module-scoped double (tests/kube_fixtures.py), imported for pytest

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
    assert decode_channel(v5, "\x00typed") == (0, b"typed")  # a text frame on a binary protocol
    for protocol, bad in ((v5, b""), (v5, ""), (text, "x"), (text, "0***")):
        with pytest.raises(ValueError):
            decode_channel(protocol, bad)
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
    with pytest.raises(ExecNotFound, match='exec: "cd"'):  # a shell builtin is no program
        _run(container, ["cd", "/tmp"])
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
    substituted = 'N=$(echo 6); echo "[$(hostname)] $((N * 7)) $(( (1 - 8) / 2 ))" $(cd /tmp; pwd) $(pwd)'
    assert _run(container, ["sh", "-c", substituted]) == (0, b"[debug] 42 -3 /tmp /\n", b"")
    loops = (
        "for i in 1 2; do for j in a b; do echo $i$j; done; done | head -n 3\n"
        "n=0; while [ $n != 2 ]; do n=$((n + 1)); done; until true; do echo never; done; echo n=$n\n"
        "if test -d /nope; then echo a; elif [ -f /etc/hostname ]; then echo b; else echo c; fi >/tmp/if\n"
        "echo x | while read line; do echo got $line; done; cat /tmp/if"
    )
    assert _run(container, ["sh", "-c", loops]) == (0, b"1a\n1b\n2a\nn=2\ngot x\nb\n", b"")
    assert _run(container, ["sh", "-c", "set -eu; set -- a b; echo $# $2"]) == (0, b"2 b\n", b"")
    assert _run(container, ["sh", "-c", "if true; then fi"]) == (
        2,
        b"",
        b'sh: 1: Syntax error: "fi" unexpected\n',
    )
    assert _run(container, ["sh", "-c", "echo $((1 / 0)); echo never"]) == (
        2,
        b"",
        b"sh: 1: arithmetic expression: 1 / 0\n",
    )
    assert tokenize("a 'b c' \"d $E\"") and parse(tokenize("a && b | c; d")) == parse(tokenize("a&&b|c;d"))


SHELL_PIECES = (
    "echo cat ls -la / /tmp | || && ; > >> < 2> 2>&1 >&2 ' \" $ $X ${ } \\ # * ? tar cf xf - -C head -n "
    "tail -c+3 $(( $( $((1+ 1/0)) )) wc -l grep [ ] test -d mkdir -p rm -rf cd .. exit 3 sleep 0 sh -c read "
    "x env printenv for in do done if then elif else fi "
    "touch a stty size = A=1 export ( ) ` ~ & uname -a /dev/null /etc/hostname !"
)


def test_shell_survives_any_script() -> None:
    """Scripts made of random shell pieces: every one ends with a status, none raises (a bug in the
    double would otherwise leave kubectl waiting on a stream that never ends)."""
    pieces = [*SHELL_PIECES.split(), "\n"]
    generator = random.Random(17)
    for _ in range(1500):
        script = " ".join(generator.choice(pieces) for _ in range(generator.randint(1, 8)))
        status, _, _ = _run(_container(), ["sh", "-c", script], b"abc\ndef\n")
        assert 0 <= status <= 255, script


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


def test_ctrl_c_on_a_tty_ends_a_running_loop() -> None:
    container = _container()
    stopped = threading.Event()
    stdin = StreamInput(stopped)
    out = bytearray()
    process = ProcessIO(stdin, out.extend, out.extend, stopped, True, stdin.interrupted)
    result: list[int] = []
    shell = threading.Thread(target=lambda: result.append(container.exec(["sh"], process)))
    shell.start()
    stdin.feed(b"while true; do sleep 0.01; done\r", tty=True)
    stdin.feed(b"\x03", tty=True)  # ^C: the loop ends, the shell prompts again
    stdin.feed(b"exit 0\r", tty=True)
    shell.join(timeout=5)
    assert result == [0]
    assert bytes(out).endswith(b"^C\r\n# exit 0\r\n")


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
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as out:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 1
        out.addfile(info, io.BytesIO(b"x"))
    status, _, err = _run(other, ["tar", "xf", "-", "-C", "/tmp"], evil.getvalue())
    assert status == 2 and b"Member name contains '..'" in err
    assert not other.fs.is_file("/etc/passwd")
    assert _run(other, ["tar", "xf", "-"], b"not a tar")[0] == 2
    assert _run(other, ["tar", "cf", "-", "nope"])[1:] == (
        b"\x00" * 10240,  # GNU tar still writes an (empty) archive
        b"tar: nope: Cannot stat: No such file or directory\n"
        b"tar: Exiting with failure status due to previous errors\n",
    )
    # kubectl cp --retries resumes a download with "tar cf - <path> | tail -c+<offset>".
    status, resumed, _ = _run(container, ["sh", "-c", "tar cf - /data | tail -c+513"])
    assert (status, resumed) == (0, archive[512:])


# -- real kubectl and the Python client against the double -------------------------------------------


@pytest.fixture(scope="module")
def kubectl_env(kube_double: KubeDouble, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment for kubectl runs that outlive one call (pty, attach, port-forward)."""
    home = tmp_path_factory.mktemp("kubectl-home")
    assert kube_double.certificates is not None
    config = write_kubeconfig(
        home / "config", kube_double.url, DOUBLE_TOKEN, kube_double.certificates.ca_file
    )
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": str(config)}


def _kubectl(double: KubeDouble, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return kubectl(double, DOUBLE_TOKEN, None, *args, input=input, timeout=30)


def test_kubectl_exec_output_and_exit_codes(kube_double: KubeDouble) -> None:
    result = _kubectl(kube_double, "exec", "debug", "--", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", "")
    result = _kubectl(kube_double, "exec", "debug", "--", "sh", "-c", "exit 3")
    assert (result.returncode, result.stderr) == (3, "command terminated with exit code 3\n")
    result = _kubectl(kube_double, "exec", "debug", "-c", "shell", "--", "printenv", "DB_PASSWORD")
    assert (result.returncode, result.stdout) == (0, "s3cr3t-Passw0rd!\n")


def test_kubectl_exec_stdin_and_stderr(kube_double: KubeDouble) -> None:
    # The v5 close signal ends cat's stdin: without it (v4) this would never end.
    script = "cat; echo to-stderr >&2"
    result = _kubectl(kube_double, "exec", "-i", "debug", "--", "sh", "-c", script, input="a\nb\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "a\nb\n", "to-stderr\n")
    result = _kubectl(kube_double, "exec", "-i", "debug", "--", "sh", input="echo from stdin; nosuch\n")
    assert (result.returncode, result.stdout) == (127, "from stdin\n")
    assert result.stderr == "sh: 1: nosuch: not found\ncommand terminated with exit code 127\n"


def test_kubectl_exec_refusals(kube_double: KubeDouble) -> None:
    result = _kubectl(kube_double, "exec", "debug", "--", "nosuch")
    assert result.returncode == 1
    assert result.stderr.startswith("error: Internal error occurred: error executing command in container")
    assert 'exec: "nosuch": executable file not found in $PATH' in result.stderr
    result = _kubectl(kube_double, "exec", "debug", "-c", "nope", "--", "ls")
    assert (result.returncode, result.stderr) == (
        1,
        "Error from server (BadRequest): container nope is not valid for pod debug\n",
    )
    result = _kubectl(kube_double, "exec", "missing", "--", "ls")
    assert result.returncode == 1 and 'pods "missing" not found' in result.stderr


ENV_POD = """
apiVersion: v1
kind: Pod
metadata: {name: env-demo, namespace: prod}
spec:
  containers:
  - name: app
    image: busybox:1.36
    envFrom:
    - {configMapRef: {name: web-config}, prefix: CFG_}
    env:
    - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db-credentials, key: password}}}
    - {name: MISSING, valueFrom: {configMapKeyRef: {name: web-config, key: nope, optional: true}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
"""


def test_exec_sees_the_environment_the_kubelet_would_build(kube_double: KubeDouble) -> None:
    assert _kubectl(kube_double, "apply", "-f", "-", input=ENV_POD).returncode == 0
    script = "printenv DB_PASSWORD POD_NAME CFG_LOG_LEVEL; echo [$MISSING]"
    result = _kubectl(kube_double, "exec", "-n", "prod", "env-demo", "--", "sh", "-c", script)
    assert (result.returncode, result.stdout) == (0, "s3cr3t-Passw0rd!\nenv-demo\ninfo\n[]\n")


def _read_until(fd: int, wanted: bytes, timeout: float = 10.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the pty closed: kubectl exited
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_kubectl_exec_interactive_tty(kubectl_env: dict[str, str]) -> None:
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))  # rows, columns
    process = subprocess.Popen(
        [kubectl_path(), "exec", "-it", "debug", "--", "sh"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=kubectl_env,
        close_fds=True,
    )
    os.close(terminal)
    try:
        assert _read_until(main, b"# ").endswith(b"# ")
        os.write(main, b"echo $TERM on $HOSTNAME\r")
        # Typed input is echoed and lines end in CRLF, as behind a pty.
        assert _read_until(main, b"xterm on debug\r\n# ").endswith(
            b"echo $TERM on $HOSTNAME\r\nxterm on debug\r\n# "
        )
        os.write(main, b"stty size\r")
        seen = _read_until(main, b"33 111\r\n# ")
        assert b"stty size\r\n33 111\r\n# " in seen  # kubectl's resize reached the shell
        os.write(main, b"exit 7\r")
        assert process.wait(timeout=10) == 7
    finally:
        process.kill()
        os.close(main)


def test_kubectl_exec_over_spdy(kubectl_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl's fallback (and clients before 1.30): remote command over SPDY/3.1 streams."""
    served: list[str] = []
    original = streams._serve_channels_spdy

    def spy(*args: Any) -> None:
        served.append("spdy")
        original(*args)

    monkeypatch.setattr(streams, "_serve_channels_spdy", spy)
    env = {**kubectl_env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl_path(), *args], input=input, capture_output=True, text=True, env=env, timeout=30
        )

    assert run("exec", "debug", "--", "echo", "hi").stdout == "hi\n"
    result = run("exec", "debug", "--", "sh", "-c", "exit 5")
    assert (result.returncode, result.stderr) == (5, "command terminated with exit code 5\n")
    result = run("exec", "-i", "debug", "--", "sh", "-c", "cat; echo e >&2", input="piped\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "piped\n", "e\n")  # stdin's FIN: EOF
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    script = "echo ready; read line; stty size; exit 6"
    process = subprocess.Popen(
        [kubectl_path(), "exec", "-it", "debug", "--", "sh", "-c", script],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        close_fds=True,
    )
    os.close(terminal)
    try:
        # Typing waits for the command's first output: by then kubectl's first resize has been sent (on
        # its own stream, which could otherwise overtake stdin).
        assert b"ready\r\n" in _read_until(main, b"ready\r\n")
        os.write(main, b"go\r")
        assert b"40 120\r\n" in _read_until(main, b"40 120\r\n")  # the resize stream's first size
        assert process.wait(timeout=10) == 6
    finally:
        process.kill()
        os.close(main)
    assert served == ["spdy"] * 4


def test_kubectl_cp_both_ways(kube_double: KubeDouble, tmp_path: Path) -> None:
    upload = tmp_path / "report.txt"
    upload.write_text("quarterly numbers\n")
    result = _kubectl(kube_double, "cp", str(upload), "default/debug:/tmp/report.txt")
    assert result.returncode == 0, result.stderr
    assert (
        _kubectl(kube_double, "exec", "debug", "--", "cat", "/tmp/report.txt").stdout == "quarterly numbers\n"
    )
    download = tmp_path / "back.txt"
    result = _kubectl(kube_double, "cp", "default/debug:/tmp/report.txt", str(download))
    assert result.returncode == 0, result.stderr
    assert download.read_text() == "quarterly numbers\n"
    # A directory both ways: kubectl tars it, the container untars it under the target.
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "leaf.txt").write_text("leaf\n")
    assert _kubectl(kube_double, "cp", str(tmp_path / "tree"), "default/debug:/tmp/tree").returncode == 0
    assert _kubectl(kube_double, "exec", "debug", "--", "cat", "/tmp/tree/sub/leaf.txt").stdout == "leaf\n"


def _lines(process: subprocess.Popen[bytes]) -> Iterator[str]:
    assert process.stdout is not None
    for raw in iter(process.stdout.readline, b""):
        yield raw.decode()


def test_kubectl_attach_follows_the_log_and_feeds_stdin(
    kube_double: KubeDouble, kubectl_env: dict[str, str]
) -> None:
    process = subprocess.Popen(
        [kubectl_path(), "attach", "-i", "debug"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=kubectl_env,
    )
    assert process.stdin is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(_lines(process)), daemon=True)
    reader.start()
    try:
        process.stdin.write(b"hello there\n")
        process.stdin.flush()
        deadline = time.monotonic() + 10
        while "received: hello there\n" not in lines and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "received: hello there\n" in lines  # stdin reached the main process, which logged it
        kube_double.store.append_log("default", "debug", "shell", "a new log line")
        while "a new log line\n" not in lines and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lines[-1] == "a new log line\n"
    finally:
        process.terminate()
        process.wait(timeout=10)
    logs = _kubectl(kube_double, "logs", "debug", "--tail", "2").stdout
    assert logs == "received: hello there\na new log line\n"


@pytest.fixture(scope="module")
def web_pod(kube_double: KubeDouble) -> str:
    names = _kubectl(kube_double, "get", "pods", "-n", "prod", "-l", "app=web", "-o", "name").stdout.split()
    assert names, "the seeded Deployment web has no pods"
    return names[0].removeprefix("pod/")


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["tunnelled", "spdy-upgrade"])
def test_kubectl_port_forward(
    kubectl_env: dict[str, str], web_pod: str, websockets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    for name in ("_serve_port_forward_tunnel", "_serve_port_forward_spdy"):
        original = getattr(streams, name)

        def spy(*args: object, _original: object = original, _name: str = name) -> None:
            served.append(_name)
            _original(*args)  # type: ignore[operator]

        monkeypatch.setattr(streams, name, spy)
    env = {**kubectl_env, "KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets}
    for port, expected in ((80, f"hello from {web_pod}:80\n"), (81, None)):
        process = subprocess.Popen(
            [kubectl_path(), "port-forward", "-n", "prod", f"pod/{web_pod}", f":{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            assert process.stdout is not None
            first = process.stdout.readline().decode()
            match = re.match(rf"Forwarding from 127\.0\.0\.1:(\d+) -> {port}", first)
            assert match, first
            url = f"http://127.0.0.1:{match[1]}/"
            if expected is not None:
                with urllib.request.urlopen(url, timeout=10) as response:
                    assert response.read().decode() == expected
            else:
                with pytest.raises(OSError):  # nothing listens on 81 in the pod: the connection drops
                    urllib.request.urlopen(url, timeout=10)
        finally:
            process.terminate()
            _, err = process.communicate(timeout=10)
        if expected is None:
            assert f"error forwarding port {port} to pod" in err.decode()
            assert "connect: connection refused" in err.decode()
    assert set(served) == {
        "_serve_port_forward_tunnel" if websockets == "true" else "_serve_port_forward_spdy"
    }


def _core(double: KubeDouble) -> client.CoreV1Api:
    configuration = client.Configuration()
    configuration.host = double.url
    assert double.certificates is not None
    configuration.ssl_ca_cert = str(double.certificates.ca_file)
    configuration.api_key = {"authorization": f"Bearer {DOUBLE_TOKEN}"}
    return client.CoreV1Api(client.ApiClient(configuration))


def test_python_client_exec(kube_double: KubeDouble) -> None:
    core = _core(kube_double)
    output = stream(
        core.connect_get_namespaced_pod_exec,
        "debug",
        "default",
        command=["sh", "-c", "echo out; echo err >&2"],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
    )
    assert output == "out\nerr\n"
    session = stream(
        core.connect_get_namespaced_pod_exec,
        "debug",
        "default",
        command=["sh", "-c", "cat > /tmp/from-python; exit 4"],
        stdout=True,
        stderr=True,
        stdin=True,
        tty=False,
        _preload_content=False,
    )
    try:
        session.write_stdin("written by the client\n")
        session.close_channel(0)  # v5: [255, 0] ends cat's stdin
        session.run_forever(timeout=10)
        assert (session.subprotocol, session.returncode) == ("v5.channel.k8s.io", 4)
    finally:
        session.close()
    assert (
        _kubectl(kube_double, "exec", "debug", "--", "cat", "/tmp/from-python").stdout
        == "written by the client\n"
    )


def test_python_client_port_forward(kube_double: KubeDouble, web_pod: str) -> None:
    """The Python client forwards over WebSocket channels (v4.channel.k8s.io, two per port)."""
    forward = portforward(
        _core(kube_double).connect_get_namespaced_pod_portforward, web_pod, "prod", ports="80,81"
    )
    try:
        connection = http.client.HTTPConnection("pod", 80, timeout=10)
        connection.sock = forward.socket(80)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, f"hello from {web_pod}:80\n".encode())
        assert forward.error(80) is None
        assert "error forwarding port 81 to pod" in (forward.error(81) or "")
    finally:
        forward.close()


def _raw_websocket(double: KubeDouble, path: str, protocols: list[str] | None) -> websocket.WebSocket:
    """A WebSocket opened by an independent client (websocket-client), for the older protocols."""
    assert double.certificates is not None
    url = double.url.replace("https://", "wss://") + path
    return websocket.create_connection(
        url,
        header=[f"Authorization: Bearer {DOUBLE_TOKEN}"],
        subprotocols=protocols,
        sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(double.certificates.ca_file)},
        timeout=10,
    )


def _messages(connection: websocket.WebSocket) -> list[bytes | str]:
    received: list[bytes | str] = []
    while True:
        opcode, data = connection.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return received
        received.append(data.decode() if opcode == websocket.ABNF.OPCODE_TEXT else data)


EXEC_PATH = (
    "/api/v1/namespaces/default/pods/debug/exec?command=sh&command=-c&command=echo+hi%3B+exit+2&stdout=1"
)


def test_v4_binary_and_base64_protocols(kube_double: KubeDouble) -> None:
    connection = _raw_websocket(kube_double, EXEC_PATH, ["v4.channel.k8s.io"])
    assert connection.getsubprotocol() == "v4.channel.k8s.io"
    messages = _messages(connection)
    assert messages[:2] == [b"\x01", b"\x01hi\n"]  # the kubelet's empty "connected" message first
    error = messages[2]
    assert isinstance(error, bytes) and error[:1] == b"\x03"
    status = json.loads(error[1:])
    assert (status["reason"], status["details"]["causes"]) == (
        "NonZeroExitCode",
        [{"reason": "ExitCode", "message": "2"}],
    )

    connection = _raw_websocket(kube_double, EXEC_PATH, ["v4.base64.channel.k8s.io"])
    messages = _messages(connection)
    assert messages[:2] == ["1", "1" + base64.b64encode(b"hi\n").decode()]
    assert str(messages[2]).startswith("3")
    assert json.loads(base64.b64decode(str(messages[2])[1:]))["status"] == "Failure"

    # The unversioned protocol: the error channel carries the message as text, not a Status.
    connection = _raw_websocket(kube_double, EXEC_PATH, None)
    messages = _messages(connection)
    assert messages[-1] == (
        b"\x03command terminated with non-zero exit code: error executing command "
        b"[sh -c echo hi; exit 2], exit code 2"
    )


def test_v5_close_signal_and_pings_byte_by_byte(kube_double: KubeDouble) -> None:
    path = "/api/v1/namespaces/default/pods/debug/exec?command=cat&stdin=true&stdout=true"
    connection = _raw_websocket(kube_double, path, ["v5.channel.k8s.io"])
    assert connection.getsubprotocol() == "v5.channel.k8s.io"
    assert connection.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x01")  # connected
    connection.ping(b"are you there")
    assert connection.recv_data(control_frame=True) == (websocket.ABNF.OPCODE_PONG, b"are you there")
    connection.send_binary(b"\x00hello ")
    connection.send_binary(b"\x00world")
    connection.send_binary(b"\xff\x00")  # stdin closed: cat ends
    messages = _messages(connection)
    assert b"".join(m[1:] for m in messages if isinstance(m, bytes) and m[:1] == b"\x01") == b"hello world"
    error = messages[-1]
    assert isinstance(error, bytes) and error[:1] == b"\x03"
    assert json.loads(error[1:])["status"] == "Success"


def test_an_unknown_subprotocol_is_refused_before_upgrading(kube_double: KubeDouble) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        _raw_websocket(kube_double, EXEC_PATH, ["v9.channel.k8s.io"])
    assert refused.value.status_code == 400


def test_stopping_the_double_ends_open_streams(tmp_path: Path) -> None:
    double = start_kube_double(tmp_path)
    try:
        home = tmp_path / "home"
        home.mkdir()
        assert double.certificates is not None
        config = write_kubeconfig(home / "config", double.url, DOUBLE_TOKEN, double.certificates.ca_file)
        process = subprocess.Popen(
            [kubectl_path(), "exec", "debug", "--", "sh", "-c", "echo started; sleep 60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": str(config)},
        )
        assert process.stdout is not None
        assert process.stdout.readline() == b"started\n"
    finally:
        started = time.monotonic()
        double.stop()
    try:
        process.wait(timeout=10)
        assert time.monotonic() - started < 10
        assert process.returncode != 0
    finally:
        process.kill()
