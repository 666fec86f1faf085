"""PostgreSQL through the TCP gateway (issue 11): pgbench throughput and latency, memory on a large
result and with many idle sessions, against the same PostgreSQL directly and through PgBouncer.

One run, one local PostgreSQL (127.0.0.1:5432, trust for ``postgres``), a pgbench database
``wardgate_bench`` at scale 10 (made once, reused while its scale is right). pgbench select-only
(``-S -n``) at ``-c 1 -j 1`` and ``-c 8 -j 2``, several rounds, each round running every path in
an order rotated from the round before, so a noisy machine hurts them alike. Paths:

- **direct**: PostgreSQL itself, no TLS (the local server has none);
- **PgBouncer** (Debian's ``pgbouncer``, installed with apt-get when missing and running as root),
  the reference proxy: transaction pooling, an ini generated in a temporary folder, plain and with
  TLS to the client (the development CA's certificate; one PgBouncer accepts both);
- **wardgate**: the TCP gateway as ``wardgate serve-tcp`` runs it (``build_services`` +
  ``TcpGateway``, uvloop when installed, the development certificate, TLS required), in a process
  of its own started by this script, so its CPU and its resident memory are its own. The
  connection is ``postgresql://postgres@127.0.0.1:5432/wardgate_bench``; the policy in force (the
  development policy plus a rule allowing SELECTs for the bench identities) decides every
  statement, results go through the masker, and every statement is recorded before it runs.
  Recording goes to an in-memory sink (the group commit inline, events serialised and counted,
  then dropped) for the measured rows; an information row records to moto instead (Firehose and
  DynamoDB: the default ``build_services``). Also under the plain asyncio loop, for comparison.

The stores behind the gateway (connections, policy, agent registry) and the development issuer are
the local stack's (``DevStack``), with moto as a server in this process (so the gateway process
reaches it over loopback HTTP, as the Fargate task reaches AWS). pgbench runs with
``PGSSLMODE=require``, the agent's token (``DevIssuer.mint``) as ``PGPASSWORD`` and the connection
name as the database, in the simple, extended and prepared protocols.

Added latency at ``-c 1`` is the difference of the p50s of per-transaction latencies (pgbench
``--log``). For each proxy (PgBouncer, the gateway process) its CPU time during a run (user +
system, /proc) divided by the transactions gives what one transaction costs it. Memory: a fresh
gateway process streams ``SELECT g, md5(g::text) FROM generate_series(1, 1000000) g`` to psql
while its VmRSS is sampled (and its VmHWM, reset first); another fresh one holds 500 idle
sessions (20 identities, 25 sessions each: the default limit is 32 per identity) behind which sits
PgBouncer (the local PostgreSQL allows 100 connections), and its CPU use while they idle is noted.

    .venv/bin/python benchmarks/pg_overhead.py             # print the tables (about 4 minutes)
    .venv/bin/python benchmarks/pg_overhead.py --write     # and update docs/benchmarks.md
    .venv/bin/python benchmarks/pg_overhead.py --profile   # only: cProfile of the gateway process
                                                           # during pgbench -c 1 -M extended
    .venv/bin/python benchmarks/pg_overhead.py --compare HEAD~3,HEAD~1
                      # only: this tree's gateway against those commits' (git archive), one run

Needs PostgreSQL on 127.0.0.1:5432 with trust for ``postgres`` and pgbench/psql on the PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from common import DOC, ROOT, code_version, machine, write_section
from overhead import log, percentile

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

MARKERS = ("<!-- pgoverhead:start -->", "<!-- pgoverhead:end -->")
SUMMARY_MARKERS = ("<!-- pgsummary:start -->", "<!-- pgsummary:end -->")
SECTION_HEADING = "## PostgreSQL through the TCP gateway"
PG_HOST, PG_PORT = "127.0.0.1", 5432
DATABASE = "wardgate_bench"
SCALE = 10
CONNECTION = "bench-pg"  # wardgate -> PostgreSQL
POOLED = "bench-pg-pooled"  # wardgate -> PgBouncer -> PostgreSQL (the idle sessions)
AGENT = "bench-agent"
IDLE_IDENTITIES = 20
IDLE_HOLD_S = 3.0
STREAM_SQL = "SELECT g, md5(g::text) FROM generate_series(1, {rows}) g"
TARGET_RATIO = 0.5  # wardgate TPS / direct TPS at -c 8
TARGET_ADDED_MS = 0.15  # added p50 per transaction at -c 1
TARGET_STREAM_MB = 64  # gateway RSS growth over a 1,000,000-row result
TARGET_IDLE_MB = 256  # gateway resident with 500 idle sessions
COMMAND = ".venv/bin/python benchmarks/pg_overhead.py --write"
BUDGET_S = 280.0  # a whole run: rounds are dropped to stay within it
STREAM_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, alive: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the process meant to listen on {port} exited ({alive.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def rss_kb(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for process {pid}")


# ------------------------------------------------------------------------------- the gateway process
def serve_gateway(config: dict[str, Any]) -> None:
    """The child: what ``wardgate serve-tcp`` runs (``tcp.server.serve_tcp``), with the recording
    sink and event loop chosen by the benchmark. Settings and the stores come from the environment
    the parent's local stack set; moto is the parent's server. Ends on SIGTERM or when the
    parent goes away (its stdin closes)."""
    import asyncio
    import cProfile
    import resource

    from wardgate.config import Settings
    from wardgate.recording import MemoryIndex, MemoryStream
    from wardgate.tcp.config import Listener, TcpSettings
    from wardgate.tcp.server import TcpGateway, build_services

    class DiscardingStream(MemoryStream):
        """The in-memory sink, counting the serialised events instead of keeping them (a few
        minutes of pgbench would keep hundreds of megabytes, which is not the gateway's memory)."""

        def __init__(self) -> None:
            super().__init__()
            self.events = self.bytes = 0

        def put(self, line: bytes) -> None:
            self.events += 1
            self.bytes += len(line)

        def put_batch(self, lines: list[bytes]) -> None:
            self.events += len(lines)
            self.bytes += sum(map(len, lines))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a Fargate task allows 65535
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65535), hard), hard))
    settings = Settings.from_env()
    tcp = TcpSettings(
        listeners=(Listener("postgres", 0, "127.0.0.1"),),
        tls_cert_file=config["cert"],
        tls_key_file=config["key"],
        health_port=0,
    )
    profiler = cProfile.Profile() if config.get("profile") else None

    def build() -> Any:
        if config["sink"] == "memory":
            return build_services(
                settings, tcp, stream=DiscardingStream(), index=MemoryIndex(), inline_recording=True
            )
        return build_services(settings, tcp)

    async def main() -> None:
        services = await asyncio.to_thread(build)
        gateway = TcpGateway(services, tcp)
        await gateway.start()
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        if profiler is not None:

            def dump() -> None:
                profiler.disable()
                profiler.dump_stats(config["profile"])
                Path(config["profile"] + ".done").touch()

            loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
            loop.add_signal_handler(signal.SIGUSR2, dump)
        threading.Thread(target=_exit_with_parent, args=(loop, stopping), daemon=True).start()
        ready = Path(config["ready"])
        ready.with_suffix(".tmp").write_text(
            json.dumps({"port": gateway.ports["postgres"], "health": gateway.health_port, "pid": os.getpid()})
        )
        ready.with_suffix(".tmp").rename(ready)
        await stopping.wait()
        await gateway.stop()

    if config["loop"] == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


