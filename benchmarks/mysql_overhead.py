"""MySQL through the TCP gateway (issue 12): sysbench ``oltp_point_select`` against the local MariaDB
directly and through wardgate's MySQL listener, in one run, text protocol and prepared statements,
at 1 and 8 concurrent clients.

One run, the local MariaDB (127.0.0.1:3306, the login ``wardgate_native`` on ``wardgate_test`` that
``scripts/mysql-test-auth`` creates), sysbench's table ``sbtest1`` of 10,000 rows there (made once
with ``sysbench oltp_point_select prepare``, reused while it is whole). Each sysbench event is one
``SELECT c FROM sbtest1 WHERE id=?`` on a random id: as a text query (``--db-ps-mode=disable``,
COM_QUERY) and as a server-side prepared statement (``--db-ps-mode=auto``, COM_STMT_EXECUTE).
``--threads=1`` and ``--threads=8``, several rounds, each round running every path in an order
rotated from the round before, so a noisy machine slows them alike. Paths:

- **direct**: MariaDB itself, no TLS (what an application on the database's host does);
- **wardgate**: the TCP gateway as ``wardgate serve-tcp`` runs it (``build_services`` +
  ``TcpGateway``, uvloop when installed, the development certificate, TLS required) with only the
  MySQL listener, in a process of its own started by this script (its CPU is its own, and the
  clients' load does not share its GIL). The connection is
  ``mysql://wardgate_native@127.0.0.1:3306/wardgate_test`` (the login from Secrets Manager, as on
  AWS); the policy in force (the development policy plus rules allowing SELECT and a driver's SET
  for the bench identity) decides every statement (a prepared one at prepare and again at each
  execute, with its values), rows go through the masker, and every statement is recorded before it
  runs, to an in-memory sink (the group commit inline, events serialised and counted, then dropped).

The stores behind the gateway and the development issuer are the local stack's (``DevStack``, with
moto as a server in this process: ``pg_overhead.local_stack``). sysbench connects to wardgate with
TLS (``--mysql-ssl=on``: sysbench 1.0 reads ``cacert.pem`` from its working directory, here the
development CA), the agent's token (``DevIssuer.mint``) as the password, and the connection name as
the database.

Added latency at 1 client is the difference of the p50s (and p99s) of per-event latencies from
sysbench's histogram (``--histogram``: logarithmic buckets about 1.8 % wide, every event of every
round). The gateway process's CPU time during a run (user + system, /proc) divided by the events
gives what one statement costs it.

    .venv/bin/python benchmarks/mysql_overhead.py             # print the tables (about 3 minutes)
    .venv/bin/python benchmarks/mysql_overhead.py --write     # and update docs/benchmarks.md
    .venv/bin/python benchmarks/mysql_overhead.py --profile   # only: py-spy samples of the gateway
                                                              # process during sysbench --threads=1

Needs MariaDB (or MySQL) on 127.0.0.1:3306 with ``scripts/mysql-test-auth``'s logins (``make
services``) and Debian's sysbench (installed with apt-get when missing and this runs as root).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
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
from statistics import median
from typing import Any

from common import DOC, ROOT, code_version, machine, write_section
from overhead import log
from pg_overhead import (
    AGENT,
    GatewayProcess,
    _exit_with_parent,
    local_stack,
    policy_document,
    uvloop_available,
    verdict,
)

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

MARKERS = ("<!-- mysqloverhead:start -->", "<!-- mysqloverhead:end -->")
SUMMARY_MARKERS = ("<!-- mysqlsummary:start -->", "<!-- mysqlsummary:end -->")
SECTION_HEADING = "## MySQL through the TCP gateway"
MY_HOST, MY_PORT = "127.0.0.1", 3306
DATABASE = "wardgate_test"
LOGIN_USER, LOGIN_PASSWORD = "wardgate_native", "wardgate-login-pw"  # scripts/mysql-test-auth's login
TABLE_SIZE = 10_000
CONNECTION = "bench-mysql"
SECRET = "wardgate/bench-mysql"
TARGET_RATIO = 0.5  # wardgate statements/s / direct at 8 clients
TARGET_ADDED_MS = 0.2  # added p50 per statement at 1 client
COMMAND = ".venv/bin/python benchmarks/mysql_overhead.py --write"
BUDGET_S = 240.0  # a whole run: rounds after the first are dropped to stay within it
MODES = {"text": "disable", "prepared": "auto"}  # ours -> sysbench --db-ps-mode
PATHS = {  # the rows of the tables, in this order ({loop}: the gateway's event loop)
    "direct": "MariaDB directly (no TLS)",
    "wardgate": "wardgate, {loop}, recording in memory",
}


# ------------------------------------------------------------------------------- the gateway process
def serve_gateway(config: dict[str, Any]) -> None:
    """The child: what ``wardgate serve-tcp`` runs, with only the MySQL listener and an in-memory
    recording sink that counts what it is given (written to ``<ready>.stats`` when it stops)."""
    import asyncio
    import resource

    from wardgate.config import Settings
    from wardgate.recording import MemoryIndex, MemoryStream
    from wardgate.tcp.config import Listener, TcpSettings
    from wardgate.tcp.server import TcpGateway, build_services

    class CountingStream(MemoryStream):
        """Serialised events counted, then dropped (minutes of sysbench would keep gigabytes)."""

        def __init__(self) -> None:
            super().__init__()
            self.events = self.bytes = 0

        def put(self, line: bytes) -> None:
            self.events += 1
            self.bytes += len(line)

        def put_batch(self, lines: list[bytes]) -> None:
            self.events += len(lines)
            self.bytes += sum(map(len, lines))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65535), hard), hard))
    tcp = TcpSettings(
        listeners=(Listener("mysql", 0, "127.0.0.1"),),
        tls_cert_file=config["cert"],
        tls_key_file=config["key"],
        health_port=0,
        mysql_server_version=config["server_version"],
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
            json.dumps({"port": gateway.ports["mysql"], "health": gateway.health_port, "pid": os.getpid()})
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


class MySqlGatewayProcess(GatewayProcess):
    """pg_overhead's gateway child, started as this script's ``--serve-gateway`` (the MySQL listener)."""

    def __init__(self, folder: Path, certs: Any, loop: str, server_version: str) -> None:
        super().__init__(folder, certs, "memory", loop)
        self.config["server_version"] = server_version

    def start(self) -> MySqlGatewayProcess:
        with self.logfile.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--serve-gateway", json.dumps(self.config)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the MySQL gateway did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        info = json.loads(self.ready.read_text())
        self.port, self.health, self.pid = info["port"], info["health"], info["pid"]
        return self

    def recorded(self) -> dict[str, int]:
        """What its sink was given, once it has stopped (empty when it did not stop cleanly)."""
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(self.ready.with_suffix(".stats").read_text()))
        return {}


# ------------------------------------------------------------------------------------------ MariaDB
def direct_connection() -> Any:
    import pymysql

    try:
        return pymysql.connect(
            host=MY_HOST, port=MY_PORT, user=LOGIN_USER, password=LOGIN_PASSWORD, database=DATABASE
        )
    except pymysql.err.OperationalError as exc:
        raise SystemExit(
            f"cannot log in to MariaDB at {MY_HOST}:{MY_PORT} as {LOGIN_USER} ({exc.args[-1]}): "
            "make services (scripts/mysql-test-auth) sets it up"
        ) from None


def sysbench_binary() -> str:
    """Debian's sysbench; installed with apt-get when missing and this runs as root."""
    if not shutil.which("sysbench") and os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing sysbench (apt-get) ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "sysbench"], env=env, capture_output=True, timeout=300
            )
    found = shutil.which("sysbench")
    if found is None:
        raise SystemExit("needs sysbench on the PATH (apt-get install sysbench)")
    return found


