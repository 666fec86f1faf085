"""Fuzz SCIM 2.0 ``/scim/v2/Users``: the filter parser (``userName eq "..."``), paging and the bodies.

Input: ``METHOD /Users[/<id>][?query]`` on the first line, the request body after it. The filter
is in the query (``filter=userName%20eq%20%22a%40b%22``), as Okta and Entra send it. Requests
go through ``handle_scim_event``, the Lambda entry point, with the right bearer token and a
``ScimService`` over an in-memory table holding one user (id ``u1``, ``alice@example.com``,
externalId ``ext-1``) and an in-memory admin, so a revocation or an audit record always works.

A crash is an exception escaping, or a ``500``: with storage that never fails, a 500 can only be
a defect in wardgate (the request is then replayed on ``ScimService.handle`` directly so that
the exception and its traceback are what libFuzzer reports). Every response must be JSON, and
every error (4xx) must be in SCIM's error shape: ``schemas`` the Error URN, ``status`` the
status as a string, ``detail`` non-empty.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import atheris
from _harness import Finding, fuzz

with atheris.instrument_imports(include=["wardgate"]):
    import wardgate.scim as scim_module
    from wardgate.agents import normalise_owner
    from wardgate.scim import ERROR_SCHEMA, ScimService, ScimUser, ScimUsers

TOKEN = "fuzz-scim-token"


class MemoryTable:
    """The part of ``AgentTable`` that ``ScimUsers`` uses, in a dict."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, pk: str) -> dict[str, Any] | None:
        item = self.items.get(pk)
        return dict(item) if item is not None else None

    def scan(self, prefix: str) -> list[dict[str, Any]]:
        return [dict(item) for pk, item in sorted(self.items.items()) if pk.startswith(prefix)]

    def put_new(self, pk: str, item: Mapping[str, Any]) -> bool:
        if pk in self.items:
            return False
        self.items[pk] = dict(item)
        return True

    def put(self, pk: str, item: Mapping[str, Any]) -> None:
        self.items[pk] = dict(item)

    def delete(self, pk: str) -> None:
        self.items.pop(pk, None)

    def put_all_new(self, items: list[tuple[str, Mapping[str, Any]]]) -> bool:
        if any(pk in self.items for pk, _ in items):
            return False
        for pk, item in items:
            self.items[pk] = dict(item)
        return True


class OwnerState:
    def __init__(self, revoked: bool) -> None:
        self.revoked = revoked


class MemoryRegistry:
    """Owner revocations in a set; owner names checked as ``AgentRegistry`` checks them."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()

    def owner(self, owner: str) -> OwnerState | None:
        return OwnerState(True) if normalise_owner(owner) in self.revoked else None

    def reinstate_owner(self, owner: str, by: str, reason: str) -> bool:
        owner = normalise_owner(owner)
        if owner in self.revoked:
            self.revoked.discard(owner)
            return True
        return False


class MemoryAudit:
    def record(
        self, action: str, actor: Mapping[str, Any], target: Mapping[str, Any], *rest: Any, **kw: Any
    ) -> None:
        json.dumps([action, actor, target, rest, kw], default=str)  # what the audit trail would serialise


class MemoryAdmin:
    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self.audit = MemoryAudit()

    def revoke(self, actor: Mapping[str, Any], reason: str, owner: str | None = None, **kw: Any) -> None:
        if not owner:
            raise Finding("SCIM revoked without naming an owner")
        self.registry.revoked.add(normalise_owner(owner))


def service() -> ScimService:
    table = MemoryTable()
    users = ScimUsers(table)  # type: ignore[arg-type]
    user = ScimUser("u1", "alice@example.com", attributes={"externalId": "ext-1"}, created=1.0, modified=1.0)
    users.create(user)
    return ScimService(users, MemoryAdmin(), lambda: TOKEN)  # type: ignore[arg-type]


def test_one_input(data: bytes) -> None:
    line, _, body = data.partition(b"\n")
    request_line = line.decode("utf-8", "replace")
    method, _, target = request_line.partition(" ")
    path, _, query = target.partition("?")
    if body:
        try:
            body_field, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            body_field, encoded = base64.b64encode(body).decode(), True
    else:
        body_field, encoded = "", False
    event = {
        "requestContext": {"requestId": "fuzz", "http": {"method": method or "GET"}},
        "pathParameters": {"proxy": path.lstrip("/")},
        "headers": {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"},
        "rawQueryString": query,
        "body": body_field,
        "isBase64Encoded": encoded,
    }
    fresh = service()
    scim_module.scim_service = lambda: fresh  # type: ignore[assignment]
    response = scim_module.handle_scim_event(event, None)
    status = response["statusCode"]
    if status >= 500:
        again = service()  # the same request, without the entry point's catch-all: raise what it hid
        again.handle(
            (method or "GET").upper(),
            "/" + path.lstrip("/"),
            dict(parse_qsl(query, keep_blank_values=True)),
            {"authorization": f"Bearer {TOKEN}"},
            base64.b64decode(body_field) if encoded else body_field.encode(),
            "fuzz",
        )
        raise Finding(f"{status} for {request_line[:200]!r}: {response['body'][:300]}")
    document = json.loads(response["body"]) if response["body"] else None
    if status >= 400:
        if not isinstance(document, dict) or document.get("schemas") != [ERROR_SCHEMA]:
            raise Finding(f"{status} without SCIM's error shape: {response['body'][:300]}")
        if document.get("status") != str(status) or not document.get("detail"):
            raise Finding(f"{status} with status {document.get('status')!r} / no detail")


if __name__ == "__main__":
    fuzz("scim_filter", test_one_input)