def _exit_with_parent(loop: Any, stopping: Any) -> None:
    with contextlib.suppress(OSError):  # os.read, not sys.stdin: no buffer lock held at shutdown
        while os.read(0, 4096):
            pass
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(stopping.set)


class GatewayProcess:
    """A gateway child process (this script with ``--serve-gateway``)."""

    def __init__(
        self,
        folder: Path,
        certs: Any,
        sink: str,
        loop: str,
        profile: Path | None = None,
        root: Path = ROOT,
    ) -> None:
        self.name = f"{loop}-{sink}"
        self.root = root  # the source tree whose gateway runs (--compare: an older commit's)
        self.folder = folder
        self.ready = folder / f"gateway-{self.name}-{time.monotonic_ns()}.json"
        self.logfile = self.ready.with_suffix(".log")
        self.config = {
            "sink": sink,
            "loop": loop,
            "cert": str(certs.cert_file),
            "key": str(certs.key_file),
            "ready": str(self.ready),
            "profile": str(profile) if profile else "",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.port = self.health = self.pid = 0

    def start(self) -> GatewayProcess:
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
                raise RuntimeError(f"the gateway ({self.name}) did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        info = json.loads(self.ready.read_text())
        self.port, self.health, self.pid = info["port"], info["health"], info["pid"]
        return self

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-30:])
        return ""

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def sessions(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health}/healthz", timeout=5) as answer:
            return int(json.loads(answer.read())["sessions"])

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        """Close its stdin (it stops as when its parent goes away), then SIGTERM, then SIGKILL."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        for ending in (None, self.process.terminate, self.process.kill):
            if ending is not None:
                ending()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
                return


# ----------------------------------------------------------------------------- PostgreSQL, PgBouncer
PSQL_ADMIN = (
    "psql",
    "-X",
    "-qAt",
    "-v",
    "ON_ERROR_STOP=1",
    "-h",
    PG_HOST,
    "-p",
    str(PG_PORT),
    "-U",
    "postgres",
)


def psql_admin(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        [*PSQL_ADMIN, "-d", database, "-c", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()


def ensure_database() -> str:
    """``wardgate_bench`` at scale SCALE: reused when it is there, made (pgbench -i) otherwise."""
    if psql_admin(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") == "1":
        with contextlib.suppress(subprocess.CalledProcessError):
            if psql_admin("SELECT count(*) FROM pgbench_branches", DATABASE) == str(SCALE):
                return "reused"
        psql_admin(f"DROP DATABASE {DATABASE}")
    log(f"making the pgbench database {DATABASE} (pgbench -i -s {SCALE}) ...")
    psql_admin(f"CREATE DATABASE {DATABASE}")
    subprocess.run(
        [
            "pgbench",
            "-i",
            "-q",
            "-s",
            str(SCALE),
            "-h",
            PG_HOST,
            "-p",
            str(PG_PORT),
            "-U",
            "postgres",
            DATABASE,
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return "made"


def pgbouncer_binary() -> str | None:
    """Debian's pgbouncer (in /usr/sbin); installed with apt-get when missing and this runs as root."""

    def found() -> str | None:
        return shutil.which("pgbouncer", path=f"{os.environ.get('PATH', '')}:/usr/sbin")

    if found() or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found()
    log("installing pgbouncer (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "pgbouncer"], env=env, capture_output=True, timeout=300
        )
    return found()