def ensure_table(binary: str) -> str:
    """``sbtest1`` with TABLE_SIZE rows: reused when whole, made again (sysbench prepare) otherwise."""
    import pymysql

    # 1146 (ProgrammingError): no table yet
    with direct_connection() as db, db.cursor() as cur, contextlib.suppress(pymysql.err.ProgrammingError):
        cur.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM sbtest1")
        if cur.fetchone() == (TABLE_SIZE, 1, TABLE_SIZE):
            return "reused"
    log(f"making sbtest1 ({TABLE_SIZE:,} rows) with sysbench prepare ...")
    base = [binary, "oltp_point_select", *Target("direct", "", MY_PORT, LOGIN_USER, DATABASE).options()]
    base += ["--tables=1", f"--table-size={TABLE_SIZE}"]
    env = {**os.environ, "MYSQL_PWD": LOGIN_PASSWORD}
    for action in ("cleanup", "prepare"):
        done = subprocess.run([*base, action], env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"sysbench {action} failed:\n{done.stdout}\n{done.stderr}")
    return "made"


# ------------------------------------------------------------------------------------------ sysbench
def client_certificate(folder: Path) -> tuple[Path, Path]:
    """sysbench 1.0 with ``--mysql-ssl=on`` loads ``client-cert.pem`` and ``client-key.pem`` from its
    working directory and will not connect without them; the gateway does not ask for a client
    certificate, so a throwaway self-signed one that identifies nobody. (The local MariaDB does ask
    for one when offered TLS and refuses this one: hence no direct-with-TLS path here.)"""
    folder.mkdir()
    cert, key = folder / "client-cert.pem", folder / "client-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-days", "1", "-subj", "/CN=sysbench client", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@dataclass(frozen=True)
