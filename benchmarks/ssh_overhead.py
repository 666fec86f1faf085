"""SSH through the TCP gateway (issue 13): the stock OpenSSH client against a throwaway sshd directly
and through wardgate's SSH listener, in one run.

- **Round trip**: ``ssh host true`` at 1 client, a new ``ssh`` process each time (a full TCP
  connect, key exchange, authentication, one exec channel, exit status): what an agent pays per
  command. Through wardgate that includes the gateway's second handshake, with the target.
- **Throughput**: copying a 100 MB file of random bytes with ``scp`` (OpenSSH 9: over SFTP),
  uploaded and downloaded. Through wardgate every SFTP request is decided by policy on its
  target-resolved path, each file operation is recorded, and the bytes are hashed (SHA-256).

Paths, alternated call by call within each round (a noisy machine slows them alike):

- **direct**: Debian's ``sshd`` (``tests/ssh_target.py``: its own config and keys on a free port of
  127.0.0.1), the client logging in with its key;
- **wardgate**: the SSH listener as ``wardgate serve-tcp`` runs it (``build_services`` +
  ``TcpGateway``, uvloop when installed), in a process of its own started by this script, with the
  host key from ``SSH_HOST_KEY`` and a checking-only CA from ``SSH_CA_PUBLIC_KEY`` (as on the task).
  The client logs in with an OpenSSH user certificate of that CA (what ``wardgate ssh login``
  hands out: the default way in); the connection ``bench-ssh`` pins the target's host key and
  holds the target's private key in Secrets Manager (moto). Every exec is parsed and decided by the
  policy in force (the development policy plus rules for the bench identity: ``true`` and SFTP read
  and write), recorded before it runs, its output masked; recording goes to an in-memory sink (the
  group commit inline, events serialised and counted, then dropped).

The stores behind the gateway are the local stack's (``DevStack``, moto as a server in this
process: ``pg_overhead.local_stack``). The gateway process's CPU time during the copies
(user + system, /proc) is reported per MB.

    .venv/bin/python benchmarks/ssh_overhead.py             # print the tables (about 1-2 minutes)
    .venv/bin/python benchmarks/ssh_overhead.py --write     # and update docs/benchmarks.md
    .venv/bin/python benchmarks/ssh_overhead.py --profile   # only: py-spy of the gateway process
                                                            # during one upload and one download

Needs Debian's ``openssh-server`` and ``openssh-client`` (``make services``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median, quantiles
from typing import Any

from common import DOC, ROOT, code_version, machine, write_section
from overhead import log
from pg_overhead import (
    GatewayProcess,
    _exit_with_parent,
    local_stack,
    policy_document,
    uvloop_available,
    verdict,
)

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))
sys.path.insert(0, str(ROOT))  # tests.ssh_target: the throwaway sshd

MARKERS = ("<!-- sshoverhead:start -->", "<!-- sshoverhead:end -->")
SUMMARY_MARKERS = ("<!-- sshsummary:start -->", "<!-- sshsummary:end -->")
SECTION_HEADING = "## SSH through the TCP gateway"
CONNECTION = "bench-ssh"
SECRET = "wardgate/bench-ssh"
AGENT = "bench-agent"
FILE_MB = 100
TARGET_ADDED_MS = 20.0  # added p50 of `ssh host true`, the gateway's second handshake included
TARGET_RATIO = 0.7  # wardgate scp throughput / direct
COMMAND = ".venv/bin/python benchmarks/ssh_overhead.py --write"
DIRECTIONS = ("upload", "download")
PATHS = {  # the rows of the tables, in this order ({loop}: the gateway's event loop)
    "direct": "sshd directly, key exchange " + "{kex}",
    "direct-default": "sshd directly, OpenSSH's default key exchange ({default_kex})",
    "wardgate": "wardgate, {loop}, recording in memory",
    "wardgate-gcm": "wardgate as above, AES-GCM only to the client (`WARDGATE_SSH_CIPHERS`)",
}
COPY_PATHS = ("direct", "wardgate", "wardgate-gcm")
GCM_ONLY = "aes256-gcm@openssh.com,aes128-gcm@openssh.com"  # the wardgate-gcm path's WARDGATE_SSH_CIPHERS
# The key exchange both compared paths' clients use: what the gateway negotiates with OpenSSH
# (asyncssh has no sntrup761x25519 without liboqs), so the direct path is not charged for a
# costlier post-quantum exchange the gateway path does not do. "direct-default" shows that cost.
KEX = "curve25519-sha256"


# ------------------------------------------------------------------------------- the gateway process
def serve_gateway(config: dict[str, Any]) -> None:
    """The child: what ``wardgate serve-tcp`` runs, with only the SSH listener and an in-memory
    recording sink that counts what it is given (written to ``<ready>.stats`` when it stops)."""
    import asyncio

    os.environ.update(config.get("env") or {})  # the gateway's own settings (the wardgate-gcm path's)

    from wardgate.config import Settings
    from wardgate.recording import MemoryIndex, MemoryStream
    from wardgate.tcp.config import Listener, TcpSettings
    from wardgate.tcp.server import TcpGateway, build_services

    class CountingStream(MemoryStream):
        """Serialised events counted, then dropped."""

        def __init__(self) -> None:
            super().__init__()
            self.events = self.bytes = 0

        def put(self, line: bytes) -> None:
            self.events += 1
            self.bytes += len(line)

        def put_batch(self, lines: list[bytes]) -> None:
            self.events += len(lines)
            self.bytes += sum(map(len, lines))

    tcp = TcpSettings(
        listeners=(Listener("ssh", 0, "127.0.0.1"),),
        tls_cert_file=config["cert"],
        tls_key_file=config["key"],
        health_port=0,
    )
    stream = CountingStream()

    async def main() -> None:
        services = await asyncio.to_thread(
            build_services,
            Settings.from_env(),
            tcp,
            stream=stream,
            index=MemoryIndex(),
            inline_recording=True,
        )
        gateway = TcpGateway(services, tcp)
        await gateway.start()
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        threading.Thread(target=_exit_with_parent, args=(loop, stopping), daemon=True).start()
        ready = Path(config["ready"])
        ready.with_suffix(".tmp").write_text(
            json.dumps({"port": gateway.ports["ssh"], "health": gateway.health_port, "pid": os.getpid()})
        )
        ready.with_suffix(".tmp").rename(ready)
        await stopping.wait()
        await gateway.stop()
        ready.with_suffix(".stats").write_text(json.dumps({"events": stream.events, "bytes": stream.bytes}))

    if config["loop"] == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


class SshGatewayProcess(GatewayProcess):
    """pg_overhead's gateway child, started as this script's ``--serve-gateway`` (the SSH listener);
    ``root``: the source tree whose gateway runs (--compare: an earlier commit's)."""

    def start(self) -> SshGatewayProcess:
        with self.logfile.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(self.root / "benchmarks" / Path(__file__).name),
                    "--serve-gateway",
                    json.dumps(self.config),
                ],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the SSH gateway did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        info = json.loads(self.ready.read_text())
        self.port, self.health, self.pid = info["port"], info["health"], info["pid"]
        return self

    def recorded(self) -> dict[str, int]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(self.ready.with_suffix(".stats").read_text()))
        return {}

    def cpu_s(self) -> float:
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------ clients
@dataclass(frozen=True)
class Client:
    """The stock OpenSSH client's options for one path (no config file, the host key pinned)."""

    port: int
    user: str
    key_file: Path
    known_hosts: Path
    certificate: Path | None = None
    kex: str | None = None  # KexAlgorithms (None: OpenSSH's default list)

    def options(self) -> list[str]:
        return [
            *("-F", "/dev/null", "-i", str(self.key_file)),
            *(("-o", f"CertificateFile={self.certificate}") if self.certificate else ()),
            *("-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"),
            *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ControlMaster=no"),
            *(("-o", f"KexAlgorithms={self.kex}") if self.kex else ()),
        ]

    def ssh(self, *command: str) -> list[str]:
        return ["ssh", *self.options(), "-p", str(self.port), f"{self.user}@127.0.0.1", *command]

    def scp(self, source: str, destination: str) -> list[str]:
        """``scp`` (OpenSSH 9: SFTP underneath); ``:`` in an argument names the remote side."""

        def remote(path: str) -> str:
            return f"{self.user}@127.0.0.1{path}" if path.startswith(":") else path

        return ["scp", "-q", *self.options(), "-P", str(self.port), remote(source), remote(destination)]


