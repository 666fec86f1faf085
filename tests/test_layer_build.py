"""The Lambda layer as ``sam build`` makes it (``layers/wardgate/Makefile``): its packages for the
python3.11 runtime on arm64, and compiled bytecode for every module.

Lambda mounts a layer read-only, so a module without its ``.pyc`` is compiled again on every cold
start (SAM's own python3.11 builder ships none: the deployed layer compiled all of botocore, sqlglot
and wardgate on each one). The bytecode must match its source, be of the runtime's Python, and be
used without the source's mtime (zip files round it), so each ``.pyc`` here is checked for that.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYER_SOURCE = ROOT / "layers" / "wardgate"
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer built by its Makefile as ``sam build`` runs it (``ARTIFACTS_DIR`` given)."""
    artifacts = tmp_path_factory.mktemp("layer")
    subprocess.run(
        ["make", "--no-print-directory", "-f", str(LAYER_SOURCE / "Makefile"), "build-WardgateLayer"],
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        cwd=tmp_path_factory.getbasetemp(),  # not the source folder: sam runs it from a scratch copy
        check=True,
        capture_output=True,
        timeout=600,
    )
    return artifacts / "python"


def test_the_template_builds_the_layer_with_its_makefile() -> None:
    from wardgate.dev.template import Template  # its loader knows CloudFormation's tags

    layer = Template(ROOT / "template.yaml").doc["Resources"]["WardgateLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/wardgate"
    assert layer["Properties"]["CompatibleRuntimes"] == [f"python3.{sys.version_info.minor}"]


def test_the_layer_holds_the_package_and_every_requirement_for_arm64(built: Path) -> None:
    source = sorted(p.relative_to(LAYER_SOURCE) for p in (LAYER_SOURCE / "wardgate").rglob("*.py"))
    assert sorted(p.relative_to(built) for p in (built / "wardgate").rglob("*.py")) == source
    for name in ("boto3", "botocore", "jwt", "httpx", "sqlglot", "orjson", "aws_lambda_powertools"):
        assert (built / name).is_dir(), name
    binaries = [p.name for p in built.rglob("*.so")]
    assert binaries and all("aarch64" in name or "abi3" in name for name in binaries), binaries
    assert any(p.name.startswith("sqlglotc-") for p in built.glob("*.dist-info"))  # the compiled parser
    assert not (built / "bin").exists()
    # Lambda's quota: a function and its layers unzipped under 250 MB (the bytecode adds ~15%)
    size = sum(p.stat().st_size for p in built.rglob("*") if p.is_file())
    assert size < 230 * 1024 * 1024, f"the layer is {size / 2**20:.0f} MB unzipped"


def test_the_layer_holds_its_certifi_bundle_as_a_hashed_directory(built: Path) -> None:
    """Written from the layer's own certifi, so that ``tls.tls_context`` on Lambda loads no bundle."""
    import hashlib

    from wardgate import tls

    bundle = built / "certifi" / "cacert.pem"
    directory = built / "wardgate" / "ca-directory"
    digest = (directory / tls.BUNDLE_DIGEST).read_text().strip()
    assert digest == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert len(list(directory.glob("*.[0-9]"))) == bundle.read_text().count("-----BEGIN CERTIFICATE-----")
    assert tls.public_ca_context(bundle, directory).cert_store_stats()["x509_ca"] == 0


def test_every_module_has_unchecked_bytecode_of_its_own_source(built: Path) -> None:
    sources = list(built.rglob("*.py"))
    assert len(sources) > 1000
    stale = []
    for source in sources:
        compiled = Path(importlib.util.cache_from_source(str(source)))
        if not compiled.is_file():
            stale.append(f"{source.relative_to(built)}: no bytecode")
            continue
        header = compiled.read_bytes()[:16]
        if header[:4] != importlib.util.MAGIC_NUMBER:
            stale.append(f"{source.relative_to(built)}: another Python's bytecode")
        elif int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            stale.append(f"{source.relative_to(built)}: checked against the source's mtime")
        elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
            stale.append(f"{source.relative_to(built)}: compiled from another source")
    assert not stale, stale[:20]


def test_python_runs_the_layer_bytecode_without_compiling(built: Path) -> None:
    """Pure-Python parts of the layer (its binaries are arm64) imported from it with writes off:
    every module comes from its ``.pyc``; nothing is compiled from source."""
    code = (
        "import importlib.machinery as m, sys\n"
        "compiled = []\n"
        "real = m.SourceFileLoader.source_to_code\n"
        "def counted(self, *args, **kwargs):\n"
        "    compiled.append(self.name)\n"
        "    return real(self, *args, **kwargs)\n"
        "m.SourceFileLoader.source_to_code = counted\n"
        "import wardgate.masking.engine, botocore.session, boto3, sqlglot.tokens, httpx\n"
        "print(sorted(set(compiled)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(built), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