class Target:
    key: str
    password: str
    port: int
    user: str
    database: str
    tls_dir: Path | None = None  # sysbench's working directory, holding cacert.pem (None: no TLS)
    pid: int = 0  # the proxy's process, whose CPU time is counted (0: none)

    def options(self) -> list[str]:
        return [
            "--db-driver=mysql",
            f"--mysql-host={MY_HOST}",
            f"--mysql-port={self.port}",
            f"--mysql-user={self.user}",
            f"--mysql-db={self.database}",
            f"--mysql-ssl={'on' if self.tls_dir else 'off'}",
        ]


@dataclass(frozen=True)
class Counters:
    """A process's CPU time so far (user, system: /proc/PID/stat) and its read and write system
    calls (/proc/PID/io: every socket read and write, epoll not included)."""

    user_s: float
    system_s: float
    syscalls: int

    @classmethod
    def of(cls, pid: int) -> Counters:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        tick = os.sysconf("SC_CLK_TCK")
        return cls(int(stat[11]) / tick, int(stat[12]) / tick, int(io["syscr"]) + int(io["syscw"]))


@dataclass(frozen=True)
class Cost:
    """Per event: the proxy's user and system CPU (µs) and its read/write system calls."""

    user_us: float
    system_us: float
    syscalls: float

    @property
    def cpu_us(self) -> float:
        return self.user_us + self.system_us


@dataclass
class BenchRun:
    events: int
    eps: float  # events (statements) per second
    cost: Cost | None = None  # what one event cost the proxy process
    histogram: Counter[float] = field(default_factory=Counter)  # latency (ms, bucket) -> events


HISTOGRAM_LINE = re.compile(r"^\s*([0-9.]+) \|[* ]*?\s(\d+)\s*$")


CONNECT_ATTEMPTS = 3
CONNECT_FAILURE = re.compile(r"^FATAL: (error \d+: .*)$", re.MULTILINE)