class PgBouncer:
    """PgBouncer in transaction pooling mode on a free port, plain and TLS (sslmode allow)."""

    def __init__(self, binary: str, folder: Path, certs: Any) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir()
        shutil.copy(certs.cert_file, folder / "cert.pem")
        shutil.copy(certs.key_file, folder / "key.pem")
        (folder / "userlist.txt").write_text('"postgres" ""\n')
        (folder / "pgbouncer.ini").write_text(
            f"""[databases]
{DATABASE} = host={PG_HOST} port={PG_PORT} dbname={DATABASE} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 10
ignore_startup_parameters = extra_float_digits
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
log_connections = 0
log_disconnections = 0
client_tls_sslmode = allow
client_tls_cert_file = {folder}/cert.pem
client_tls_key_file = {folder}/key.pem
"""
        )

    def start(self) -> PgBouncer:
        command = [self.binary, str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(self.folder, "postgres")
            for path in self.folder.iterdir():
                shutil.chown(path, "postgres")
            command[1:1] = ["-u", "postgres"]
        with (self.folder / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for_port(self.port, self.process)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}: {(self.folder / 'stderr.log').read_text(errors='replace')}") from None
        return self

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        return out.split("\n", 1)[0].strip()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


# ------------------------------------------------------------------------------------------ pgbench
@dataclass(frozen=True)
class Target:
    key: str
    label: str
    port: int
    database: str
    user: str
    sslmode: str
    password: str = ""
    pid: int = 0  # the proxy's process, whose CPU time is counted (0: none)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PGSSLMODE": self.sslmode,
            "PGPASSWORD": self.password,
            "PGCONNECT_TIMEOUT": "10",
        }

    def psql(self) -> list[str]:
        return ["psql", "-X", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", self.database]


@dataclass
class BenchRun:
    tps: float
    cpu_us: float | None = None  # the proxy's CPU time per transaction
    latencies_ms: list[float] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pgbench(target: Target, clients: int, mode: str, seconds: int, logs: Path | None) -> BenchRun:
    jobs = min(clients, os.cpu_count() or 1)
    command = ["pgbench", "-n", "-S", "-M", mode, "-c", str(clients), "-j", str(jobs), "-T", str(seconds)]
    command += ["-h", "127.0.0.1", "-p", str(target.port), "-U", target.user]
    if logs is not None:
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        command += ["--log", f"--log-prefix={logs}/tx"]
    cpu_before = cpu_seconds(target.pid) if target.pid else 0.0
    done = subprocess.run(
        [*command, target.database], env=target.env(), capture_output=True, text=True, timeout=seconds + 60
    )
    cpu = cpu_seconds(target.pid) - cpu_before if target.pid else None
    tps = re.search(r"^tps = ([0-9.]+)", done.stdout, re.MULTILINE)
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or tps is None or (failed is not None and failed.group(1) != "0"):
        raise RuntimeError(
            f"pgbench against {target.label} (-M {mode} -c {clients}) failed:\n{done.stdout}\n{done.stderr}"
        )
    run = BenchRun(float(tps.group(1)))
    if cpu is not None and processed is not None and int(processed.group(1)):
        run.cpu_us = cpu / int(processed.group(1)) * 1e6
    if logs is not None:
        for path in logs.iterdir():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) > 2 and parts[2].isdigit():
                    run.latencies_ms.append(int(parts[2]) / 1000)
        shutil.rmtree(logs, ignore_errors=True)
    return run


