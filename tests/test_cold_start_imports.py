"""What the functions' cold path imports (issue 16): each import left out is checked in a fresh
interpreter, and what it was for still works when something asks for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "wardgate"


def run_fresh(code: str, **env: str) -> str:
    """``code`` in a new interpreter with the layer first on the path; its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(LAYER), str(ROOT)]), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_token_validation_does_not_import_x509_until_something_uses_it() -> None:
    out = run_fresh(
        "import sys, json\n"
        "import wardgate.identity, jwt.algorithms\n"
        "before = 'cryptography.x509' in sys.modules\n"
        "from cryptography import x509\n"  # any other importer gets the real module
        "real = type(x509) is type(sys) and hasattr(x509, 'load_pem_x509_certificate')\n"
        "print(json.dumps([before, real, sys.modules['cryptography.x509'] is x509]))\n"
    )
    assert json.loads(out) == [False, True, True]


def test_pyjwt_still_refuses_a_certificate_as_an_hmac_secret() -> None:
    """The one thing PyJWT imports x509 for: an X.509 certificate must not be usable as an HMAC
    secret. Through the stand-in the real module is imported on first use and the refusal holds."""
    out = run_fresh(
        "import sys, datetime\n"
        "import wardgate.identity\n"
        "from wardgate.identity import jwt\n"
        "from cryptography import x509\n"
        "from cryptography.hazmat.primitives import hashes, serialization\n"
        "from cryptography.hazmat.primitives.asymmetric import ec\n"
        "from cryptography.x509.oid import NameOID\n"
        "key = ec.generate_private_key(ec.SECP256R1())\n"
        "name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'test')])\n"
        "now = datetime.datetime.now(datetime.UTC)\n"
        "cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)\n"
        "    .public_key(key.public_key()).serial_number(1).not_valid_before(now)\n"
        "    .not_valid_after(now + datetime.timedelta(days=1))\n"
        "    .sign(key, hashes.SHA256()))\n"
        "der = cert.public_bytes(serialization.Encoding.DER)\n"
        "try:\n"
        "    jwt.encode({'sub': 'x'}, der, algorithm='HS256')\n"
        "    print('accepted')\n"
        "except jwt.InvalidKeyError:\n"
        "    print('refused')\n"
    )
    assert out.strip() == "refused"


def test_the_connection_store_needs_no_orm() -> None:
    out = run_fresh(
        "import sys\n"
        "import wardgate.connections, wardgate.runtime\n"
        "print(any(m == 'pynamodb' or m.startswith('pynamodb.') for m in sys.modules))\n"
    )
    assert out.strip() == "False"


def test_an_rds_data_backend_does_not_import_the_local_backends() -> None:
    """The SQL function reaches databases through rds-data only: the PostgreSQL and MySQL backends'
    modules (and their transaction machinery) stay out of its process."""
    out = run_fresh(
        "import sys\n"
        "from wardgate.dataapi.factory import backend_from_url\n"
        "url = 'rds-data:///db?resourceArn=arn:cluster&secretArn=arn:secret'\n"
        "backend = backend_from_url('c', url, binding_key=b'k' * 32)\n"
        "local = ('wardgate.dataapi.postgres', 'wardgate.dataapi.mysql', 'wardgate.dataapi.local')\n"
        "print(type(backend).__name__, [m for m in local if m in sys.modules])\n"
    )
    assert out.strip() == "RdsDataBackend []"


def test_the_http_proxying_modules_are_the_http_functions_only() -> None:
    """The SQL function, and the functions that import runtime for ``agent_registry`` or
    ``secret_string``, do not import the HTTP gateway and its Kubernetes modules."""
    out = run_fresh(
        "import sys\n"
        "import wardgate.runtime, wardgate.sql_gateway\n"
        "modules = ('wardgate.gateway', 'wardgate.operations.k8s', 'wardgate.proxies.kubernetes',\n"
        "           'wardgate.proxies.http')\n"
        "print([m for m in modules if m in sys.modules])\n"
    )
    assert out.strip() == "[]"


def test_the_http_function_imports_kubernetes_operations_with_its_first_kubernetes_request() -> None:
    """HttpProxyFunction's gateway serves HTTP without the Kubernetes operations' module; the first
    Kubernetes request imports it and is read as before (tests/test_kubectl_lambda.py serves them)."""
    out = run_fresh(
        "import sys, json\n"
        "from wardgate import runtime\n"
        "from wardgate.apigw import HttpRequest\n"
        "gateway = runtime.http_gateway()\n"
        "def request(route, path):\n"
        "    return HttpRequest('r', 'GET', 'c', route, path, '', {}, [], b'')\n"
        "http = type(gateway._operation(request('http', '/v1/things'), 'http', '/v1/things', '')).__name__\n"
        "before = 'wardgate.operations.k8s' in sys.modules\n"
        "path = '/api/v1/namespaces/default/pods'\n"
        "k8s = gateway._operation(request('k8s', path), 'k8s', path, '')\n"
        "print(json.dumps([http, before, type(k8s).__name__, k8s.verb, k8s.resource, k8s.namespace]))\n"
    )
    assert json.loads(out) == ["HttpOperation", False, "K8sOperation", "list", "pods", "default"]