def sysbench(
    binary: str, target: Target, clients: int, mode: str, seconds: float, retried: list[str] | None = None
) -> BenchRun:
    """One sysbench run. sysbench gives up when any of its connections fails to open; such a run
    is made again (up to CONNECT_ATTEMPTS in all) and the error appended to ``retried``: failed
    logins are not what this measures, and the report counts them."""
    command = [binary, "oltp_point_select", *target.options(), "--tables=1", f"--table-size={TABLE_SIZE}"]
    command += [f"--threads={clients}", f"--time={seconds:g}", f"--db-ps-mode={MODES[mode]}"]
    command += ["--histogram=on", "--report-interval=0", "--rand-type=uniform", "run"]
    # The password through the environment (libmariadb reads MYSQL_PWD when sysbench passes none),
    # not the command line, where any process could read the agent's token.
    env = {**os.environ, "MYSQL_PWD": target.password}
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        before = Counters.of(target.pid) if target.pid else None
        done = subprocess.run(
            command, env=env, cwd=target.tls_dir, capture_output=True, text=True, timeout=seconds + 60
        )
        after = Counters.of(target.pid) if target.pid else None
        output = done.stdout + done.stderr
        if done.returncode == 0 or "unable to connect" not in output or attempt == CONNECT_ATTEMPTS:
            break
        failure = CONNECT_FAILURE.search(output)
        reason = failure.group(1) if failure else "a connection failed"
        log(f"sysbench could not connect through {target.key} ({mode}, {clients} clients: {reason}); again")
        if retried is not None:
            retried.append(reason)
    events = re.search(r"^\s+total number of events:\s+(\d+)", done.stdout, re.MULTILINE)
    elapsed = re.search(r"^\s+total time:\s+([0-9.]+)s", done.stdout, re.MULTILINE)
    errors = re.search(r"^\s+ignored errors:\s+(\d+)", done.stdout, re.MULTILINE)
    if done.returncode != 0 or events is None or elapsed is None or (errors and errors.group(1) != "0"):
        raise RuntimeError(
            f"sysbench against {target.key} ({mode}, {clients} clients) failed:\n{done.stdout}\n{done.stderr}"
        )
    count = int(events.group(1))
    run = BenchRun(count, count / float(elapsed.group(1)))
    if before is not None and after is not None and count:
        run.cost = Cost(
            (after.user_s - before.user_s) / count * 1e6,
            (after.system_s - before.system_s) / count * 1e6,
            (after.syscalls - before.syscalls) / count,
        )
    in_histogram = False
    for line in done.stdout.splitlines():
        if line.startswith("Latency histogram"):
            in_histogram = True
        elif in_histogram and (bucket := HISTOGRAM_LINE.match(line)):
            run.histogram[float(bucket.group(1))] += int(bucket.group(2))
    if sum(run.histogram.values()) != count:
        raise RuntimeError(f"sysbench's histogram holds {sum(run.histogram.values())} of {count} events")
    return run


