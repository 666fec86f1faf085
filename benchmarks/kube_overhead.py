"""Kubernetes through wardgate (issue 17's "Speed"): a list of 100 pods with the official Python
``kubernetes`` client, directly to the cluster double and through both of wardgate's Kubernetes
paths, in one run.

Paths, interleaved in alternating blocks whose order rotates (a noisy machine slows them alike):

- **direct**: the cluster double (``wardgate.dev.kube.server.KubeDouble``, TLS with the
  development CA, its own bearer token);
- **Lambda path**: the local front door's HTTPS route ``/k8s/<connection>`` (``DevStack.https_url``):
  an API Gateway payload 2.0 event, the HTTP function's handler (``runtime.handle_http_event``:
  token, agent registry, policy on RBAC attributes, recording, forwarding, masking), the answer
  turned back into HTTP, as API Gateway does;
- **Fargate listener**: the TCP gateway's Kubernetes listener (``wardgate serve-tcp``'s
  ``kubernetes`` listener, in the local stack's thread): TLS, h11, the same ``HttpGateway`` code
  on the listener's worker threads.

The client is ``CoreV1Api().list_namespaced_pod`` with the default deserialisation into
``V1PodList``, configured by ``kubernetes.config.load_kube_config`` from a kubeconfig that
``wardgate kubeconfig`` writes (the token-file form; ``--via lambda`` for the Lambda path); the
direct one is written here (the double's URL, its CA, its token). The double holds, in namespace
``bench``, a Deployment of 100 replicas that its controllers turn into 100 Running pods (one
container, probes, resources, an environment holding an on-call email address that the default
policy's masking hides through wardgate). Each list answer is checked: 100 pods, the same names
every way, the email masked through wardgate and not directly.

Masking is the development policy's (the default one); recording is on, into in-memory sinks
(events serialised in full, counted, then dropped), as ``overhead.py`` and ``pg_overhead.py``
record. The local stack and the double run in this process with moto mocked in-process (the
stores are read on cache misses only); the Python client runs in a process of its own
(``--client``), so that the gateway's work after it has answered (the outcome's recording, logs)
does not take the client's GIL while it deserialises. Also timed, with the same interleaving:
the same list with ``_preload_content=False`` (the HTTP exchange alone, body read, no
deserialisation), and ``kubectl get pods`` (Table output, a new process each time, discovery
cached) as a secondary line. Then, unless ``--no-profile``, the gateway side's CPU time is
profiled (cProfile per thread, ``time.thread_time``) during more lists through each path.

    .venv/bin/python benchmarks/kube_overhead.py             # print the tables (about 3 minutes)
    .venv/bin/python benchmarks/kube_overhead.py --write     # and update docs/benchmarks.md
    .venv/bin/python benchmarks/kube_overhead.py --profile   # only: cProfile of the gateway side
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import summary
from common import DOC, ROOT, code_version, machine, write_section
from overhead import log, percentile, stdout_to_devnull

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

MARKERS = ("<!-- kubeoverhead:start -->", "<!-- kubeoverhead:end -->")
SUMMARY_MARKERS = ("<!-- kubesummary:start -->", "<!-- kubesummary:end -->")
SECTION_HEADING = "## Kubernetes through wardgate"
COMMAND = ".venv/bin/python benchmarks/kube_overhead.py --write"
CONNECTION = "demo-k8s"  # the local stack's connection to its cluster double
NAMESPACE = "bench"
PODS = 100
ONCALL_EMAIL = "web-oncall@example.com"  # in every pod's environment: the default masking hides it
TARGET_RATIO = 1.5  # issue 17: each path's p50 at most 1.5x the direct p50
PATHS = ("direct", "lambda", "listener")
LABELS = {
    "direct": "the cluster double directly",
    "lambda": "wardgate, Lambda path (front door HTTPS `/k8s/<connection>`)",
    "listener": "wardgate, Fargate listener (TCP gateway, `kubernetes`)",
}
PROFILE_TOP = 12
# The parts of the gateway's work named in the profile: (label, [(file suffix, function)...]).
PROFILE_PARTS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "the front door: event in, the handler, answer out (`GatewayServer.dispatch`)",
        [("dev/server.py", "dispatch")],
    ),
    (
        "the listener's event loop: TLS, h11, routing, the answer (`KubeConnection.run`)",
        [("kubernetes/listener.py", "run")],
    ),
    ("`HttpGateway.handle`, in all", [("wardgate/gateway.py", "handle")]),
    ("... admission: token, agent registry, connection (`Gate.admit`)", [("wardgate/gate.py", "admit")]),
    (
        "... forwarding to the double and reading its answer (`HttpForwarder.forward`)",
        [("proxies/http.py", "forward")],
    ),
    ("... masking the answer (`mask_kubernetes_body`)", [("masking/kubernetes.py", "mask_kubernetes_body")]),
    (
        "... recording (`Recorder.record_request` + `record_outcome`)",
        [("wardgate/recording.py", "record_request"), ("wardgate/recording.py", "record_outcome")],
    ),
    (
        "... the agent registry (`_agent_for`: its table read every 0.5 s, moto here, DynamoDB on AWS)",
        [("wardgate/agents.py", "_agent_for")],
    ),
]


# ------------------------------------------------------------------------------------ the local stack
class CountingStream:
    """The in-memory sink, counting serialised events instead of keeping them (the run's recordings
    would otherwise be the process's memory, which is not the gateway's)."""

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.lock = threading.Lock()

    def put(self, line: bytes) -> None:
        with self.lock:
            self.events += 1
            self.bytes += len(line)

    def put_batch(self, lines: list[bytes]) -> None:
        with self.lock:
            self.events += len(lines)
            self.bytes += sum(map(len, lines))


class CountingIndex:
    def __init__(self) -> None:
        self.entries = 0

    def put(self, entry: dict[str, Any]) -> None:
        self.entries += 1


def make_bench_stack(folder: Path, stream: CountingStream, index: CountingIndex) -> Any:
    """The local stack (``DevStack``) with its TCP gateway serving only the Kubernetes listener,
    recording into the counting sinks, and without the approval notifier (it polls SQS 20 times a
    second: noise the Fargate task does not have)."""
    from wardgate.dev.stack import DevStack

    class BenchStack(DevStack):
        def start_tcp(self) -> None:
            from wardgate.config import Settings
            from wardgate.tcp.config import Listener, TcpSettings
            from wardgate.tcp.server import GatewayThread, build_services

            settings = TcpSettings(
                listeners=(Listener("kubernetes", 0, self.host),),
                tls_cert_file=str(self.certificates.cert_file),
                tls_key_file=str(self.certificates.key_file),
                health_port=None,
            )
            self.tcp = GatewayThread(
                lambda: build_services(
                    Settings.from_env(), settings, stream=stream, index=index, inline_recording=True
                ),
                settings,
            ).start()
            self._stoppers.append(self.tcp.stop)

        def start_notifier(self) -> None:
            pass

    return BenchStack(root=ROOT, state_dir=folder, port=0, upstream_port=0, sign_manifests=False)


def seed_pods(double: Any) -> None:
    """Namespace ``bench`` with a Deployment of PODS replicas; the double's controllers make the
    ReplicaSet and the Running pods (status, conditions, IPs) as a control plane would."""
    from wardgate.dev.kube.controllers import DEPLOYMENTS, NAMESPACES

    store = double.store
    store.create(
        NAMESPACES,
        {
            "metadata": {"name": NAMESPACE, "labels": {"kubernetes.io/metadata.name": NAMESPACE}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        },
    )
    labels = {"app": "api", "tier": "backend"}
    container = {
        "name": "api",
        "image": "registry.example.com/shop/api:2.14.1",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "ONCALL_EMAIL", "value": ONCALL_EMAIL},
        ],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    store.create(
        DEPLOYMENTS,
        {
            "metadata": {"name": "api", "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "replicas": PODS,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [container], "restartPolicy": "Always"},
                },
            },
        },
    )
    double.cluster.reconcile(NAMESPACE)


# ------------------------------------------------------------------------------------------ clients
def direct_kubeconfig(path: Path, double: Any) -> Path:
    """What an operator's kubeconfig for the double holds: its URL, its CA and its token."""
    assert double.ca_pem is not None
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "double",
                "cluster": {
                    "server": double.url,
                    "certificate-authority-data": base64.b64encode(double.ca_pem.encode()).decode(),
                },
            }
        ],
        "users": [{"name": "operator", "user": {"token": double.token}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "operator"}}],
        "current-context": "double",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def wardgate_kubeconfig(path: Path, token_file: Path, *via: str) -> Path:
    """``wardgate kubeconfig`` (to the listener; ``--via lambda`` to the Lambda route)."""
    from wardgate import cli

    argv = ["kubeconfig", "--connection", CONNECTION, "-o", str(path), "--force"]
    argv += ["--user-credential", "token-file", "--token-file", str(token_file), *via]
    if cli.main(argv) != 0:
        raise RuntimeError(f"wardgate {' '.join(argv)} failed")
    return path