APPROVAL_FLOW = (
    "wardgate.approvals.service",
    "wardgate.approvals.store",
    "wardgate.approvals.signing",
    "wardgate.approvals.model",
    "wardgate.approvals.mail",
    "wardgate.approvals.workflow",
)


def test_the_approval_flow_is_imported_when_an_operation_first_needs_it() -> None:
    """The proxy functions' gateways have an approval desk (so ``require_approval`` holds, never
    refuses for want of one) without importing the approval flow; its first use builds the one
    desk ``runtime.approval_desk()`` is. (tests/test_approvals.py holds operations through them.)"""
    out = run_fresh(
        "import sys, json\n"
        "from wardgate import runtime\n"
        f"flow = {APPROVAL_FLOW!r}\n"
        "gateways = [runtime.http_gateway(), runtime.sql_gateway()]\n"
        "before = [m for m in flow if m in sys.modules]\n"
        "present = [g.approvals is not None and bool(g.approvals) for g in gateways]\n"
        "desk = runtime.approval_desk()\n"
        "same = [g.approvals.store is desk.store and g.approvals.signer is desk.signer for g in gateways]\n"
        "print(json.dumps([before, present, same, sorted(m for m in flow if m in sys.modules)]))\n",
        APPROVALS_TABLE="approvals",
        APPROVAL_STATE_MACHINE="arn:aws:states:us-east-1:123456789012:stateMachine:approvals",
        APPROVAL_KEY_SECRET="approval-key",
    )
    assert json.loads(out) == [[], [True, True], [True, True], sorted(APPROVAL_FLOW)]


def test_without_an_approvals_table_the_gateways_have_no_desk() -> None:
    out = run_fresh(
        "from wardgate import runtime\n"
        "print([runtime.http_gateway().approvals, runtime.sql_gateway().approvals])\n",
        APPROVALS_TABLE="",
    )
    assert out.strip() == "[None, None]"


GC_PROBE = (
    "import gc, importlib.util, json\n"
    "import wardgate.runtime as runtime\n"
    "during = []\n"
    "real = runtime._prepare\n"
    "def spy(function):\n"
    "    during.append(gc.isenabled())\n"
    "    real(function)\n"
    "runtime._prepare = spy\n"
    "spec = importlib.util.spec_from_file_location('app', {app!r})\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "garbage = []\n"
    "garbage.append(garbage)\n"  # a cycle made after the init phase is still collected
    "del garbage\n"
    "print(json.dumps([during, gc.isenabled(), gc.get_freeze_count() > 0, gc.collect() >= 1]))\n"
)


@pytest.mark.parametrize("function", ["http_proxy", "sql_proxy"])
def test_the_init_phase_runs_without_collections_and_freezes_what_it_built(function: str) -> None:
    """On Lambda: no collection while the handler module imports and prepares, then what it built
    is frozen (later collections skip it) and collecting resumes for what requests create."""
    app = ROOT / "functions" / function / "app.py"
    # A configuration that cannot build the gateway: prepare gives up at once, the pause still ends.
    out = run_fresh(GC_PROBE.format(app=str(app)), AWS_LAMBDA_FUNCTION_NAME=function, WARDGATE_ISSUERS="x")
    assert json.loads(out) == [[False], True, True, True]


@pytest.mark.parametrize("function", ["http_proxy", "sql_proxy"])
def test_off_lambda_the_handler_modules_leave_collection_as_it_was(function: str) -> None:
    app = ROOT / "functions" / function / "app.py"
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
    result = subprocess.run(
        [sys.executable, "-c", GC_PROBE.format(app=str(app))],
        env={**env, "PYTHONPATH": os.pathsep.join([str(LAYER), str(ROOT)])},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == [[], True, False, True]  # enabled again, nothing frozen


def test_prepare_called_with_collection_on_leaves_it_alone() -> None:
    """Only the pause a handler module began is ended: a process that collects (tests, tools
    calling prepare) is not frozen."""
    out = run_fresh(
        "import gc, json\n"
        "from wardgate import runtime\n"
        "runtime.prepare('http')\n"
        "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))\n",
        AWS_LAMBDA_FUNCTION_NAME="HttpProxyFunction",
        WARDGATE_ISSUERS="x",
    )
    assert json.loads(out) == [True, 0]


def test_the_masking_prefilter_is_imported_by_the_first_long_text() -> None:
    """Short bodies (most first events) are masked without it; a long one imports it and is
    masked as the prefilter's own tests require (``test_masking_prefilter.py``)."""
    out = run_fresh(
        "import sys, json\n"
        "import wardgate.runtime, wardgate.gateway, wardgate.sql_gateway\n"
        "from wardgate.masking.engine import PREFILTER_FROM, mask_text\n"
        "short = mask_text('mail ada@example.com').value\n"
        "before = 'wardgate.masking.prefilter' in sys.modules\n"
        "long = mask_text('x' * PREFILTER_FROM + ' ada@example.com').value\n"
        "print(json.dumps([before, 'wardgate.masking.prefilter' in sys.modules, short, long[-15:]]))\n"
    )
    assert json.loads(out) == [False, True, "mail [masked:email]", " [masked:email]"]