def histogram_percentile(histogram: Counter[float], q: float) -> float:
    """Nearest-rank percentile over a histogram's buckets (the bucket's value)."""
    total = sum(histogram.values())
    rank = max(1, -(-q * total // 100))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise ValueError("an empty histogram")


# ------------------------------------------------------------------------------------------ the run
@dataclass
class Results:
    eps: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    cost: dict[tuple[str, str, int], list[Cost]] = field(default_factory=dict)
    latency: dict[tuple[str, str], Counter[float]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def run_rounds(binary: str, targets: dict[str, Target], args: argparse.Namespace, results: Results) -> None:
    groups = [(mode, clients) for mode in MODES for clients in (1, 8)]
    names = list(targets)
    log(f"{args.rounds} rounds of {len(groups) * len(names)} sysbench runs of {args.seconds:g} s ...")
    served = 0  # statements through the gateway (warm-ups too), to set against what it recorded
    retried: list[str] = results.facts.setdefault("retried", [])
    runs = 0
    for target in targets.values():  # warm-up: connections, caches, the first JWKS fetch
        for mode in MODES:
            warm = sysbench(binary, target, 8, mode, 1, retried)
            served += warm.events if target.pid else 0
            runs += 1
    results.facts["rounds"] = 0
    for round_no in range(args.rounds):
        started = time.monotonic()
        for mode, clients in groups:
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                done = sysbench(binary, targets[name], clients, mode, args.seconds, retried)
                results.eps.setdefault((name, mode, clients), []).append(done.eps)
                if done.cost is not None:
                    results.cost.setdefault((name, mode, clients), []).append(done.cost)
                if clients == 1:
                    results.latency.setdefault((name, mode), Counter()).update(done.histogram)
                served += done.events if targets[name].pid else 0
                runs += 1
                results.facts["served"], results.facts["runs"] = served, runs
        results.facts["rounds"] = round_no + 1
        log(f"round {round_no + 1}/{args.rounds} done")
        if round_no + 1 < args.rounds and time.monotonic() + (time.monotonic() - started) > args.deadline:
            log(f"stopping after {round_no + 1} rounds: another would overrun --budget {args.budget:g}")
            break


def masking_check(port: int, token: str, ca_file: str) -> dict[str, Any]:
    """One row through wardgate and directly (PyMySQL): does the masker change sysbench's ``c``?"""
    import pymysql

    sql = "SELECT c FROM sbtest1 WHERE id = 1"
    with direct_connection() as db, db.cursor() as cur:
        cur.execute(sql)
        direct = cur.fetchone()
    with (
        pymysql.connect(
            host=MY_HOST,
            port=port,
            user=AGENT,
            password=token,
            database=CONNECTION,
            ssl={"ca": ca_file, "check_hostname": True},
        ) as db,
        db.cursor() as cur,
    ):
        cur.execute(sql)
        through = cur.fetchone()
    return {"changed": through != direct, "masked": "[masked" in repr(through)}


def bench_policy() -> dict[str, Any]:
    """pg_overhead's (the development policy, SELECT for ``ci``), on this connection, plus the SET
    a MySQL driver may send to set up its session."""
    document = policy_document([CONNECTION])
    document["rules"].append(
        {
            "name": "mysql drivers may set up their session on the bench connection",
            "effect": "allow",
            "connections": [CONNECTION],
            "identity": {"groups": ["ci"]},
            "match": {"sql": {"kinds": ["set"]}},
        }
    )
    return document


def run(args: argparse.Namespace) -> Results:
    from wardgate import aws
    from wardgate.config import Settings
    from wardgate.connections import Connection, ConnectionStore
    from wardgate.dev.certs import make_dev_certificates

    results = Results()
    args.deadline = time.monotonic() + args.budget - 20
    loop = "uvloop" if uvloop_available() else "asyncio"
    results.facts["loop"] = loop
    binary = sysbench_binary()
    results.facts["sysbench"] = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    results.facts["table"] = ensure_table(binary)
    with direct_connection() as db:
        server_version = str(db.server_version)  # the greeting's, as an operator sets it for the gateway
    results.facts["server_version"] = server_version
    with contextlib.ExitStack() as cleanup:
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="wardgate-sysbench-")))
        certs = make_dev_certificates(work)
        stack = cleanup.enter_context(local_stack(work, None))
        aws.client("secretsmanager").create_secret(
            Name=SECRET,
            SecretString=json.dumps({"type": "basic", "username": LOGIN_USER, "password": LOGIN_PASSWORD}),
        )
        ConnectionStore(Settings.from_env().connections_table).put(
            Connection(
                CONNECTION,
                "sql",
                f"mysql://{LOGIN_USER}@{MY_HOST}:{MY_PORT}/{DATABASE}",
                SECRET,
                ("ci",),
                "sysbench table, directly",
            )
        )
        stack.apply_policy(bench_policy())
        token = stack.issuer.mint(AGENT, ["ci"], ttl=3600)

        client_pair = client_certificate(work / "client")

        def tls_dir(name: str, ca: Path) -> Path:
            folder = work / name
            folder.mkdir()
            shutil.copy(ca, folder / "cacert.pem")
            for file in client_pair:
                shutil.copy(file, folder / file.name)
            return folder

        if args.profile and args.profile_loop:
            loop = results.facts["loop"] = args.profile_loop
        gateway = MySqlGatewayProcess(work, certs, loop, server_version).start()
        cleanup.callback(gateway.stop)
        through = Target(
            "wardgate",
            token,
            gateway.port,
            AGENT,
            CONNECTION,
            tls_dir("wardgate-ca", certs.ca_file),
            gateway.pid,
        )
        if args.profile:
            sysbench(binary, through, 1, args.profile_mode, 1)  # warm
            results.facts["profile"] = profile(binary, through, loop, args, work)
            return results

        targets = {
            "direct": Target("direct", LOGIN_PASSWORD, MY_PORT, LOGIN_USER, DATABASE),
            "wardgate": through,
        }
        try:
            results.facts["masking"] = masking_check(gateway.port, token, str(certs.ca_file))
            run_rounds(binary, targets, args, results)
        except Exception:
            log(f"the gateway's log ends:\n{gateway.log_tail()}")
            raise
        results.facts["rss_kb"] = gateway.rss_kb()
        gateway.stop()
        results.facts["recorded"] = gateway.recorded()
    return results


# ------------------------------------------------------------------------------------------ profile
IO_FRAMES = ("StreamWriter.write (asyncio/streams.py)", "Runner.run (asyncio/runners.py)")