# ------------------------------------------------------------------------------------------ memory
class RssSampler:
    """The largest VmRSS of a process, sampled every 10 ms in a thread, and its VmHWM (reset first)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        with contextlib.suppress(OSError):  # "5" resets the peak resident size (Linux 4.0+)
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_kb(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kb(self.pid), rss_kb(self.pid, "VmHWM"))


def stream_rows(target: Target, rows: int) -> tuple[float, int, int]:
    """psql reads the whole result (to nothing); seconds, lines received, masked values seen."""
    start = time.perf_counter()
    with subprocess.Popen(
        [*target.psql(), "-A", "-t", "-c", STREAM_SQL.format(rows=rows)],
        env=target.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as psql:
        assert psql.stdout is not None and psql.stderr is not None
        lines = masked = 0
        tail = b""
        while chunk := psql.stdout.read(1 << 20):
            if time.perf_counter() - start > STREAM_TIMEOUT_S:
                psql.kill()
                raise RuntimeError(f"{rows:,} rows through {target.label} took over {STREAM_TIMEOUT_S:g} s")
            lines += chunk.count(b"\n")
            masked += (tail + chunk).count(b"[masked") - tail.count(b"[masked")
            tail = chunk[-16:]
        error = psql.stderr.read().decode(errors="replace")
    if psql.returncode != 0 or lines != rows:
        raise RuntimeError(
            f"psql through {target.label} returned {lines} lines, rc {psql.returncode}: {error}"
        )
    return time.perf_counter() - start, lines, masked


def open_idle_sessions(port: int, database: str, tokens: list[str], count: int) -> tuple[list[Any], float]:
    """``count`` sessions (identity i % len(tokens)), each runs SELECT 1 once and stays open."""
    import psycopg

    def connect(i: int) -> Any:
        conn = psycopg.connect(
            host="127.0.0.1",
            port=port,
            dbname=database,
            user=f"bench-idle-{i % len(tokens):02d}",
            password=tokens[i % len(tokens)],
            sslmode="require",
            connect_timeout=20,
            autocommit=True,
        )
        conn.execute("SELECT 1").fetchall()
        return conn

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        connections = list(pool.map(connect, range(count)))
    return connections, time.perf_counter() - start


# ------------------------------------------------------------------------------------------ the local stack
def policy_document(connections: list[str]) -> dict[str, Any]:
    """The development policy, plus: ``ci`` may SELECT on the bench connections."""
    from wardgate.dev.stack import DEV_POLICY

    return {
        **DEV_POLICY,
        "rules": [
            *DEV_POLICY["rules"],
            {
                "name": "the benchmark's agents may read the bench database",
                "effect": "allow",
                "connections": connections,
                "identity": {"groups": ["ci"]},
                "match": {"sql": {"kinds": ["select"]}},
            },
        ],
    }


@contextlib.contextmanager
def local_stack(folder: Path, pooled_port: int | None) -> Iterator[Any]:
    """moto as a server in this process, the local stack's stores and issuer, the bench connections."""
    import logging

    from moto.server import ThreadedMotoServer

    from wardgate.config import Settings
    from wardgate.connections import Connection, ConnectionStore
    from wardgate.dev.stack import DevStack

    class BenchStack(DevStack):
        """The local stack without its own TCP gateway (this script starts its own) and without the
        approval notifier, which polls SQS 20 times a second."""

        def start_tcp(self) -> None:
            pass

        def start_notifier(self) -> None:
            pass

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    aws_port = free_port()
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=aws_port, verbose=False)
    moto_server.start()
    stack = BenchStack(
        root=ROOT,
        state_dir=folder,
        port=0,
        upstream_port=0,
        pg_port=0,
        mysql_port=0,
        aws_endpoint=f"http://127.0.0.1:{aws_port}",
    )
    try:
        stack.start()
        store = ConnectionStore(Settings.from_env().connections_table)
        url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{DATABASE}"
        store.put(Connection(CONNECTION, "sql", url, None, ("ci",), "pgbench database, directly"))
        if pooled_port is not None:
            pooled = f"postgresql://postgres@127.0.0.1:{pooled_port}/{DATABASE}"
            store.put(Connection(POOLED, "sql", pooled, None, ("ci",), "pgbench database, via PgBouncer"))
        stack.apply_policy(policy_document([CONNECTION] + ([POOLED] if pooled_port is not None else [])))
        yield stack
    finally:
        stack.stop()
        moto_server.stop()


# ------------------------------------------------------------------------------------------ the run
PATHS = {  # the rows of the tables, in this order ({loop}: the gateway's event loop)
    "direct": "PostgreSQL directly (no TLS)",
    "bouncer": "PgBouncer, transaction pooling, no TLS",
    "bouncer-tls": "PgBouncer, transaction pooling, TLS",
    "wardgate": "wardgate, {loop}, recording in memory",
    "wardgate-asyncio": "wardgate, asyncio loop, recording in memory",
    "wardgate-moto": "wardgate, {loop}, recording to moto (Firehose + DynamoDB)",
}


@dataclass
class Results:
    tps: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    latency: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def schedule(paths: list[str]) -> list[tuple[str, int, list[str]]]:
    """(protocol, clients, paths) groups: every path in simple mode; direct and wardgate in the others."""
    groups: list[tuple[str, int, list[str]]] = []
    for mode in ("simple", "extended", "prepared"):
        members: list[str] = paths if mode == "simple" else [p for p in ("direct", "wardgate") if p in paths]
        for clients in (1, 8):
            groups.append((mode, clients, members))
    return groups


def run_pgbench_rounds(
    targets: dict[str, Target], args: argparse.Namespace, work: Path, results: Results
) -> None:
    groups = schedule(list(targets))
    runs = sum(len(members) for _, _, members in groups)
    log(f"{args.rounds} rounds of {runs} pgbench runs of {args.seconds:g} s ...")
    for name, target in targets.items():  # warm-up: connections, caches, the first JWKS fetch
        if name != "direct":
            pgbench(target, 8, "simple", 1, None)
    results.facts["rounds"] = 0
    for round_no in range(args.rounds):
        started = time.monotonic()
        for mode, clients, members in groups:
            shift = round_no % len(members)
            for name in members[shift:] + members[:shift]:
                logs = work / "pgbench-logs" if clients == 1 else None
                run = pgbench(targets[name], clients, mode, args.seconds, logs)
                results.tps.setdefault((name, mode, clients), []).append(run.tps)
                if run.cpu_us is not None:
                    results.cpu.setdefault((name, mode, clients), []).append(run.cpu_us)
                if clients == 1:
                    results.latency.setdefault((name, mode), []).extend(run.latencies_ms)
        results.facts["rounds"] = round_no + 1
        log(f"round {round_no + 1}/{args.rounds} done")
        if round_no + 1 < args.rounds and time.monotonic() + (time.monotonic() - started) > args.deadline:
            log(f"stopping after {round_no + 1} rounds: another would overrun --budget {args.budget:g}")
            break


