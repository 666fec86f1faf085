"""docs/openapi.yaml: the same routes as template.yaml, and the running gateway answers as it says.

The first tests keep the document and the template in step: every route the template declares
is a path of the document (``{proxy+}`` written ``{proxy}``, ``ANY`` as every method), and every
operation of the document is served by the route its ``x-wardgate-route`` names, the one API
Gateway (and local mode) would pick for it. The last one runs schemathesis against the local
stack: for each operation ``WARDGATE_OPENAPI_EXAMPLES`` (10) generated requests, valid by the
document and not (with the real connections mixed in), the same ones on every run unless
``WARDGATE_OPENAPI_RANDOM=1``; each answer is checked for no 5xx, a documented status, content
type, headers and body schema.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from wardgate.dev.stack import DevStack
from wardgate.dev.template import Route, Template

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "openapi.yaml"
METHODS = ("get", "head", "options", "delete", "post", "put", "patch")  # what API Gateway's ANY covers
SAMPLES = {"connection": "demo", "proxy": "v1/items", "operation": "Nope", "id": "u1", "request_id": "r1"}
SAMPLES |= {"record_id": "0" * 29, "asset": "audit.js"}  # the auditors' replay page (/audit)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = int(os.environ.get("WARDGATE_OPENAPI_EXAMPLES", "10"))  # generated requests per operation
# CI sends the same requests on every run (it fails on the gateway, not on luck); RANDOM=1 explores.
DERANDOMIZE = os.environ.get("WARDGATE_OPENAPI_RANDOM") != "1"
# The connections local mode serves, and one that does not exist, per route prefix.
CONNECTIONS = {
    "/http/": ["demo", "demo-k8s", "nope"],
    "/k8s/": ["demo-k8s", "demo"],
    "/sql/": ["demo-sql", "demo"],
}


CATCH_ALLS = ("/admin/{proxy}", "/scim/v2/{proxy}")


def document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return doc


def routes() -> list[Route]:
    return Template(ROOT / "template.yaml").routes()


def documented() -> Iterator[tuple[str, str, str | None]]:
    """(path, method, the template route it names) for every operation of the document."""
    for path, item in document()["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method].get("x-wardgate-route", item.get("x-wardgate-route"))


def test_the_document_is_openapi_3_1_with_wardgates_error_shapes() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["code", "message", "request_id"]
    data_api = doc["components"]["responses"]["DataApiError"]["content"]["application/json"]["schema"]
    assert data_api["required"] == ["message", "code", "__type"]
    scim = doc["components"]["responses"]["ScimError"]["content"]["application/scim+json"]["schema"]
    assert scim["required"] == ["schemas", "status", "detail"]


def test_every_route_of_the_template_is_in_the_document() -> None:
    paths = document()["paths"]
    for route in routes():
        path = route.path.replace("+}", "}")
        assert path in paths, f"{route.route_key} is not in docs/openapi.yaml (as {path})"
        methods = METHODS if route.method == "ANY" else (route.method.lower(),)
        for method in methods:
            assert method in paths[path], f"{route.route_key}: {method.upper()} {path} is not documented"
            named = paths[path][method].get("x-wardgate-route", paths[path].get("x-wardgate-route"))
            assert named == route.route_key, f"{method.upper()} {path} names {named!r}"


def test_every_operation_of_the_document_is_served_by_the_route_it_names() -> None:
    template_routes = routes()  # most specific first, as API Gateway picks them
    keys = {route.route_key for route in template_routes}
    for path, method, named in documented():
        assert named in keys, f"{method.upper()} {path}: x-wardgate-route {named!r} is not a template route"
        concrete = path.format(**SAMPLES)
        serving = next((r for r in template_routes if r.match(method.upper(), concrete) is not None), None)
        assert serving is not None, f"no template route serves {method.upper()} {path}"
        assert serving.route_key == named, f"{method.upper()} {path} is served by {serving.route_key}"


def _strategy(operation: Any) -> Any:
    """Requests valid by the document and, as many, invalid ones (schemathesis' negative mode; not
    for the catch-all paths, whose invalid values are the other paths' names: "agents", "Users")."""
    path = operation.path
    modes = [schemathesis.GenerationMode.POSITIVE]
    if path not in CATCH_ALLS:
        modes.append(schemathesis.GenerationMode.NEGATIVE)
    for prefix, names in CONNECTIONS.items():
        if path.startswith(prefix):
            return st.tuples(st.sampled_from(names), st.sampled_from(modes)).flatmap(
                lambda choice: operation.as_strategy(
                    generation_mode=choice[1], path_parameters={"connection": choice[0]}
                )
            )
    return st.sampled_from(modes).flatmap(lambda mode: operation.as_strategy(generation_mode=mode))


def _answers_as_documented(operation: Any, base_url: str, headers: dict[str, str]) -> None:
    """Send ``EXAMPLES`` generated requests for ``operation``; raise on the first that fails a check."""

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=_strategy(operation))
    def answers(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=15)

    answers()


@pytest.mark.timeout(300)  # about 30 s on two idle cores; the default 120 s is tight on a busy machine
def test_the_running_gateway_answers_as_documented(stack: DevStack) -> None:
    schema = schemathesis.openapi.from_path(str(DOCUMENT))
    assert stack.issuer is not None
    agent = {"Authorization": f"Bearer {stack.issuer.mint('agent-1', ['ci'])}"}
    admin = {"Authorization": f"Bearer {stack.issuer.mint('admin-1', [os.environ['ADMIN_GROUP']])}"}
    scim = {"Authorization": f"Bearer {stack.scim_token()}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation fails here, loudly
        path = operation.path
        headers = admin if path.startswith("/admin/") else scim if path.startswith("/scim/") else agent
        try:
            _answers_as_documented(operation, stack.url, headers)
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failures, then one assertion
            failures.append(f"{operation.label}:\n" + "".join(traceback.format_exception(exc))[-6000:])
    assert not failures, "\n\n".join(failures)