def profile(binary: str, target: Target, loop: str, args: argparse.Namespace, folder: Path) -> str:
    """py-spy samples of the gateway process during one sysbench run; the functions by own and by
    total share of the samples taken while it was busy (waiting in the event loop's poll is idle)."""
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if py_spy is None:
        raise SystemExit("needs py-spy (.venv/bin/pip install py-spy)")
    raw = folder / "py-spy.txt"
    seconds = args.seconds * 3
    spy = subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(target.pid), "--duration", str(int(seconds) + 1)),
            *("--rate", "250", "--format", "raw", "--output", str(raw)),
            # native frames need the process stopped at each sample: far slower, and threads
            # waiting in C (the thread pool's queue, epoll) then count as busy
            *(("--native",) if args.profile_native else ("--nonblocking",)),
            *(("--gil",) if args.profile_gil else ()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    done = sysbench(binary, target, 1, args.profile_mode, seconds)
    _, err = spy.communicate(timeout=seconds + 60)
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')}")
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    python_total: Counter[str] = Counter()  # samples outside the I/O frames below
    by_file: Counter[str] = Counter()
    samples = io_samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]  # outermost first
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        by_file[frames[-1].rpartition(" (")[2].rstrip(")")] += count
        for frame in set(frames):
            total[frame] += count
        if frames[-1] in IO_FRAMES:
            io_samples += count
        else:
            for frame in set(frames):
                python_total[frame] += count
    if not samples:
        raise RuntimeError("py-spy took no samples of a busy gateway")
    cpu_us = done.cost.cpu_us if done.cost else 0.0
    lines = [
        f"py-spy{' --gil' if args.profile_gil else ''} of the gateway process ({loop}) during sysbench "
        f"--threads=1 --db-ps-mode={MODES[args.profile_mode]} "
        f"--time={seconds:g} ({done.eps:.0f} statements/s, {cpu_us:.0f} µs of the gateway's CPU a statement, "
        f"while sampled); {samples:,} busy samples at 250 Hz. Shares are of the busy samples.",
        f"{io_samples / samples:.1%} of them are in the event loop's own code or a socket write "
        f"({', '.join(sorted(IO_FRAMES))}: polling, socket reads and writes, TLS records, and time spent "
        "runnable there while another process had the CPU).",
    ]
    for title, counter in (
        ("own time", own),
        ("total time (with callees)", total),
        ("total time, samples in those I/O frames left out", python_total),
    ):
        lines += ["", f"---- top {args.profile_top} by {title} ----"]
        lines += [f"{n / samples:6.1%}  {frame}" for frame, n in counter.most_common(args.profile_top)]
    lines += ["", "---- own time by file ----"]
    lines += [f"{n / samples:6.1%}  {file}" for file, n in by_file.most_common(args.profile_top)]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ report