def measure_stream(
    gateway: GatewayProcess, direct: Target, through: Target, rows: int, results: Results
) -> None:
    stream_rows(through, 10)  # admission, imports, caches
    time.sleep(0.5)
    direct_s, _, _ = stream_rows(direct, rows)
    before = gateway.rss_kb()
    with RssSampler(gateway.pid) as sampler:
        seconds, lines, masked = stream_rows(through, rows)
    results.stream = {
        "rows": lines,
        "direct_s": direct_s,
        "wardgate_s": seconds,
        "masked": masked,
        "before_kb": before,
        "peak_kb": sampler.peak,
        "after_kb": gateway.rss_kb(),
    }


def measure_idle(
    gateway: GatewayProcess, database: str, tokens: list[str], count: int, results: Results
) -> None:
    warm, _ = open_idle_sessions(gateway.port, database, tokens, 1)
    for conn in warm:
        conn.close()
    time.sleep(1.0)
    before = gateway.rss_kb()
    connections: list[Any] = []
    try:
        with RssSampler(gateway.pid) as sampler:
            connections, seconds = open_idle_sessions(gateway.port, database, tokens, count)
            cpu_before = cpu_seconds(gateway.pid)
            time.sleep(IDLE_HOLD_S)  # idle: the kill-switch sweep runs every 0.25 s over all of them
            idle_cpu = (cpu_seconds(gateway.pid) - cpu_before) / IDLE_HOLD_S
            live = gateway.sessions()
            held = gateway.rss_kb()
    finally:
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()
    results.idle = {
        "sessions": live,
        "open_s": seconds,
        "before_kb": before,
        "held_kb": held,
        "idle_cpu": idle_cpu,
        "peak_kb": sampler.peak,
        "through": database,
    }


def uvloop_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def run(args: argparse.Namespace) -> Results:
    from wardgate.dev.certs import make_dev_certificates

    results = Results()
    # What comes after the rounds (the memory tests) takes well under a minute on a quiet machine.
    args.deadline = time.monotonic() + args.budget - 60
    loop = "uvloop" if uvloop_available() else "asyncio"
    results.facts["loop"] = loop
    results.facts["database"] = ensure_database()
    with contextlib.ExitStack() as cleanup:
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="wardgate-pgbench-")))
        os.chmod(work, 0o755)  # PgBouncer runs as postgres
        certs = make_dev_certificates(work)
        binary = pgbouncer_binary()
        bouncer: PgBouncer | None = None
        if binary is None:
            log("no pgbouncer (apt-get install pgbouncer): its rows and the idle sessions are skipped")
        else:
            bouncer = PgBouncer(binary, work / "pgbouncer", certs)
            cleanup.callback(bouncer.stop)
            try:
                bouncer.start()
                results.facts["pgbouncer"] = bouncer.version()
            except RuntimeError as exc:
                log(f"PgBouncer did not start ({exc}): its rows and the idle sessions are skipped")
                bouncer = None
        stack = cleanup.enter_context(local_stack(work, bouncer.port if bouncer else None))
        issuer = stack.issuer
        token = issuer.mint(AGENT, ["ci"], ttl=3600)

        def gateway(sink: str, loop_name: str, profile: Path | None = None) -> GatewayProcess:
            process = GatewayProcess(work, certs, sink, loop_name, profile).start()
            cleanup.callback(process.stop)
            return process

        def through(process: GatewayProcess) -> Target:
            return Target("", "wardgate", process.port, CONNECTION, AGENT, "require", token, process.pid)

        direct = Target("direct", PATHS["direct"], PG_PORT, DATABASE, "postgres", "disable")

        if args.profile:
            profile_file = work / "gateway.prof"
            profile_loop = args.profile_loop or loop
            process = gateway("memory", profile_loop, profile_file)
            target = through(process)
            pgbench(target, 1, args.profile_mode, 1, None)  # warm
            process.signal(signal.SIGUSR1)
            time.sleep(0.2)
            done = pgbench(target, 1, args.profile_mode, args.seconds * 3, None)
            process.signal(signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not Path(str(profile_file) + ".done").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            results.facts["profile"] = profile_report(profile_file, profile_loop, done, args)
            return results

        targets = {"direct": direct}
        if bouncer is not None:
            assert bouncer.process is not None
            pid = bouncer.process.pid
            targets["bouncer"] = Target(
                "bouncer", PATHS["bouncer"], bouncer.port, DATABASE, "postgres", "disable", pid=pid
            )
            targets["bouncer-tls"] = Target(
                "bouncer-tls", PATHS["bouncer-tls"], bouncer.port, DATABASE, "postgres", "require", pid=pid
            )
        main = gateway("memory", loop)
        targets["wardgate"] = through(main)
        if loop == "uvloop":
            targets["wardgate-asyncio"] = through(gateway("memory", "asyncio"))
        targets["wardgate-moto"] = through(gateway("firehose", loop))
        run_pgbench_rounds(targets, args, work, results)
        results.facts["rss_after_pgbench_kb"] = main.rss_kb()
        main.stop()

        log(f"{args.rows:,}-row SELECT through a fresh gateway ...")
        fresh = gateway("memory", loop)
        measure_stream(fresh, direct, through(fresh), args.rows, results)
        fresh.stop()

        log(f"{args.idle} idle sessions through a fresh gateway ...")
        tokens = [issuer.mint(f"bench-idle-{i:02d}", ["ci"], ttl=3600) for i in range(IDLE_IDENTITIES)]
        fresh = gateway("memory", loop)
        if bouncer is not None:
            measure_idle(fresh, POOLED, tokens, args.idle, results)
        else:  # every session is a PostgreSQL backend: as many as the server has room for
            room = int(
                psql_admin("SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity")
            )
            measure_idle(fresh, CONNECTION, tokens, max(1, min(args.idle, room - 10)), results)
        fresh.stop()
    return results


# ------------------------------------------------------------------------------------------ profile
def profile_report(path: Path, loop: str, done: BenchRun, args: argparse.Namespace) -> str:
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out).strip_dirs()
    out.write(
        f"cProfile of the gateway process's event loop thread during pgbench -c 1 -M {args.profile_mode} "
        f"-T {args.seconds * 3} under {loop} ({done.tps:.0f} TPS and {done.cpu_us:.0f} µs of the "
        "gateway's CPU a transaction, under the profiler)\n"
    )
    for order in ("cumulative", "tottime"):
        out.write(f"\n---- top {args.profile_top} by {order} ----\n")
        stats.sort_stats(order).print_stats(args.profile_top)
    return out.getvalue()