@dataclass
class ClusterPath:
    """One way to the cluster: a kubeconfig, and the Python client loaded from it."""

    name: str
    kubeconfig: Path
    api: Any = None

    def load(self) -> ClusterPath:
        from kubernetes import client, config

        configuration = client.Configuration()
        load_kube_config: Callable[..., None] = config.load_kube_config  # the package has no hints
        load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        self.api = client.CoreV1Api(client.ApiClient(configuration))
        return self

    def close(self) -> None:
        """Closes the client's kept-alive connections (before the servers stop)."""
        if self.api is not None:
            self.api.api_client.close()

    def list_pods(self) -> Any:
        return self.api.list_namespaced_pod(NAMESPACE)

    def list_raw(self) -> bytes:
        response = self.api.list_namespaced_pod(NAMESPACE, _preload_content=False)
        data: bytes = response.data
        if response.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status}")
        return data


def check(paths: dict[str, ClusterPath]) -> dict[str, Any]:
    """Every path answers the same 100 pods; wardgate's answers have the email masked (and are
    byte for byte the same on both of its paths, which the report says)."""
    facts: dict[str, Any] = {}
    names: dict[str, list[str]] = {}
    bodies: dict[str, bytes] = {}
    for name, path in paths.items():
        pods = path.list_pods()
        names[name] = sorted(pod.metadata.name for pod in pods.items)
        if len(pods.items) != PODS:
            raise RuntimeError(f"{name}: {len(pods.items)} pods listed, not {PODS}")
        raw = bodies[name] = path.list_raw()
        facts[f"{name}_bytes"] = len(raw)
        facts[f"{name}_masked"] = raw.count(b'"[masked')  # whole string values replaced
        shown = ONCALL_EMAIL.encode() in raw
        if shown != (name == "direct"):
            raise RuntimeError(f"{name}: the on-call email is {'shown' if shown else 'masked'}")
    if len({tuple(n) for n in names.values()}) != 1:
        raise RuntimeError("the paths list different pods")
    facts["same_body"] = bodies["lambda"] == bodies["listener"]
    return facts