def report(results: Results, args: argparse.Namespace) -> tuple[str, str]:
    loop = results.facts["loop"]
    eps, lat = results.eps, results.latency

    def label(name: str) -> str:
        return PATHS[name].format(loop=loop)

    def ratio(name: str, mode: str, clients: int) -> float:
        return median(eps[(name, mode, clients)]) / median(eps[("direct", mode, clients)])

    def ratio_cell(name: str, mode: str, clients: int) -> str:
        per_round = sorted(
            a / b for a, b in zip(eps[(name, mode, clients)], eps[("direct", mode, clients)], strict=True)
        )
        return f"{ratio(name, mode, clients):.2f}x ({per_round[0]:.2f}-{per_round[-1]:.2f})"

    def added(mode: str, q: float) -> float:
        return histogram_percentile(lat[("wardgate", mode)], q) - histogram_percentile(
            lat[("direct", mode)], q
        )

    def cost_cell(costs: list[Cost] | None) -> str:
        if not costs:
            return "-"
        user, system = median(c.user_us for c in costs), median(c.system_us for c in costs)
        return f"{user + system:.0f} ({user:.0f} + {system:.0f}; {median(c.syscalls for c in costs):.1f})"

    rows, lat_rows = [], []
    for mode in MODES:
        for name in PATHS:
            bold = "**" if name == "wardgate" else ""
            cost = " / ".join(cost_cell(results.cost.get((name, mode, c))) for c in (1, 8))
            rows.append(
                f"| {bold}{label(name)}{bold} | {mode} | {median(eps[(name, mode, 1)]):,.0f} | "
                f"{ratio_cell(name, mode, 1)} | {median(eps[(name, mode, 8)]):,.0f} | "
                f"{bold}{ratio_cell(name, mode, 8)}{bold} | {cost} |"
            )
        base = lat[("direct", mode)]
        for name in PATHS:
            values = lat[(name, mode)]
            p50, p90, p99 = (histogram_percentile(values, q) for q in (50, 90, 99))
            difference = (
                f"{p50 - histogram_percentile(base, 50):+.3f} / {p99 - histogram_percentile(base, 99):+.3f}"
                if name != "direct"
                else "-"
            )
            bold = "**" if name == "wardgate" else ""
            lat_rows.append(
                f"| {label(name)} | {mode} | {sum(values.values()):,} | {p50:.3f} | {p90:.3f} | {p99:.3f} | "
                f"{bold}{difference}{bold} |"
            )

    targets: list[tuple[str, str, bool]] = []
    for mode in MODES:
        r8, a50, a99 = ratio("wardgate", mode, 8), added(mode, 50), added(mode, 99)
        targets.append(
            (
                f"sysbench `oltp_point_select`, 8 clients, {mode}: wardgate >= 0.5x direct",
                f"{r8:.2f}x",
                r8 >= TARGET_RATIO,
            )
        )
        targets.append(
            (
                f"sysbench `oltp_point_select`, 1 client, {mode}: added latency <= 0.2 ms p50",
                f"{a50:+.3f} ms p50 ({a99:+.3f} ms p99)",
                a50 <= TARGET_ADDED_MS,
            )
        )
    target_rows = [f"| {what} | {value} | {verdict(ok)} |" for what, value, ok in targets]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary = "\n".join(
        [
            f"**MySQL through the TCP gateway** (issue 12; `{COMMAND}`, {when}, {code_version()}; "
            "details in [its section](#mysql-through-the-tcp-gateway)):",
            "",
            "| target | measured | |",
            "|---|---|---|",
            *target_rows,
        ]
    )
    command = (
        COMMAND
        + (f" --seconds {args.seconds:g}" if args.seconds != 4 else "")
        + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
        + (f" --budget {args.budget:g}" if args.budget != BUDGET_S else "")
    )
    rounds = results.facts["rounds"]
    masking, recorded = results.facts["masking"], results.facts.get("recorded") or {}
    masked = (
        "masked (the masker's detectors match its digit groups)"
        if masking["masked"]
        else ("changed" if masking["changed"] else "returned as stored (no detector matches it)")
    )
    recording = (
        f"the gateway's sink took {recorded['events']:,} recording events ({recorded['bytes'] / 1e6:.0f} MB "
        f"serialised) for the {results.facts.get('served', 0):,} statements sysbench ran through it "
        "(warm-ups included) and one PyMySQL query"
        if recorded
        else "the gateway's recording counts were not read (it did not stop cleanly)"
    )
    retried = results.facts.get("retried") or []
    retries = (
        f" {len(retried)} of the {results.facts['runs']} sysbench runs (warm-ups included) had to be made "
        "again because a connection failed to open: "
        + "; ".join(f"{n}x `{reason}`" for reason, n in Counter(retried).most_common())
        + "."
        if retried
        else ""
    )
    lines = [
        f"Run {when} of {code_version()} on {machine()}; `{command}`; MariaDB "
        f"{results.facts['server_version']} on loopback, table `sbtest1` of {TABLE_SIZE:,} rows "
        f"({results.facts['table']}); {results.facts['sysbench']}; the gateway under {loop}. "
        f"{rounds} round{'s' if rounds != 1 else ''} of `sysbench oltp_point_select --time={args.seconds:g}` "
        "per path, "
        "protocol (`--db-ps-mode=disable`: text queries; `auto`: server-side prepared statements) and client "
        "count (`--threads=1`, `--threads=8`), the paths' order rotated each round; statements per second "
        "are medians of the rounds, ratios are against the direct path (no TLS) in the same protocol, with "
        "the lowest and highest per-round ratio. The last column is what one statement cost the gateway "
        "process during the run, median of the rounds: its CPU time in µs (user + system, /proc/PID/stat) "
        "and its read and write system calls (/proc/PID/io: socket reads and writes, not epoll). "
        f"sysbench's `c` column came back through wardgate {masked}; {recording}; the gateway process "
        f"ended at {results.facts['rss_kb'] / 1024:.0f} MB resident.{retries}",
        "",
        "| path | protocol | statements/s, 1 client | x direct | statements/s, 8 clients | x direct | "
        "gateway per statement: CPU µs (user + system; read/write calls), 1 / 8 clients |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Per-statement latency at 1 client (ms, sysbench `--histogram`, every event of every round; added is "
        "the p50 / p99 minus the direct path's in the same protocol):",
        "",
        "| path | protocol | statements | p50 | p90 | p99 | added p50 / p99 |",
        "|---|---|---:|---:|---:|---:|---:|",
        *lat_rows,
        "",
        "Targets (issue 12):",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *target_rows,
    ]
    return summary, "\n".join(lines)