# ------------------------------------------------------------------------------------------ compare
def compare(args: argparse.Namespace) -> str:
    """The gateway of this tree against those of earlier commits, in one run (rounds rotated): what
    each change did to TPS, CPU per transaction and added latency, on the same machine and load."""
    from wardgate.dev.certs import make_dev_certificates

    revisions = [r.strip() for r in args.compare.split(",") if r.strip()]
    ensure_database()
    tps: dict[tuple[str, str, int], list[float]] = {}
    cpu: dict[tuple[str, str, int], list[float]] = {}
    latency: dict[tuple[str, str], list[float]] = {}
    with contextlib.ExitStack() as cleanup:
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="wardgate-pgcompare-")))
        certs = make_dev_certificates(work)
        roots = {"this tree": ROOT}
        for revision in revisions:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", revision],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            tree = work / f"tree-{commit}"
            tree.mkdir()
            archive = subprocess.run(
                ["git", "archive", commit, "layers", "benchmarks"], cwd=ROOT, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            roots[commit] = tree
        stack = cleanup.enter_context(local_stack(work, None))
        token = stack.issuer.mint(AGENT, ["ci"], ttl=3600)
        targets = {"direct": Target("direct", PATHS["direct"], PG_PORT, DATABASE, "postgres", "disable")}
        for name, root in roots.items():
            process = GatewayProcess(work, certs, "memory", "uvloop", root=root).start()
            cleanup.callback(process.stop)
            targets[name] = Target(name, name, process.port, CONNECTION, AGENT, "require", token, process.pid)
            pgbench(targets[name], 8, "simple", 1, None)  # warm-up
        names = list(targets)
        for round_no in range(args.rounds):
            for mode in ("simple", "extended", "prepared"):
                for clients in (1, 8):
                    shift = round_no % len(names)
                    for name in names[shift:] + names[:shift]:
                        logs = work / "pgbench-logs" if clients == 1 else None
                        run = pgbench(targets[name], clients, mode, args.seconds, logs)
                        tps.setdefault((name, mode, clients), []).append(run.tps)
                        if run.cpu_us is not None:
                            cpu.setdefault((name, mode, clients), []).append(run.cpu_us)
                        if clients == 1:
                            latency.setdefault((name, mode), []).extend(run.latencies_ms)
            log(f"round {round_no + 1}/{args.rounds} done")
    lines = [
        f"Gateways of {', '.join(names[1:])} in one run ({code_version()}, {machine()}), "
        f"{args.rounds} rounds of `pgbench -n -S -T {args.seconds}`, the order rotated each round; medians "
        "of the rounds; added p50 is against the direct path's p50 in the same protocol.",
        "",
        "| gateway | `-M` | TPS `-c 1` | x direct | added p50 ms | CPU µs/tx "
        "| TPS `-c 8` | x direct | CPU µs/tx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in ("simple", "extended", "prepared"):
        base1, base8 = median(tps[("direct", mode, 1)]), median(tps[("direct", mode, 8)])
        direct_p50 = percentile(sorted(latency[("direct", mode)]), 50)
        for name in names[1:]:
            t1, t8 = median(tps[(name, mode, 1)]), median(tps[(name, mode, 8)])
            added = percentile(sorted(latency[(name, mode)]), 50) - direct_p50
            c1, c8 = (median(cpu.get((name, mode, c), [0.0])) for c in (1, 8))
            lines.append(
                f"| {name} | {mode} | {t1:,.0f} | {t1 / base1:.2f}x | {added:+.3f} | {c1:.0f} | "
                f"{t8:,.0f} | {t8 / base8:.2f}x | {c8:.0f} |"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ report
def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def report(results: Results, args: argparse.Namespace) -> tuple[str, str]:
    loop = results.facts["loop"]
    tps, lat = results.tps, results.latency

    def label(name: str) -> str:
        return PATHS[name].format(loop=loop)

    def ratio_cell(name: str, mode: str, clients: int) -> str:
        mine, base = tps.get((name, mode, clients)), tps.get(("direct", mode, clients))
        if not mine or not base:
            return "-"
        per_round = sorted(a / b for a, b in zip(mine, base, strict=True))
        return f"{median(mine) / median(base):.2f}x ({per_round[0]:.2f}-{per_round[-1]:.2f})"

    rows = []
    for mode in ("simple", "extended", "prepared"):
        for name in PATHS:
            if (name, mode, 1) not in tps:
                continue
            c1, c8 = median(tps[(name, mode, 1)]), median(tps[(name, mode, 8)])
            bold = "**" if name == "wardgate" else ""
            cpu = " / ".join(
                f"{median(results.cpu[(name, mode, c)]):.0f}" if (name, mode, c) in results.cpu else "-"
                for c in (1, 8)
            )
            rows.append(
                f"| {bold}{label(name)}{bold} | {mode} | {c1:,.0f} | {ratio_cell(name, mode, 1)} | "
                f"{c8:,.0f} | {bold}{ratio_cell(name, mode, 8)}{bold} | {cpu} |"
            )
    lat_rows = []
    for mode in ("simple", "extended", "prepared"):
        base = sorted(lat.get(("direct", mode), []))
        for name in PATHS:
            values = sorted(lat.get((name, mode), []))
            if not values:
                continue
            difference = f"{percentile(values, 50) - percentile(base, 50):+.3f}" if name != "direct" else "-"
            bold = "**" if name == "wardgate" else ""
            lat_rows.append(
                f"| {label(name)} | {mode} | {len(values):,} | {percentile(values, 50):.3f} | "
                f"{percentile(values, 90):.3f} | {percentile(values, 99):.3f} | {bold}{difference}{bold} |"
            )

    ratio8 = median(tps[("wardgate", "simple", 8)]) / median(tps[("direct", "simple", 8)])
    added = percentile(sorted(lat[("wardgate", "simple")]), 50) - percentile(
        sorted(lat[("direct", "simple")]), 50
    )
    s, idle = results.stream, results.idle
    growth_mb = (s["peak_kb"] - s["before_kb"]) / 1024
    idle_mb = max(idle["peak_kb"], idle["held_kb"]) / 1024
    per_session_kb = (idle["held_kb"] - idle["before_kb"]) / max(1, idle["sessions"])
    bouncer = results.facts.get("pgbouncer")
    targets = [
        (
            "`pgbench -S -c 8`: wardgate >= 0.5x direct TPS",
            f"{ratio8:.2f}x (simple protocol)",
            ratio8 >= TARGET_RATIO,
        ),
        ("`pgbench -S -c 1`: added latency <= 0.15 ms p50", f"{added:.3f} ms", added <= TARGET_ADDED_MS),
        (
            f"{s['rows']:,}-row SELECT: gateway RSS growth < 64 MB",
            f"{growth_mb:.1f} MB",
            growth_mb < TARGET_STREAM_MB,
        ),
        (
            f"{args.idle} idle sessions: < 256 MB resident",
            f"{idle_mb:.0f} MB with {idle['sessions']}",
            idle_mb < TARGET_IDLE_MB and idle["sessions"] >= args.idle,
        ),
    ]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    target_rows = [f"| {what} | {value} | {verdict(ok)} |" for what, value, ok in targets]
    summary = "\n".join(
        [
            f"**PostgreSQL through the TCP gateway** (issue 11; `{COMMAND}`, {when}, {code_version()}; "
            "details in [its section](#postgresql-through-the-tcp-gateway)):",
            "",
            "| target | measured | |",
            "|---|---|---|",
            *target_rows,
        ]
    )
    command = (
        COMMAND
        + (f" --seconds {args.seconds}" if args.seconds != 3 else "")
        + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
        + (f" --budget {args.budget:g}" if args.budget != BUDGET_S else "")
        + (f" --rows {args.rows}" if args.rows != 1_000_000 else "")
        + (f" --idle {args.idle}" if args.idle != 500 else "")
    )
    lines = [
        f"Run {when} of {code_version()} on {machine()}; `{command}`; PostgreSQL "
        f"{results.facts.get('server_version', '?')} on loopback, pgbench database at scale {SCALE} "
        f"({results.facts['database']}); {bouncer or 'no PgBouncer'}; the gateway under {loop}. "
        f"{results.facts['rounds']} rounds of `pgbench -n -S -T {args.seconds}` per path, protocol and "
        "client count (`-c 1 -j 1`, `-c 8 -j 2`), the paths' order rotated each round; TPS are medians "
        "of the rounds (without connection time), ratios are against the direct path in the same protocol, "
        "with the lowest and highest per-round ratio. The last column is the proxy process's CPU time "
        "(user + system, from /proc) during the run divided by the transactions it served, median of the "
        "rounds: what one transaction costs the proxy (PgBouncer's figure covers both its sides).",
        "",
        "| path | `-M` | TPS `-c 1` | x direct | TPS `-c 8` | x direct | proxy CPU µs/transaction, "
        "`-c 1` / `-c 8` |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Per-transaction latency at `-c 1` (ms, pgbench `--log`, every transaction of every round; added "
        "is the p50 minus the direct path's p50 in the same protocol):",
        "",
        "| path | `-M` | transactions | p50 | p90 | p99 | added p50 |",
        "|---|---|---:|---:|---:|---:|---:|",
        *lat_rows,
        "",
        f"Memory of the gateway process (VmRSS, and VmHWM reset before each test; {loop}, recording in "
        "memory), each test in a fresh gateway process after one warm-up session (the gateway that served "
        f"every pgbench round above ended them at {results.facts['rss_after_pgbench_kb'] / 1024:.0f} MB):",
        "",
        "| test | before (MB) | peak (MB) | growth (MB) | |",
        "|---|---:|---:|---:|---|",
        f"| `{STREAM_SQL.format(rows=s['rows'])}` to psql: {s['wardgate_s']:.2f} s "
        f"through wardgate, {s['direct_s']:.2f} s directly; {s['masked']:,} values masked | "
        f"{s['before_kb'] / 1024:.1f} | {s['peak_kb'] / 1024:.1f} | {growth_mb:.1f} | "
        f"target < {TARGET_STREAM_MB} MB: {verdict(growth_mb < TARGET_STREAM_MB)} |",
        f"| {idle['sessions']} idle sessions ({IDLE_IDENTITIES} identities; opened in "
        f"{idle['open_s']:.1f} s, "
        f"8 at a time, each ran `SELECT 1`, then held {IDLE_HOLD_S:g} s, during which the gateway used "
        f"{idle['idle_cpu']:.0%} of a CPU) via `{idle['through']}` | "
        f"{idle['before_kb'] / 1024:.1f} | {idle_mb:.1f} | "
        f"{(idle['held_kb'] - idle['before_kb']) / 1024:.1f} "
        f"({per_session_kb:.0f} KB a session) | target < {TARGET_IDLE_MB} MB resident: "
        f"{verdict(idle_mb < TARGET_IDLE_MB and idle['sessions'] >= args.idle)} |",
        "",
        "Targets (issue 11):",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *target_rows,
    ]
    return summary, "\n".join(lines)


SECTION_INTRO = f"""{SECTION_HEADING}

The TCP gateway's cost (`benchmarks/pg_overhead.py`): pgbench select-only against the local
PostgreSQL directly, through PgBouncer (the reference proxy, transaction pooling, plain and with
TLS) and through wardgate (TLS required, the token as password, every statement decided by policy
and recorded before it runs, results through the masker), in one run, rounds rotated between the
paths. The gateway runs in a process of its own, as `wardgate serve-tcp` runs it, with the local
stack's stores (moto as a server on loopback) and the development certificate; its recording goes
to an in-memory sink (events serialised, then dropped) except on the row that records to moto's
Firehose and DynamoDB, which is a Python mock over loopback HTTP, far slower than Firehose itself:
that row is for information. pgbench's result is one `int4` column, which the masker skips (no
built-in detector can match a number that short), so masking costs next to nothing there; the
1,000,000-row SELECT (an `int4` and a `text` column) makes it scan every value. The local
PostgreSQL allows 100 connections and every wardgate session holds one upstream connection, so the
500 idle sessions go through a connection whose upstream is PgBouncer. For reference, a bare
Python asyncio passthrough measured 0.53-0.60x direct on these machines. `--profile` prints a
cProfile of the gateway process during `pgbench -c 1 -M extended` (`--profile-mode` for another
protocol), the place to start when optimising its hot path; `--compare REV,...` runs this tree's
gateway against earlier commits' in one run, the way to tell what a change did on a noisy machine.

{MARKERS[0]}
{MARKERS[1]}
"""


def ensure_sections() -> None:
    """Add this benchmark's section at the end of the doc, and its summary markers after the intro."""
    doc = DOC.read_text()
    if MARKERS[0] not in doc or MARKERS[1] not in doc:
        doc = doc.rstrip("\n") + "\n\n" + SECTION_INTRO
    if SUMMARY_MARKERS[0] not in doc or SUMMARY_MARKERS[1] not in doc:
        head, sep, tail = doc.partition("\n## How to run")
        doc = f"{head.rstrip()}\n\n{SUMMARY_MARKERS[0]}\n{SUMMARY_MARKERS[1]}\n{sep}{tail}"
    DOC.write_text(doc)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-gateway":
        serve_gateway(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"update the PostgreSQL section of {DOC.name}")
    parser.add_argument("--seconds", type=int, default=3, help="pgbench -T of each run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rotated rounds (default 3)")
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        help=f"seconds for a whole run: rounds after the first are dropped to keep it (default {BUDGET_S:g})",
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the large SELECT (default 1000000)"
    )
    parser.add_argument("--idle", type=int, default=500, help="idle sessions to hold (default 500)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only profile the gateway process (cProfile) during pgbench -c 1 and print its top functions",
    )
    parser.add_argument("--profile-mode", default="extended", choices=("simple", "extended", "prepared"))
    parser.add_argument(
        "--profile-loop", choices=("uvloop", "asyncio"), help="default: uvloop when installed"
    )
    parser.add_argument("--profile-top", type=int, default=15, help="functions listed per order (default 15)")
    parser.add_argument(
        "--compare",
        metavar="REV[,REV...]",
        help="only compare this tree's gateway with those of these commits in one run, and print the table",
    )
    args = parser.parse_args()
    if args.profile and args.write:
        parser.error("--profile does not measure what --write writes")
    if args.compare:
        if args.write or args.profile:
            parser.error("--compare is a run of its own: without --write or --profile")
        print(compare(args))
        return

    results = run(args)
    if args.profile:
        print(results.facts["profile"])
        return
    results.facts["server_version"] = psql_admin("SHOW server_version").split()[0]
    summary, text = report(results, args)
    print(summary, text, sep="\n\n")
    if args.write:
        ensure_sections()
        write_section(SUMMARY_MARKERS, summary)
        write_section(MARKERS, text)


if __name__ == "__main__":
    main()