def timed(
    argv: list[str], timeout: float = 120, stdin: Path | None = None, stdout: Path | None = None
) -> float:
    """Seconds one client run took (``stdin``/``stdout``: files for the client's own streams); a
    failure stops the benchmark with the client's own words."""
    with contextlib.ExitStack() as files:
        given_in = files.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        given_out = files.enter_context(stdout.open("wb")) if stdout else subprocess.PIPE
        started = time.perf_counter()
        done = subprocess.run(argv, stdin=given_in, stdout=given_out, stderr=subprocess.PIPE, timeout=timeout)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}: "
            f"{done.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return elapsed


def copy(client: Client, method: str, direction: str, local: Path, remote: Path) -> float:
    """Seconds one copy of ``local`` (upload) or ``remote`` (download) took: ``scp``, or ``exec``
    (the file through one exec channel's stdin or stdout: ``dd of=<path>`` / ``cat <path>``)."""
    if method == "scp":
        if direction == "upload":
            return timed(client.scp(str(local), f":{remote}"))
        return timed(client.scp(f":{remote}", str(local)))
    if direction == "upload":
        return timed(client.ssh("dd", f"of={remote}", "bs=1M", "status=none"), stdin=local)
    return timed(client.ssh("cat", str(remote)), stdout=local)


def negotiated_kex(client: Client) -> str:
    """The key exchange an ``ssh -v`` with this client's options negotiates."""
    done = subprocess.run(
        [client.ssh("true")[0], "-v", *client.ssh("true")[1:]], capture_output=True, text=True, timeout=60
    )
    for line in done.stderr.splitlines():
        if "kex: algorithm:" in line:
            return line.rpartition(": ")[2].strip()
    return "unknown"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ the run