SECTION_INTRO = f"""{SECTION_HEADING}

The MySQL listener's cost (`benchmarks/mysql_overhead.py`): sysbench `oltp_point_select` (one
`SELECT c FROM sbtest1 WHERE id=?` per event on a 10,000-row table) against the local MariaDB
directly (no TLS) and through wardgate (TLS required, the token as password, the connection name
as database, every statement decided by policy and recorded before it runs, rows through the
masker), as text queries and as server-side prepared statements, at 1 and 8 clients, in one run,
rounds rotated between the paths. The gateway runs in a process of its own, as
`wardgate serve-tcp` runs it with only the MySQL listener, with the local stack's stores (moto as a
server on loopback) and the development certificate; its recording goes to an in-memory sink (events
serialised, counted, then dropped). A sysbench run that could not open its connections is made
again and counted in the report. `--profile` prints where the gateway process spends its time
(py-spy samples, by function and by file) during `sysbench --threads=1`.

{MARKERS[0]}
{MARKERS[1]}
"""


def ensure_sections() -> None:
    """Add this benchmark's section at the end of the doc, and its summary markers after the
    PostgreSQL one (or, without it, before "## How to run")."""
    doc = DOC.read_text()
    if MARKERS[0] not in doc or MARKERS[1] not in doc:
        doc = doc.rstrip("\n") + "\n\n" + SECTION_INTRO
    if SUMMARY_MARKERS[0] not in doc or SUMMARY_MARKERS[1] not in doc:
        block = f"{SUMMARY_MARKERS[0]}\n{SUMMARY_MARKERS[1]}"
        pg_end = "<!-- pgsummary:end -->"
        if pg_end in doc:
            doc = doc.replace(pg_end, f"{pg_end}\n\n{block}", 1)
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
    parser.add_argument("--write", action="store_true", help=f"update the MySQL section of {DOC.name}")
    parser.add_argument("--seconds", type=float, default=4, help="sysbench --time of each run (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="rotated rounds (default 3)")
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        help=f"seconds for a whole run: rounds after the first are dropped to keep it (default {BUDGET_S:g})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only sample the gateway process (py-spy) during sysbench --threads=1; print its top functions",
    )
    parser.add_argument("--profile-mode", default="text", choices=tuple(MODES))
    parser.add_argument("--profile-top", type=int, default=25, help="functions listed per order (default 25)")
    parser.add_argument(
        "--profile-loop", choices=("uvloop", "asyncio"), help="default: uvloop when installed"
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: only samples holding the GIL (Python at work, not waiting for a CPU in a call)",
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: sample C frames too (uvloop, OpenSSL, the kernel calls behind them)",
    )
    args = parser.parse_args()
    if args.profile and args.write:
        parser.error("--profile does not measure what --write writes")

    results = run(args)
    if args.profile:
        print(results.facts["profile"])
        return
    summary, text = report(results, args)
    print(summary, text, sep="\n\n")
    if args.write:
        ensure_sections()
        write_section(SUMMARY_MARKERS, summary)
        write_section(MARKERS, text)


if __name__ == "__main__":
    main()