# ------------------------------------------------------------------------------------------ kubectl
def kubectl_binary() -> str | None:
    found = shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None)
    if found is None:
        return None
    version = json.loads(
        subprocess.run(
            [found, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30
        ).stdout
        or "{}"
    ).get("clientVersion", {})
    return f"{found}\t{version.get('gitVersion', '?')}"


def kubectl_get(binary: str, kubeconfig: Path, home: Path) -> float:
    """Seconds for ``kubectl get pods`` (Table), a new process, its discovery cache warm."""
    start = time.perf_counter()
    done = subprocess.run(
        [binary, "--kubeconfig", str(kubeconfig), "get", "pods", "-n", NAMESPACE],
        env={**os.environ, "HOME": str(home), "KUBECONFIG": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or done.stdout.count("Running") != PODS:
        raise RuntimeError(f"kubectl get pods failed: {done.stderr.strip()[:300]}")
    return elapsed


# ------------------------------------------------------------------------------------------ the run
@dataclass
class Results:
    client: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    raw: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    kubectl: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    facts: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, str] = field(default_factory=dict)


def timed_blocks(
    paths: dict[str, ClusterPath],
    call: Callable[[ClusterPath], Any],
    out: dict[str, list[float]],
    blocks: int,
    size: int,
) -> None:
    """``blocks`` rounds; in each, ``size`` calls per path, the paths' order rotated each round."""
    perf = time.perf_counter_ns
    names = list(paths)
    for block in range(blocks):
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            path, samples = paths[name], out[name]
            for _ in range(size):
                start = perf()
                call(path)
                samples.append((perf() - start) / 1e6)


@contextlib.contextmanager
def local_stack(folder: Path) -> Iterator[tuple[Any, CountingStream, CountingIndex]]:
    from moto import mock_aws

    from wardgate import runtime
    from wardgate.dev.stack import SFN_INTERPRETER
    from wardgate.recording import Recorder

    stream, index = CountingStream(), CountingIndex()
    with mock_aws(config=SFN_INTERPRETER):  # type: ignore[call-overload]
        stack = make_bench_stack(folder, stream, index)
        try:
            with stdout_to_devnull():
                stack.start()
            stack.write_state()  # wardgate kubeconfig reads the endpoints and the CA from here
            # The Lambda path's recorder into the same in-memory sinks (Firehose + DynamoDB on AWS).
            runtime.http_gateway().recorder = Recorder(stream, index)
            seed_pods(stack.kube)
            yield stack, stream, index
        finally:
            with stdout_to_devnull():
                stack.stop()
            runtime.http_gateway.cache_clear()  # it holds this run's sinks: not for whoever comes next


def run(args: argparse.Namespace) -> Results:
    results = Results()
    # As on Lambda: logs at INFO and metrics on (written to /dev/null while timing).
    for key in ("POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV"):
        os.environ.pop(key, None)
    os.environ["AWS_LAMBDA_LOG_LEVEL"] = "INFO"
    saved_env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="kube-bench-") as tmp:
        folder = Path(tmp)
        os.environ["WARDGATE_HOME"] = str(folder)
        try:
            with local_stack(folder) as (stack, stream, index):
                token_file = folder / "agent-token"
                token_file.write_text(stack.issuer.mint("bench-agent", ["ci"], ttl=6 * 3600))
                token_file.chmod(0o600)
                kubeconfigs = {
                    "direct": direct_kubeconfig(folder / "direct.kubeconfig", stack.kube),
                    "lambda": wardgate_kubeconfig(
                        folder / "lambda.kubeconfig", token_file, "--via", "lambda"
                    ),
                    "listener": wardgate_kubeconfig(folder / "listener.kubeconfig", token_file),
                }
                with stdout_to_devnull():
                    if args.profile:
                        results.profile = profile(stack, kubeconfigs, args.profile_calls)
                        return results
                    measure(kubeconfigs, results, args, stream, index, folder)
                    results.facts["masking_ms"] = masking_alone(stack)
                if args.profile_after:
                    log("profiling the gateway side ...")
                    with stdout_to_devnull():
                        results.profile = profile(stack, kubeconfigs, args.profile_calls)
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
    return results


def client_process(task: dict[str, Any]) -> dict[str, Any]:
    """Runs the Python client in a process of its own (``--client``) and returns what it printed:
    the gateway's work after it has answered (recording, logs) must not hold this process's GIL
    while the client deserialises, which it would if they shared a process; on AWS they share
    no machine."""
    done = subprocess.run(
        [sys.executable, __file__, "--client", json.dumps(task)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the client process failed:\n{done.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def client_main(task: dict[str, Any]) -> None:
    """The client process: loads each kubeconfig, checks every path's answer, then either times
    the interleaved blocks (``measure``) or lists ``calls`` times through one path (``lists``)."""
    paths = {name: ClusterPath(name, Path(path)).load() for name, path in task["kubeconfigs"].items()}
    try:
        if task["mode"] == "lists":  # profiled: exactly ``calls`` requests through that path
            for _ in range(task["calls"]):
                paths[task["path"]].list_pods()
            print(json.dumps({}))
            return
        facts = check(paths)
        for _ in range(task["warmup"]):
            for path in paths.values():
                path.list_pods()
                path.list_raw()
        client: dict[str, list[float]] = {name: [] for name in paths}
        raw: dict[str, list[float]] = {name: [] for name in paths}
        timed_blocks(paths, ClusterPath.list_pods, client, task["blocks"], task["block"])
        timed_blocks(paths, ClusterPath.list_raw, raw, task["blocks"], task["block"])
        print(json.dumps({"facts": facts, "client": client, "raw": raw}))
    finally:
        for path in paths.values():
            path.close()


def measure(
    kubeconfigs: dict[str, Path],
    results: Results,
    args: argparse.Namespace,
    stream: CountingStream,
    index: CountingIndex,
    folder: Path,
) -> None:
    events_before = stream.events
    bytes_before = stream.bytes
    entries_before = index.entries
    blocks = max(1, args.calls // args.block)
    log(f"Python client (its own process): {blocks} rounds of {args.block} lists per path, twice ...")
    answer = client_process(
        {
            "mode": "measure",
            "kubeconfigs": {name: str(path) for name, path in kubeconfigs.items()},
            "warmup": args.warmup,
            "blocks": blocks,
            "block": args.block,
        }
    )
    results.facts.update(answer["facts"])
    results.client, results.raw = answer["client"], answer["raw"]
    results.facts["recorded_events"] = stream.events - events_before
    results.facts["recorded_bytes"] = stream.bytes - bytes_before
    results.facts["index_entries"] = index.entries - entries_before
    results.facts["blocks"], results.facts["block"] = blocks, args.block

    found = kubectl_binary() if args.kubectl else None
    if found is None:
        results.facts["kubectl"] = None
        return
    binary, version = found.split("\t")
    results.facts["kubectl"] = version
    homes = {name: folder / f"home-{name}" for name in kubeconfigs}
    for name, home in homes.items():
        home.mkdir()
        kubectl_get(binary, kubeconfigs[name], home)  # discovery into the cache
    log(f"kubectl get pods: {args.kubectl} per path ...")
    for round_ in range(args.kubectl):
        names = list(kubeconfigs)
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            results.kubectl[name].append(kubectl_get(binary, kubeconfigs[name], homes[name]) * 1000)


def masking_alone(stack: Any, times: int = 50) -> tuple[float, float]:
    """Median and fastest ms of masking the double's answer (the gateway's call, the default policy's profile
    for the bench agent), alone and outside any profiler: what cProfile inflates, measured plainly."""
    import httpx

    from wardgate.dev.stack import DEV_POLICY
    from wardgate.masking.kubernetes import mask_kubernetes_body
    from wardgate.masking.policy import MaskingPolicy

    double = stack.kube
    with httpx.Client(verify=str(stack.certificates.ca_file), trust_env=False) as http:
        answer = http.get(
            f"{double.url}/api/v1/namespaces/{NAMESPACE}/pods",
            headers={"authorization": f"Bearer {double.token}", "accept": "application/json"},
        )
    answer.raise_for_status()
    profile = MaskingPolicy(DEV_POLICY.get("masking")).for_caller(CONNECTION, ["ci"]).profile
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        mask_kubernetes_body(answer.content, answer.headers["content-type"], profile, resource="pods")
        samples.append((time.perf_counter() - start) * 1000)
    return median(samples), min(samples)


# ------------------------------------------------------------------------------------------ profile
class ThreadProfiles:
    """cProfile of chosen functions wherever they run: a profiler per thread (cProfile profiles the
    thread that enables it), merged at the end."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.profilers: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def mine(self) -> cProfile.Profile:
        found: cProfile.Profile | None = getattr(self.local, "profiler", None)
        if found is None:
            found = cProfile.Profile(time.thread_time)
            self.local.profiler = found
            with self.lock:
                self.profilers.append(found)
        return found

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def profiled(*args: Any, **kwargs: Any) -> Any:
            profiler = self.mine()
            profiler.enable()
            try:
                return function(*args, **kwargs)
            finally:
                profiler.disable()

        return profiled

    def table(self, calls: int) -> str:
        """The parts of the gateway's work and the functions with the most own CPU time, per list
        call (µs), as markdown tables."""
        stats = pstats.Stats(self.profilers[0], stream=io.StringIO())
        for profiler in self.profilers[1:]:
            stats.add(profiler)
        entries: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
        total_s: float = stats.total_tt  # type: ignore[attr-defined]

        def cumulative(suffix: str, function: str) -> float:
            """Seconds in ``function`` of a file ending in ``suffix``, callees included."""
            return sum(
                entry[3]
                for (filename, _, name), entry in entries.items()
                if filename.endswith(suffix) and name == function
            )

        part_rows = []
        for label, parts in PROFILE_PARTS:
            seconds = sum(cumulative(suffix, function) for suffix, function in parts)
            if seconds:
                part_rows.append(f"| {label} | {seconds / calls * 1e6:,.0f} |")
        top = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:PROFILE_TOP]
        rows = []
        for (filename, line, function), (_, ncalls, own_s, cumulative_s, _) in top:
            where = filename.replace(str(ROOT) + "/", "").replace("layers/wardgate/", "")
            where = where.split("site-packages/", 1)[-1].split("/lib/python3.11/", 1)[-1]
            name = f"{where}:{line}({function})" if line else function
            rows.append(
                f"| `{name}` | {ncalls / calls:.0f} | {own_s / calls * 1e6:,.0f} | "
                f"{cumulative_s / calls * 1e6:,.0f} |"
            )
        return "\n".join(
            [
                f"Gateway-side CPU per list: {total_s / calls * 1000:.1f} ms under cProfile ({calls} lists; "
                "the profiler inflates code with many small calls, such as masking's detectors). By part "
                "(cumulative):",
                "",
                "| part | CPU µs per list |",
                "|---|---:|",
                *part_rows,
                "",
                f"The {PROFILE_TOP} functions with the most own CPU time:",
                "",
                "| function | calls per list | own µs per list | cumulative µs per list |",
                "|---|---:|---:|---:|",
                *rows,
            ]
        )


def profile(stack: Any, kubeconfigs: dict[str, Path], calls: int) -> dict[str, str]:
    """cProfile of the gateway side of each wardgate path, while the Python client lists pods:

    - Lambda path: the front door's whole handling of a request (``GatewayServer.dispatch``: the
      API Gateway event, the handler, ``HttpGateway.handle`` with its call to the double, the
      answer back; the double's own work runs in its thread and is not counted);
    - listener: its event loop thread (TLS, h11, routing, responses) and ``HttpGateway.handle`` on
      its worker threads.
    """
    from wardgate.gateway import HttpGateway

    def lists(path: str) -> None:
        client_process(
            {
                "mode": "lists",
                "path": path,
                "calls": calls,
                "kubeconfigs": {name: str(file) for name, file in kubeconfigs.items()},
            }
        )

    tables: dict[str, str] = {}
    front_door = ThreadProfiles()
    original_dispatch = stack.gateway.dispatch
    stack.gateway.dispatch = front_door.wrap(original_dispatch)
    try:
        lists("lambda")
    finally:
        stack.gateway.dispatch = original_dispatch
    tables["lambda"] = front_door.table(calls)

    listener = ThreadProfiles()
    loop_profiler = cProfile.Profile(time.thread_time)
    listener.profilers.append(loop_profiler)
    loop = stack.tcp._loop
    original_handle = HttpGateway.handle
    HttpGateway.handle = listener.wrap(original_handle)  # type: ignore[method-assign]
    enabled = threading.Event()

    def enable_on_loop() -> None:
        loop_profiler.enable()
        enabled.set()

    try:
        loop.call_soon_threadsafe(enable_on_loop)
        if not enabled.wait(10):
            raise RuntimeError("the TCP gateway's loop did not start profiling")
        lists("listener")
    finally:
        disabled = threading.Event()

        def disable_on_loop() -> None:
            loop_profiler.disable()
            disabled.set()

        loop.call_soon_threadsafe(disable_on_loop)
        disabled.wait(10)
        HttpGateway.handle = original_handle  # type: ignore[method-assign]
    tables["listener"] = listener.table(calls)
    return tables


# ------------------------------------------------------------------------------------------ report
def p(values: list[float], q: int) -> float:
    return percentile(sorted(values), q)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def latency_rows(samples: dict[str, list[float]]) -> list[str]:
    base50, base99 = p(samples["direct"], 50), p(samples["direct"], 99)
    rows = []
    for name in PATHS:
        values = samples[name]
        p50, p99 = p(values, 50), p(values, 99)
        ratio = "-" if name == "direct" else f"**{p50 / base50:.2f}x** / {p99 / base99:.2f}x"
        added = "-" if name == "direct" else f"{p50 - base50:+.2f} / {p99 - base99:+.2f}"
        rows.append(f"| {LABELS[name]} | {len(values)} | {p50:.2f} | {p99:.2f} | {ratio} | {added} |")
    return rows


def report(results: Results, args: argparse.Namespace) -> tuple[str, str]:
    facts = results.facts
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    base = p(results.client["direct"], 50)
    ratios = {name: p(results.client[name], 50) / base for name in ("lambda", "listener")}
    target_rows = [
        f"| list of {PODS} pods, Python client, through the {label}: p50 ≤ {TARGET_RATIO:g}x direct "
        f"| {ratios[name]:.2f}x ({p(results.client[name], 50):.1f} vs {base:.1f} ms) "
        f"| {verdict(ratios[name] <= TARGET_RATIO)} |"
        for name, label in (("lambda", "Lambda path"), ("listener", "Fargate listener"))
    ]
    summary_text = "\n".join(
        [
            f"**Kubernetes through wardgate** (issue 17; `{COMMAND}`, {when}, {code_version()}; details in "
            "[its section](#kubernetes-through-wardgate)):",
            "",
            "| target | measured | |",
            "|---|---|---|",
            *target_rows,
        ]
    )
    per_path = facts["blocks"] * facts["block"]
    kb = {name: facts[f"{name}_bytes"] / 1024 for name in PATHS}
    lines = [
        f"Run {when} of {code_version()} on {machine()}; `{COMMAND}`. {per_path} lists per path and "
        f"kind, after {args.warmup} untimed ones, in {facts['blocks']} rounds of {facts['block']} per path "
        f"(the paths' order rotated each round). The answer: a PodList of {PODS} Running pods, "
        f"{kb['direct']:.0f} KB directly, {kb['lambda']:.0f} KB through the Lambda path and "
        f"{kb['listener']:.0f} KB through the listener, where the default policy's masking replaced "
        f"{facts['lambda_masked']} and {facts['listener_masked']} values (every pod's on-call email, "
        "and its `podIP`, `podIPs` and `hostIP`, `hostIPs` by the IPv4 detector)"
        + ("; both paths' answers are byte for byte the same" if facts["same_body"] else "")
        + ". Recording: "
        f"{facts['recorded_events']:,} events ({facts['recorded_bytes'] / 1e6:.1f} MB serialised) and "
        f"{facts['index_entries']:,} index entries over the run, into memory. The machine was shared "
        "with other work (see the load average): read the ratios.",
        "",
        f"`CoreV1Api().list_namespaced_pod` of {PODS} pods, default deserialisation into `V1PodList` "
        "(ms; x direct at p50 / p99; added p50 / p99 in ms):",
        "",
        "| path | lists | p50 | p99 | x direct p50 / p99 | added p50 / p99 |",
        "|---|---:|---:|---:|---:|---:|",
        *latency_rows(results.client),
        "",
        "The same list with `_preload_content=False` (the HTTP exchange alone: request, answer read, "
        "no deserialisation; what the gateway's own cost is measured against):",
        "",
        "| path | lists | p50 | p99 | x direct p50 / p99 | added p50 / p99 |",
        "|---|---:|---:|---:|---:|---:|",
        *latency_rows(results.raw),
        "",
        "Deserialising is the same work on every path (the same 100 pods, in the client's process; "
        "through wardgate the masked values are a few hundred bytes longer): the gateway's own cost is "
        "the second table's added time, and where the first table's added time differs from it, that "
        "is the shared machine's noise on a CPU-bound step of tens of milliseconds. Masking the "
        "answer alone (`mask_kubernetes_body` with the default policy's profile, 50 times after the "
        f"rounds, no profiler, not interleaved) took {facts['masking_ms'][0]:.1f} ms (median; fastest "
        f"{facts['masking_ms'][1]:.1f} ms): most of the gateway's added time.",
    ]
    if facts.get("kubectl"):
        k = results.kubectl
        base_k = median(k["direct"])
        lines += [
            "",
            f"Secondary: `kubectl get pods -n {NAMESPACE}` (kubectl {facts['kubectl']}, Table output, "
            f"a new process each time, discovery cached; wall time, ms, {len(k['direct'])} per path, "
            "alternated):",
            "",
            "| path | runs | median | max | x direct (median) |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {LABELS[name]} | {len(k[name])} | {median(k[name]):.0f} | {max(k[name]):.0f} | "
                + ("-" if name == "direct" else f"{median(k[name]) / base_k:.2f}x")
                + " |"
                for name in PATHS
            ],
        ]
    lines += ["", "Targets (issue 17):", "", "| target | measured | |", "|---|---|---|", *target_rows]
    if results.profile:
        lines += [
            "",
            "Where the gateway's time goes: after the timed rounds, the client process listed the pods "
            f"{args.profile_calls} more times through each path while cProfile measured the gateway "
            "side's CPU time (per thread, `time.thread_time`: waiting for the double costs none; the "
            "double's own thread is not profiled). `--profile` prints only this:",
        ]
        for name in ("lambda", "listener"):
            lines += ["", f"{LABELS[name]}:", "", results.profile[name]]
    lines += [
        "",
        "<!-- figures "
        + json.dumps(
            {
                "direct_p50": round(base, 3),
                "lambda_p50": round(p(results.client["lambda"], 50), 3),
                "listener_p50": round(p(results.client["listener"], 50), 3),
            }
        )
        + " -->",
    ]
    return summary_text, "\n".join(lines)


SECTION_INTRO = f"""{SECTION_HEADING}

Issue 17's "Speed" (`benchmarks/kube_overhead.py`): a list of {PODS} pods with the official Python
`kubernetes` client (`CoreV1Api().list_namespaced_pod`, default deserialisation, a kubeconfig written
by `wardgate kubeconfig`), directly to the local cluster double and through wardgate's two
Kubernetes paths, interleaved in one run: the Lambda path (the local front door's HTTPS route
`/k8s/<connection>`: an API Gateway event into the HTTP function's handler) and the Fargate
listener (the TCP gateway's `kubernetes` listener, running the same `HttpGateway` on its worker
threads). The default policy's masking is on and recording goes to in-memory sinks; the local stack
and the double share the script's process (moto mocked in-process), the client has a process of its
own. Target: each path's p50 at most 1.5x direct. The same list without deserialisation shows the
gateway's own cost against the bare HTTP exchange, and a cProfile of the gateway side (CPU time per
thread) where it goes.

{MARKERS[0]}
{MARKERS[1]}
"""


def ensure_sections() -> None:
    """Add this benchmark's section at the end of the doc, and its summary markers after the SSH
    one (or, without it, before "## How to run")."""
    doc = DOC.read_text()
    if MARKERS[0] not in doc or MARKERS[1] not in doc:
        doc = doc.rstrip("\n") + "\n\n" + SECTION_INTRO
    if SUMMARY_MARKERS[0] not in doc or SUMMARY_MARKERS[1] not in doc:
        block = f"{SUMMARY_MARKERS[0]}\n{SUMMARY_MARKERS[1]}"
        previous = "<!-- sshsummary:end -->"
        if previous in doc:
            doc = doc.replace(previous, f"{previous}\n\n{block}", 1)
        else:
            head, sep, tail = doc.partition("\n## How to run")
            doc = f"{head.rstrip()}\n\n{block}\n{sep}{tail}"
    DOC.write_text(doc)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        client_main(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"update the Kubernetes section of {DOC.name}")
    parser.add_argument("--calls", type=int, default=200, help="timed lists per path and kind (default 200)")
    parser.add_argument(
        "--block",
        type=int,
        default=2,
        help="lists per path per round (default 2: a list takes tens of ms, and the finer the "
        "interleaving the more alike a busy machine slows the paths)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="untimed lists per path first (default 20)")
    parser.add_argument(
        "--kubectl", type=int, default=10, help="`kubectl get pods` runs per path (default 10; 0: none)"
    )
    parser.add_argument("--profile", action="store_true", help="only profile the gateway side (cProfile)")
    parser.add_argument(
        "--profile-calls", type=int, default=100, help="lists profiled per path (default 100)"
    )
    parser.add_argument(
        "--no-profile",
        dest="profile_after",
        action="store_false",
        help="skip the profile that follows the timed rounds (by default the section says where the "
        "gateway's time goes)",
    )
    args = parser.parse_args()
    if args.profile and args.write:
        parser.error("--profile does not measure what --write writes")
    if args.calls < args.block or args.block < 1:
        parser.error("--calls must be at least --block, and --block at least 1")
    results = run(args)
    if args.profile:
        for name in ("lambda", "listener"):
            print(f"{LABELS[name]}:\n\n{results.profile[name]}\n")
        return
    summary_text, text = report(results, args)
    print(summary_text, text, sep="\n\n")
    if args.write:
        ensure_sections()
        write_section(SUMMARY_MARKERS, summary_text)
        write_section(MARKERS, text)
        summary.update()


if __name__ == "__main__":
    main()