@dataclass
class Results:
    round_trip_ms: dict[str, list[float]] = field(default_factory=dict)  # path -> every call
    copy_s: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (path, direction) -> each copy
    gateway_cpu_s: dict[str, list[float]] = field(default_factory=dict)  # direction -> per wardgate copy
    compared_cpu_s: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # --compare paths
    facts: dict[str, Any] = field(default_factory=dict)


def bench_policy() -> dict[str, Any]:
    """The development policy (as pg_overhead's), plus, for ``ci`` on the bench connection: ``true``
    (the round trip), and SFTP read and write (scp) under the benchmark's folder only."""
    document = policy_document([])
    document["rules"] += [
        {
            "name": "the benchmark's agents may run true on the bench host",
            "effect": "allow",
            "connections": [CONNECTION],
            "identity": {"groups": ["ci"]},
            "match": {"shell": {"programs": ["true", "cat", "dd"]}},
        },
        {
            "name": "the benchmark's agents may copy files on the bench host",
            "effect": "allow",
            "connections": [CONNECTION],
            "identity": {"groups": ["ci"]},
            "match": {"shell": {"features": ["sftp_read", "sftp_write"]}},
        },
    ]
    return document


def run(args: argparse.Namespace) -> Results:
    import asyncssh
    from tests.ssh_target import running_sshd

    from wardgate import aws
    from wardgate.config import Settings
    from wardgate.connections import Connection, ConnectionStore
    from wardgate.dev.certs import make_dev_certificates
    from wardgate.identity import Identity
    from wardgate.sshca import SshCertificateAuthority, load_ca, make_local_keys

    for binary in ("ssh", "scp"):
        if shutil.which(binary) is None:
            raise SystemExit(f"needs {binary} (apt-get install openssh-client; make services)")
    results = Results()
    loop = args.profile_loop or ("uvloop" if uvloop_available() else "asyncio")
    results.facts["loop"] = loop
    results.facts["client"] = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    with contextlib.ExitStack() as cleanup:
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="wardgate-sshbench-")))
        target = cleanup.enter_context(running_sshd(work / "sshd"))
        results.facts["server"] = (
            subprocess.run(["/usr/sbin/sshd", "-V"], capture_output=True, text=True).stderr.strip() or "sshd"
        )
        certs = make_dev_certificates(work)
        stack = cleanup.enter_context(local_stack(work, None))

        # The task's settings: the host key from SSH_HOST_KEY, the CA's public key only.
        keys = make_local_keys(work / "gateway-keys")
        authority: SshCertificateAuthority = load_ca(keys)
        os.environ["SSH_HOST_KEY"] = keys.host_key
        os.environ["SSH_CA_PUBLIC_KEY"] = authority.public_key_line()
        os.environ.pop("SSH_CA_KEY", None)
        aws.client("secretsmanager").create_secret(
            Name=SECRET,
            SecretString=json.dumps({"type": "ssh_key", "private_key": target.client_private_key}),
        )
        ConnectionStore(Settings.from_env().connections_table).put(
            Connection(
                CONNECTION,
                "ssh",
                f"ssh://{target.user}@{target.host}:{target.port}",
                SECRET,
                ("ci",),
                "the benchmark's throwaway sshd",
                host_key=target.host_key_fingerprint,
            )
        )
        stack.apply_policy(bench_policy())

        # The agent's key and its certificate (what `wardgate ssh login` writes).
        agent_key = asyncssh.generate_private_key("ssh-ed25519", comment="wardgate bench agent")
        agent_key_file = work / "agent_ed25519"
        with os.fdopen(os.open(agent_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(agent_key.export_private_key())
        identity = Identity(
            subject=AGENT, issuer=stack.issuer.issuer, groups=("ci",), expires_at=int(time.time()) + 3600
        )
        signer = SshCertificateAuthority(asyncssh.read_private_key(keys.ca_key.removeprefix("file:")))
        certificate = work / "agent_ed25519-cert.pub"
        certificate.write_text(signer.sign_user_certificate(identity, agent_key).certificate + "\n")

        gateway = SshGatewayProcess(work, certs, "memory", loop).start()
        cleanup.callback(gateway.stop)
        host_key = asyncssh.read_private_key(keys.host_key.removeprefix("file:"))
        gateway_known_hosts = work / "gateway_known_hosts"
        algorithm, data = host_key.export_public_key().decode().split()[:2]
        gateway_known_hosts.write_text(f"[127.0.0.1]:{gateway.port} {algorithm} {data}\n")
        clients = {
            "direct": Client(
                target.port, target.user, target.client_key_file, target.known_hosts_file, kex=KEX
            ),
            "direct-default": Client(
                target.port, target.user, target.client_key_file, target.known_hosts_file
            ),
            "wardgate": Client(
                gateway.port, CONNECTION, agent_key_file, gateway_known_hosts, certificate, KEX
            ),
        }
        gcm = SshGatewayProcess(work, certs, "memory", loop)
        gcm.config["env"] = {"WARDGATE_SSH_CIPHERS": GCM_ONLY}
        gcm.start()
        cleanup.callback(gcm.stop)
        with gateway_known_hosts.open("a") as known:
            known.write(f"[127.0.0.1]:{gcm.port} {algorithm} {data}\n")
        clients["wardgate-gcm"] = dataclasses.replace(clients["wardgate"], port=gcm.port)
        gateways = {"wardgate": gateway, "wardgate-gcm": gcm}
        for revision, tree in archived_trees(args.compare, work).items():
            earlier = SshGatewayProcess(work, certs, "memory", loop, root=tree).start()
            cleanup.callback(earlier.stop)
            with gateway_known_hosts.open("a") as known:
                known.write(f"[127.0.0.1]:{earlier.port} {algorithm} {data}\n")
            name = f"wardgate at {revision}"
            gateways[name] = earlier
            clients[name] = dataclasses.replace(clients["wardgate"], port=earlier.port)
        results.facts["gateways"] = gateways
        results.facts["default_kex"] = negotiated_kex(clients["direct-default"])
        results.facts["gateway_kex"] = negotiated_kex(dataclasses.replace(clients["wardgate"], kex=None))
        try:
            measure(clients, work, gateway, args, results)
        except Exception:
            log(f"the gateway's log ends:\n{gateway.log_tail()}")
            raise
        gateway.stop()
        results.facts["recorded"] = gateway.recorded()
    return results


def measure(
    clients: dict[str, Client],
    work: Path,
    gateway: SshGatewayProcess,
    args: argparse.Namespace,
    results: Results,
) -> None:
    source = work / "payload.bin"
    with source.open("wb") as out:
        for _ in range(FILE_MB):
            out.write(os.urandom(1 << 20))
    want = sha256(source)
    remote = work / "remote"
    remote.mkdir()
    for client in clients.values():  # warm: the gateway's first login
        timed(client.ssh("true"))
    # scp (SFTP underneath) where the listener serves it; otherwise (--method auto), said in the
    # report, the file through an exec channel, for both paths alike.
    method = "scp" if args.method == "auto" else args.method
    copy_paths = [n for n in clients if n in COPY_PATHS or n.startswith("wardgate at ")]
    gateways: dict[str, SshGatewayProcess] = results.facts["gateways"]
    for name, client in ((n, clients[n]) for n in copy_paths):
        try:
            copy(client, method, "upload", source, remote / f"warm-{name}.bin")
        except RuntimeError as exc:
            if args.method != "auto" or name == "direct":
                raise
            log(f"scp through wardgate failed, copying through exec instead: {exc}")
            results.facts["scp_failure"] = str(exc).rpartition(" exited ")[2]
            method = "exec"
            copy(client, method, "upload", source, remote / f"warm-{name}.bin")
            copy(clients["direct"], method, "upload", source, remote / "warm-direct.bin")
    results.facts["method"] = method

    if args.profile:
        results.facts["profile"] = profile(clients["wardgate"], method, source, gateway, args, work)
        return

    order = list(clients)
    for round_no in range(args.rounds):
        for _ in range(args.calls):
            for name in order:
                results.round_trip_ms.setdefault(name, []).append(timed(clients[name].ssh("true")) * 1000)
            order.reverse()
        for direction in DIRECTIONS:
            for name in [n for n in order if n in copy_paths]:
                uploaded = remote / f"{name.replace(' ', '-')}-{round_no}.bin"
                downloaded = work / f"back-{name.replace(' ', '-')}-{round_no}.bin"
                cpu = gateways[name].cpu_s() if name in gateways else 0.0
                seconds = (
                    copy(clients[name], method, direction, source, uploaded)
                    if direction == "upload"
                    else copy(clients[name], method, direction, downloaded, source)
                )
                results.copy_s.setdefault((name, direction), []).append(seconds)
                if name == "wardgate":
                    results.gateway_cpu_s.setdefault(direction, []).append(gateway.cpu_s() - cpu)
                if name in gateways:
                    used = gateways[name].cpu_s() - cpu
                    results.compared_cpu_s.setdefault((name, direction), []).append(used)
                copied = uploaded if direction == "upload" else downloaded
                if sha256(copied) != want:
                    raise RuntimeError(f"{name} {direction}: the copy differs from the file")
                copied.unlink()
            order.reverse()
        log(f"round {round_no + 1}/{args.rounds} done")
    results.facts["rounds"] = args.rounds


def archived_trees(revisions: str | None, work: Path) -> dict[str, Path]:
    """--compare: each commit's layers and benchmarks (git archive), by its short hash."""
    trees: dict[str, Path] = {}
    for revision in [r.strip() for r in (revisions or "").split(",") if r.strip()]:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        tree = work / f"tree-{commit}"
        tree.mkdir()
        archive = subprocess.run(
            ["git", "archive", commit, "layers", "benchmarks"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        trees[commit] = tree
    return trees


def compare_report(results: Results) -> str:
    """--compare: this tree's gateway and earlier commits', measured in the same run."""
    trips = results.round_trip_ms
    base50 = percentile(trips["direct"], 50)

    def rate(name: str, direction: str) -> float:
        return FILE_MB / median(results.copy_s[(name, direction)])

    rows = []
    for name in [n for n in trips if n.startswith("wardgate")]:
        label = {"wardgate": "this tree", "wardgate-gcm": "this tree, AES-GCM only to the client"}.get(
            name, f"commit {name.removeprefix('wardgate at ')}"
        )
        ratios = [f"{rate(name, d) / rate('direct', d):.2f}x" for d in DIRECTIONS]
        cpu = [f"{median(results.compared_cpu_s[(name, d)]) * 1000 / FILE_MB:.1f}" for d in DIRECTIONS]
        rows.append(
            f"| {label} | {percentile(trips[name], 50) - base50:+.1f} | {ratios[0]} | {ratios[1]} | "
            f"{cpu[0]} | {cpu[1]} |"
        )
    return "\n".join(
        [
            "The same run's gateways side by side, this tree's and earlier commits' (`--compare`: each "
            "commit's layers and benchmarks from git archive, in a process of its own, its calls and copies "
            f"alternated with the others'; the direct path's `ssh host true` p50 {base50:.1f} ms):",
            "",
            "| gateway | added p50 ms | upload x direct | download x direct | CPU ms/MB up "
            "| CPU ms/MB down |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )


# ------------------------------------------------------------------------------------------ profile
def profile(
    client: Client,
    method: str,
    source: Path,
    gateway: SshGatewayProcess,
    args: argparse.Namespace,
    work: Path,
) -> str:
    """py-spy samples of the gateway process during an upload and a download; top own-time frames."""
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if py_spy is None:
        raise SystemExit("needs py-spy (.venv/bin/pip install py-spy)")
    raw = work / "py-spy.txt"
    spy = subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(gateway.pid), "--rate", "250", "--nonblocking"),
            *("--format", "raw", "--output", str(raw)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    seconds = copy(client, method, "upload", source, work / "remote" / "profiled.bin")
    seconds += copy(client, method, "download", work / "profiled-back.bin", source)
    spy.send_signal(signal.SIGINT)
    _, err = spy.communicate(timeout=60)
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')}")
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        samples += int(count_text)
        own[frames[-1]] += int(count_text)
        for frame in set(frames):
            total[frame] += int(count_text)
    lines = [
        f"py-spy of the gateway during one {method} upload and download ({seconds:.1f} s); "
        f"{samples:,} samples"
    ]
    for title, counter in (("own time", own), ("total time", total)):
        lines += ["", f"---- top {args.profile_top} by {title} ----"]
        lines += [
            f"{n / max(samples, 1):6.1%}  {frame}" for frame, n in counter.most_common(args.profile_top)
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ report
def percentile(values: list[float], q: int) -> float:
    return quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(results: Results, args: argparse.Namespace) -> tuple[str, str]:
    loop = results.facts["loop"]
    trips = results.round_trip_ms
    added50 = percentile(trips["wardgate"], 50) - percentile(trips["direct"], 50)
    added99 = percentile(trips["wardgate"], 99) - percentile(trips["direct"], 99)

    def rate(name: str, direction: str) -> float:
        return FILE_MB / median(results.copy_s[(name, direction)])

    ratios = {d: rate("wardgate", d) / rate("direct", d) for d in DIRECTIONS}
    trip_rows = []
    labels = {"loop": loop, "kex": KEX, "default_kex": results.facts["default_kex"]}
    for name in PATHS:
        values = trips[name]
        p50, p90, p99 = (percentile(values, q) for q in (50, 90, 99))
        base50, base99 = percentile(trips["direct"], 50), percentile(trips["direct"], 99)
        added = "-" if name == "direct" else f"{p50 - base50:+.1f} / {p99 - base99:+.1f}"
        if name == "wardgate":
            added = f"**{added}**"
        label = PATHS[name].format(**labels)
        trip_rows.append(f"| {label} | {len(values)} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {added} |")
    copy_rows = []
    for direction in DIRECTIONS:
        for name in COPY_PATHS:
            times = results.copy_s[(name, direction)]
            per_round = sorted(
                d / w
                for d, w in zip(
                    results.copy_s[("direct", direction)], results.copy_s[(name, direction)], strict=True
                )
            )
            ratio = (
                "-"
                if name == "direct"
                else f"{rate(name, direction) / rate('direct', direction):.2f}x "
                f"({per_round[0]:.2f}-{per_round[-1]:.2f})"
            )
            if name == "wardgate":
                ratio = f"**{ratio.replace(' ', '** ', 1)}"
            cpu = (
                f"{median(results.compared_cpu_s[(name, direction)]) * 1000 / FILE_MB:.1f}"
                if results.compared_cpu_s.get((name, direction))
                else "-"
            )
            copy_rows.append(
                f"| {PATHS[name].format(**labels)} | {direction} | {len(times)} | {median(times):.2f} | "
                f"{rate(name, direction):.0f} | {ratio} | {cpu} |"
            )
    worst = min(ratios.values())
    scp_used = results.facts["method"] == "scp"
    copied = "`scp`" if scp_used else "exec (`ssh host dd of=<file> < file`, `ssh host cat <file>`)"
    fallback = (
        ""
        if scp_used or "scp_failure" not in results.facts
        else " Files went through exec because scp through wardgate failed: "
        f"`{results.facts['scp_failure']}`."
    )
    targets = [
        (
            "`ssh host true`, 1 client: added <= 20 ms p50 (the gateway's second handshake included)",
            f"{added50:+.1f} ms p50 ({added99:+.1f} ms p99)",
            added50 <= TARGET_ADDED_MS,
        ),
        (
            f"`scp` of a {FILE_MB} MB file, recording on: >= 0.7x direct throughput (the lower of upload "
            f"and download{'' if scp_used else '; measured through exec, not scp'})",
            ", ".join(f"{d} {ratios[d]:.2f}x" for d in DIRECTIONS),
            worst >= TARGET_RATIO,
        ),
    ]
    target_rows = [f"| {what} | {value} | {verdict(ok)} |" for what, value, ok in targets]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary = "\n".join(
        [
            f"**SSH through the TCP gateway** (issue 13; `{COMMAND}`, {when}, {code_version()}; "
            "details in [its section](#ssh-through-the-tcp-gateway)):",
            "",
            "| target | measured | |",
            "|---|---|---|",
            *target_rows,
        ]
    )
    command = (
        COMMAND
        + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
        + (f" --calls {args.calls}" if args.calls != 20 else "")
        + (f" --method {args.method}" if args.method != "auto" else "")
        + (f" --compare {args.compare}" if args.compare else "")
    )
    recorded = results.facts.get("recorded") or {}
    recording = (
        f"the gateway's sink took {recorded['events']:,} recording events ({recorded['bytes'] / 1e6:.1f} MB "
        "serialised) over the run, warm-ups included"
        if recorded
        else "the gateway's recording counts were not read (it did not stop cleanly)"
    )
    lines = [
        f"Run {when} of {code_version()} on {machine()}; `{command}`; {results.facts['client']} as the "
        f"client, {results.facts['server']} as the target, both on loopback; the gateway under {loop}. "
        f"{results.facts['rounds']} rounds; in each, {args.calls} `ssh host true` calls per path "
        "(a new client process and connection each, the paths alternated call by call), then one "
        f"{copied} upload and one download of a {FILE_MB} MB file of random bytes per path (order reversed "
        "each time; every copy's SHA-256 checked against the file). Through wardgate the client logs in "
        "with a certificate of the gateway's CA, each exec and each SFTP request is decided by policy "
        f"and recorded (in memory) before it reaches the target; {recording}.{fallback} Key exchange: both "
        f"compared paths' clients use `{KEX}`, what wardgate negotiates with OpenSSH's default list "
        f"(`{results.facts['gateway_kex']}`; asyncssh offers no sntrup761x25519 without liboqs), and its "
        f"leg to the target uses the same; the direct path with OpenSSH's default "
        f"(`{results.facts['default_kex']}`) is shown for what that exchange costs here. Ciphers: the "
        "client picks ChaCha20-Poly1305 with sshd and with wardgate's default list; the last wardgate "
        f"row is a second gateway process offering AES-GCM only (`WARDGATE_SSH_CIPHERS={GCM_ONLY}`), "
        "where OpenSSH picks AES-128-GCM; wardgate's leg to the target uses AES-256-GCM with 255 KiB "
        "packets either way. OpenSSH and sshd leave Nagle's algorithm on for sessions without a pty "
        "and Linux delays an ACK 40 ms when the reader sends nothing back: the direct path waits on "
        "that twice per `ssh host true` (the client's `SERVICE_REQUEST` behind its `NEWKEYS`, sshd's "
        "channel confirmation behind its post-login messages); wardgate acknowledges what it reads at "
        "once on both hops (`tcp/ssh/wire.py`), so its added time can be below zero. The machine was "
        "shared with other work (see the load average).",
        "",
        "`ssh host true` round trip, 1 client (ms, every call of every round; added is wardgate's "
        "p50 / p99 minus the direct path's):",
        "",
        "| path | calls | p50 | p90 | p99 | added p50 / p99 |",
        "|---|---:|---:|---:|---:|---:|",
        *trip_rows,
        "",
        f"{copied} of a {FILE_MB} MB file (median of the rounds; x direct with the lowest and highest "
        "per-round ratio; the gateway process's CPU time per MB copied, user + system):",
        "",
        "| path | direction | copies | seconds | MB/s | x direct | gateway CPU ms/MB |",
        "|---|---|---:|---:|---:|---:|---:|",
        *copy_rows,
        "",
        "Targets (issue 13):",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *target_rows,
    ]
    return summary, "\n".join(lines)


SECTION_INTRO = f"""{SECTION_HEADING}

The SSH listener's cost (`benchmarks/ssh_overhead.py`): Debian's OpenSSH client against a throwaway
Debian `sshd` on loopback directly and through wardgate's SSH listener, in one run: `ssh host
true` (a new process and connection per call, so every call pays the key exchange and, through
wardgate, the gateway's second handshake with the target) and `scp` of a 100 MB file both ways
(OpenSSH 9's scp speaks SFTP; through wardgate every SFTP request is decided on its
target-resolved path and recorded, and the bytes are hashed). The gateway runs in a process of
its own, as `wardgate serve-tcp` runs it with only the SSH listener (host key from `SSH_HOST_KEY`,
the CA's public key only), with the local stack's stores (moto as a server on loopback); its
recording goes to an in-memory sink. A second gateway process offers its clients AES-GCM only
(`WARDGATE_SSH_CIPHERS`). `--compare REV,...` also runs those commits' gateways (git archive) in
the same run, alternated with the others, and adds a table of how they compare. `--profile` prints
where the gateway process spends its time during one upload and one download (py-spy).

{MARKERS[0]}
{MARKERS[1]}
"""


def ensure_sections() -> None:
    """Add this benchmark's section at the end of the doc, and its summary markers after the MySQL
    one (or, without it, before "## How to run")."""
    doc = DOC.read_text()
    if MARKERS[0] not in doc or MARKERS[1] not in doc:
        doc = doc.rstrip("\n") + "\n\n" + SECTION_INTRO
    if SUMMARY_MARKERS[0] not in doc or SUMMARY_MARKERS[1] not in doc:
        block = f"{SUMMARY_MARKERS[0]}\n{SUMMARY_MARKERS[1]}"
        previous = "<!-- mysqlsummary:end -->"
        if previous in doc:
            doc = doc.replace(previous, f"{previous}\n\n{block}", 1)
        else:
            head, sep, tail = doc.partition("\n## How to run")
            doc = f"{head.rstrip()}\n\n{block}\n{sep}{tail}"
    DOC.write_text(doc)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-gateway":
        serve_gateway(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"update the SSH section of {DOC.name}")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--calls", type=int, default=20, help="`ssh host true` calls per path per round (default 20)"
    )
    parser.add_argument(
        "--method",
        choices=("auto", "scp", "exec"),
        default="auto",
        help="how files are copied: scp; exec (dd of= / cat through one exec channel); auto (default): "
        "scp, or exec when scp through wardgate fails",
    )
    parser.add_argument(
        "--profile", action="store_true", help="only sample the gateway process (py-spy) during scp"
    )
    parser.add_argument(
        "--compare",
        metavar="REV[,REV...]",
        help="also run those commits' gateways (git archive) in the same run and print how they compare",
    )
    parser.add_argument("--profile-top", type=int, default=25, help="frames listed per order (default 25)")
    parser.add_argument(
        "--profile-loop", choices=("uvloop", "asyncio"), help="default: uvloop when installed"
    )
    args = parser.parse_args()
    if args.profile and args.write:
        parser.error("--profile does not measure what --write writes")
    if args.compare and args.profile:
        parser.error("--compare measures; --profile only samples")
    if args.rounds < 1 or args.calls < 2:
        parser.error("--rounds must be at least 1 and --calls at least 2")
    results = run(args)
    if args.profile:
        print(results.facts["profile"])
        return
    summary, text = report(results, args)
    if args.compare:  # earlier commits' gateways, measured in this same run
        text += "\n\n" + compare_report(results)
    print(summary, text, sep="\n\n")
    if args.write:
        ensure_sections()
        write_section(SUMMARY_MARKERS, summary)
        write_section(MARKERS, text)


if __name__ == "__main__":
    main()
