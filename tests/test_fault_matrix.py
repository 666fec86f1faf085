"""Fault injection across every route: route x AWS dependency x {error, throttle, slow}.

``ROUTES`` declares, for each route, the AWS calls on its path (``tests/faults.py``'s notation,
``dynamodb:GetItem(agents)#2`` = the second GetItem on the agents table) and what the route must
answer when that call fails: the documented code (README, "What the agent sees"; for the
PostgreSQL listener the SQLSTATE of docs/tcp-gateway.md), or ``ok`` where the dependency is
bookkeeping the answer does not wait for. The cells are generated from that declaration, and
``test_each_route_calls_what_it_declares`` keeps the declaration honest: a route that starts
calling something undeclared fails it.

Each cell, on one shared local stack (moto in-process, the echo upstream, PostgreSQL, the TCP
gateway), starts from a cold container (every cache on the path empty, so every declared call is
made), arms one fault in botocore (``FaultInjector``: nothing of wardgate is replaced), sends the
route's request, and asserts:

- the fault fired (a cell whose fault never fired fails: it would prove nothing);
- the answer is the documented refusal, never a 500, a hang or a dropped connection;
- nothing reached the backend unrecorded (upstream requests, table rows and Data API calls are
  matched against the recording events Firehose acknowledged);
- the request came back within ``DEADLINE_S`` (clients run with short timeouts here, so a call
  that waits on botocore's 60 s default, or retries without end, shows);
- once the fault clears, the next request succeeds (and an approved operation still runs once).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from html import unescape
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import asyncpg
import httpx
import psycopg
import pytest
from moto import mock_aws

from tests.faults import FAULT_KINDS, Dependency, FaultInjector
from wardgate import aws
from wardgate.dev.stack import DEMO_SECRET, DEV_POLICY, SFN_INTERPRETER, DevStack

ROOT = Path(__file__).resolve().parent.parent
READ_TIMEOUT_S = 0.02
# wardgate's clients, with its retries, but timeouts short enough for a fast matrix (aws.CLIENT_CONFIG).
CLIENT_CONFIG = {
    "connect_timeout": READ_TIMEOUT_S,
    "read_timeout": READ_TIMEOUT_S,
    "retries": {"mode": "standard", "max_attempts": 2},
}
POOL_ROUND = 16
DEADLINE_S = 5.0  # any one request with one dependency down; each slow call costs 2 attempts + a backoff
OWNER = "owner@example.com"
SQL_CONNECTION, RDS_CONNECTION, PG_CONNECTION = "fault-sql", "fault-rds", "fault-pg"
PG_URL = "postgresql://wardgate@127.0.0.1:5432/wardgate_test"
PG_PASSWORD = "wardgate-test-pw"
RDS_CLUSTER = "arn:aws:rds:us-east-1:123456789012:cluster:fault-matrix"
RDS_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fault-matrix"
TABLE = "fault_matrix_rows"
POLICY: dict[str, Any] = {
    **DEV_POLICY,
    "rules": [
        *DEV_POLICY["rules"],
        {
            "name": "agents may read and insert on the fault matrix's databases",
            "effect": "allow",
            "connections": [SQL_CONNECTION, RDS_CONNECTION, PG_CONNECTION],
            "identity": {"groups": ["ci"]},
            "match": {"sql": {"kinds": ["select", "insert"]}},
        },
    ],
}
NAMED_RESOURCES = {  # environment variable -> the label dependencies use
    "AGENTS_TABLE": "agents",
    "CONNECTIONS_TABLE": "connections",
    "POLICIES_TABLE": "policies",
    "APPROVALS_TABLE": "approvals",
    "RECORDINGS_TABLE": "recordings",
    "RECORDINGS_STREAM": "recordings",
    "APPROVAL_KEY_SECRET": "approval-key",
    "SCIM_TOKEN_SECRET": "scim-token",
    "TRANSACTION_KEY_SECRET": "transaction-key",
    "APPROVAL_STATE_MACHINE": "approval-workflow",
    "APPROVAL_SENDER": "sender",
}


def resource_labels() -> dict[str, str]:
    labels = {os.environ[k]: v for k, v in NAMED_RESOURCES.items() if os.environ.get(k)}
    labels.update(
        {
            DEMO_SECRET: "demo",
            "wardgate/demo-k8s": "k8s-credential",  # the cluster double's token and CA
            f"wardgate/{SQL_CONNECTION}": "sql-credential",
            f"wardgate/{PG_CONNECTION}": "pg-credential",
            RDS_CLUSTER: "cluster",
        }
    )
    return labels


# ---------------------------------------------------------------------------------------------------
# the stack, shared by every cell


@dataclass
class Outcome:
    status: Any  # an HTTP status, a SQLSTATE, or the notifier's failed message ids
    code: str = ""
    text: str = ""
    record_id: str = ""
    wall: float = 0.0


@dataclass
class Env:
    stack: DevStack
    injector: FaultInjector
    client: httpx.Client
    token: str
    admin_token: str
    scim_token: str
    pg_tls: ssl.SSLContext
    pools: dict[str, list[Any]] = field(default_factory=dict)
    declaring: bool = False  # a route's declaration test: one prepared state, not a pool
    outbox_seen: set[str] = field(default_factory=set)  # mails read (the outbox only grows)
    outbox_links: dict[str, str] = field(default_factory=dict)  # request id -> the oncall approver's link

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def cold(self) -> None:
        """A cold container: the functions' singletons (and every cache they hold) are built anew,
        and the TCP gateway forgets what it cached."""
        from wardgate import admin, runtime, scim

        if runtime.sql_gateway.cache_info().currsize:
            for backend in runtime.sql_gateway().backends._backends.values():
                backend.close()
        for cached in (
            runtime.http_gateway,
            runtime.sql_gateway,
            runtime.approval_desk,
            admin.agent_admin,
            admin.admin_api,
            scim.scim_service,
        ):
            cached.cache_clear()
        services = self.stack.tcp.services
        services.gate.policies._cached = None
        services.gate.policies._sets = {}
        services.gate.connections._cache.clear()
        services.gate.agents.forget()
        services.credentials._cache.clear()
        services.gate.agents._touched.clear()

    def quiet(self, settle: bool = False) -> None:
        """Wait for the writes a request leaves behind: last-used bookkeeping (a background thread),
        and with ``settle`` whatever else is in flight (a TCP session's end, on the gateway's loop)."""
        from wardgate import agents

        agents._background().submit(lambda: None).result(timeout=10)
        if settle:
            self.injector.settle()

    def desk(self) -> Any:
        from wardgate import runtime

        return runtime.approval_desk()

    def upstream(self) -> list[dict[str, Any]]:
        assert self.stack.upstream is not None
        return self.stack.upstream.requests

    def take(self, pool: str, make: Callable[[Env, int], list[Any]]) -> Any:
        """One prepared state from ``pool``. Approval flows are slow to set up (the workflow, the
        notifier, the approver), so the states for every cell of a route are made together, when
        its first cell runs (before, they would lengthen the scans of the routes that run earlier)."""
        if self.declaring:
            return make(self, 1)[0]
        states = self.pools.setdefault(pool, [])
        if not states:
            wanted = sum(1 for p in CELLS if p.values[0].route == pool)
            while len(states) < wanted:  # in rounds: fewer workflows at once in moto
                states.extend(make(self, min(POOL_ROUND, wanted - len(states))))
        return states.pop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from wardgate import runtime

    saved_env, saved_config = dict(os.environ), aws.CLIENT_CONFIG
    aws.CLIENT_CONFIG = CLIENT_CONFIG  # type: ignore[assignment]
    aws.reset_clients()  # the connection store reads through aws.client too
    injector = FaultInjector(labels=resource_labels)
    injector.install(aws.botocore_session().get_component("event_emitter"))  # before any client exists
    os.environ.update({"WARDGATE_UPSTREAM_TIMEOUT_S": "2"})
    try:
        with mock_aws(config=SFN_INTERPRETER):
            stack = DevStack(
                root=ROOT,
                state_dir=tmp_path_factory.mktemp("faults"),
                port=0,
                upstream_port=0,
                pg_port=0,
                mysql_port=0,
                # The manifest signer is no route's (EventBridge runs it on AWS): its calls would
                # be every route's here. tests/test_recording_integrity.py tests it.
                sign_manifests=False,
            ).start()
            try:
                yield _setup(stack, injector)
            finally:
                stack.stop()
                _admin_sql(f"DROP TABLE IF EXISTS {TABLE}")
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        aws.CLIENT_CONFIG = saved_config
        aws.reset_clients()
        runtime.http_gateway.cache_clear()
        runtime.sql_gateway.cache_clear()
        runtime.approval_desk.cache_clear()


def _admin_sql(sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(
        f"host=127.0.0.1 port=5432 dbname=wardgate_test user=wardgate password={PG_PASSWORD}"
    ) as db:
        cursor = db.execute(sql, args or None)
        rows = cursor.fetchall() if cursor.description else []
        db.commit()
        return rows


def _setup(stack: DevStack, injector: FaultInjector) -> Env:
    from wardgate.agents import Agent, AgentRegistry, AgentTable
    from wardgate.connections import Connection, ConnectionStore

    assert stack.issuer is not None and stack.certificates is not None
    secrets_manager = aws.client("secretsmanager")
    credential = json.dumps({"type": "basic", "username": "wardgate", "password": PG_PASSWORD})
    store = ConnectionStore(os.environ["CONNECTIONS_TABLE"])
    for name in (SQL_CONNECTION, PG_CONNECTION):
        secrets_manager.create_secret(Name=f"wardgate/{name}", SecretString=credential)
        store.put(Connection(name, "sql", PG_URL, f"wardgate/{name}", allowed_groups=("ci",)))
    rds_url = f"rds-data:///matrix?resourceArn={quote(RDS_CLUSTER)}&secretArn={quote(RDS_SECRET)}"
    store.put(Connection(RDS_CONNECTION, "sql", rds_url, None, allowed_groups=("ci",)))
    stack.apply_policy(POLICY)
    _admin_sql(f"DROP TABLE IF EXISTS {TABLE}")
    _admin_sql(f"CREATE TABLE {TABLE} (marker text)")
    registry = AgentRegistry(AgentTable(os.environ["AGENTS_TABLE"]))
    registry.register(Agent(stack.issuer.issuer, "agent-1", OWNER, "the fault matrix's agent"), by="test")
    aws.client("ses").verify_email_identity(EmailAddress=os.environ["APPROVAL_SENDER"])
    tls = ssl.create_default_context(cafile=str(stack.certificates.ca_file))
    return Env(
        stack=stack,
        injector=injector,
        client=httpx.Client(base_url=stack.url, timeout=30),
        token=stack.issuer.mint("agent-1", ["ci"]),
        admin_token=stack.issuer.mint("admin-1", ["wardgate-admins"]),
        scim_token=stack.scim_token(),
        pg_tls=tls,
    )


def marker() -> str:
    return f"cell{secrets.token_hex(5)}"


# ---------------------------------------------------------------------------------------------------
# routes: what each one calls, what it answers when a call fails, how to drive it


class Route:
    name: str
    deps: ClassVar[dict[str, str]]  # dependency -> expected refusal (a documented code) or "ok"
    lingers = False  # leaves AWS calls in flight after its requests (wait for them between cells)

    def prepare(self, env: Env) -> Any:
        """Set up the cell before the container goes cold (nothing here is watched)."""
        return None

    def send(self, env: Env, state: Any) -> Outcome:
        raise NotImplementedError

    def backend(self, env: Env, state: Any) -> Any:
        """What the backend has seen so far (compared before and after)."""
        return None

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        raise NotImplementedError

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        """Nothing reached the backend unrecorded."""

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        """The fault has cleared: the next request succeeds."""
        raise NotImplementedError

    def cleanup(self, env: Env, state: Any) -> None:
        """Whatever the cell left open (it may have failed half way)."""


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _http_outcome(response: httpx.Response) -> Outcome:
    body = _json(response)
    if body.get("kind") == "Status":  # a /k8s/ refusal: wardgate's code is its cause's reason
        code = str(((body.get("details") or {}).get("causes") or [{}])[0].get("reason", ""))
    else:
        code = str((body.get("error") or {}).get("code", ""))
    return Outcome(
        response.status_code,
        code,
        response.text[:2000],
        response.headers.get("x-wardgate-record-id", ""),
    )


def _json_body(outcome: Outcome) -> dict[str, Any]:
    body = json.loads(outcome.text)
    return body if isinstance(body, dict) else {}


def _forwarded_unrecorded(env: Env, seen: list[dict[str, Any]]) -> list[str]:
    """Upstream requests whose wardgate request id has no acknowledged ``request`` event."""
    recorded = {e.get("request_id") for e in env.injector.delivered() if e.get("event") == "request"}
    ids = [str(r["headers"].get("x-wardgate-request-id")) for r in seen]
    return [i for i in ids if i not in recorded]


class HttpRoute(Route):
    """An agent's request through the HTTP or Kubernetes proxy."""

    def __init__(self, name: str, path: str, deps: dict[str, str]) -> None:
        self.name, self.path = name, path
        self.deps = deps  # type: ignore[misc]

    def send(self, env: Env, state: Any) -> Outcome:
        return _http_outcome(env.client.get(self.path, headers=env.auth))

    def backend(self, env: Env, state: Any) -> Any:
        return len(env.upstream())

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        if expected == "ok":
            assert outcome.status == 200, outcome
        else:
            assert (outcome.status, outcome.code) == (503, expected), outcome

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        seen = env.upstream()[before:]
        assert not _forwarded_unrecorded(env, seen), "forwarded without an acknowledged request event"
        if outcome.status == 503 and not any(
            e.get("event") == "request" and e.get("record_id") == outcome.record_id
            for e in env.injector.delivered()
        ):
            assert not seen, "refused before it was recorded, yet the upstream saw it"

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        again = self.send(env, state)
        assert again.status == 200, again
        events = [e["event"] for e in env.injector.delivered() if e.get("record_id") == again.record_id]
        assert events == ["request", "response"], events


class HeldRoute(Route):
    """A request policy holds for a human: 202, an approvals item, a workflow; never forwarded."""

    name = "http-held"
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(agents)": "registry_unavailable",
        "dynamodb:GetItem(agents)#2": "registry_unavailable",
        "dynamodb:GetItem(connections)": "store_unavailable",
        "dynamodb:GetItem(policies)": "policy_unavailable",
        "dynamodb:GetItem(policies)#2": "policy_unavailable",
        "dynamodb:PutItem(approvals)": "store_unavailable",
        "firehose:PutRecord(recordings)": "recording_unavailable",
        "stepfunctions:StartExecution(approval-workflow)": "approval_unavailable",
        "firehose:PutRecord(recordings)#2": "recording_unavailable",
        "dynamodb:PutItem(recordings)": "recording_unavailable",
        "dynamodb:UpdateItem(agents)": "ok",
    }

    def send(self, env: Env, state: Any) -> Outcome:
        response = env.client.post("/http/demo/v1/refunds", headers=env.auth, json={"amount": 5})
        return _http_outcome(response)

    def backend(self, env: Env, state: Any) -> Any:
        return len(env.upstream())

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        if expected == "ok":
            assert outcome.status == 202, outcome
        else:
            assert (outcome.status, outcome.code) == (503, expected), outcome

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        assert len(env.upstream()) == before, "a held operation reached the upstream"

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        again = self.send(env, state)
        assert again.status == 202, again


# --- the approval flow: requests held, mailed, approved -----------------------------------------


def _read(read: Callable[[], Any]) -> Any:
    """A test's own read of the approvals table, tried again when moto, written to by the workflow's
    threads at the same time, fails it (its in-process backends are not thread-safe)."""
    from wardgate.errors import ServiceUnavailable

    for _ in range(5):
        try:
            return read()
        except ServiceUnavailable:
            time.sleep(0.05)
    return read()


def _status(env: Env, request_id: str) -> Any:
    return _read(lambda: env.desk().store.get(request_id))


def _retried(send: Callable[[], httpx.Response], status: int) -> httpx.Response:
    """Setting a cell up, not under test: moto's in-process backends are not thread-safe, and with
    many workflows running a call now and then fails (503); wardgate's answer is to try again."""
    for _ in range(3):
        response = send()
        if response.status_code != 503:
            break
        time.sleep(0.2)
    assert response.status_code == status, response.text[-500:]
    return response


def _hold(env: Env, count: int) -> list[tuple[str, str]]:
    """``count`` held refunds (request id, marker), once the notifier has mailed their approvers."""
    held = []
    for _ in range(count):
        mark = marker()
        body = {"amount": 900, "order": mark}
        response = _retried(
            partial(env.client.post, "/http/demo/v1/refunds", headers=env.auth, json=body), 202
        )
        held.append((response.json()["request_id"], mark))
    desk = env.desk()
    deadline = time.monotonic() + 20
    while not all(_read(partial(desk.store.task_token, r)) for r, _ in held):
        assert time.monotonic() < deadline, "the notifier did not pick up the held requests"
        time.sleep(0.05)
    return held


def _links(env: Env, request_ids: list[str], approver: str = "oncall@example.com") -> dict[str, str]:
    """The approver's links, from the mails the notifier sent (the local outbox), read once per file."""
    assert env.stack.outbox is not None
    pattern = re.compile(re.escape(env.stack.url) + r"/approvals/(\w+)\?t=[^\s\"<]+")
    found: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for path in sorted(env.stack.outbox.glob("*.json")):
            if path.name in env.outbox_seen:
                continue
            message = json.loads(path.read_text())
            env.outbox_seen.add(path.name)
            link = pattern.search(str(message["text"]))
            if link and message["to"] == [approver]:
                env.outbox_links[link.group(1)] = link.group(0)
        found = {r: env.outbox_links[r] for r in request_ids if r in env.outbox_links}
        if len(found) == len(request_ids):
            return found
        time.sleep(0.05)
    raise AssertionError(f"no mail to {approver} for {set(request_ids) - set(found)}")


def _form(page: str) -> dict[str, str]:
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page)[:3])
    return {k: unescape(v) for k, v in fields.items()}


def _page_outcome(response: httpx.Response) -> Outcome:
    code = re.search(r'data-code="([^"]*)"', response.text)
    return Outcome(response.status_code, code.group(1) if code else "", response.text[-600:])


def _refunds(env: Env, mark: str) -> int:
    return sum(1 for r in env.upstream() if r["path"] == "/v1/refunds" and mark in r["body"])


class ApprovalPageRoute(Route):
    """The approver opens their link: a confirmation page, nothing decided."""

    name = "approval-page"
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(approvals)": "store_unavailable",
        "secretsmanager:GetSecretValue(approval-key)": "credential_unavailable",
        "firehose:PutRecord(recordings)": "recording_unavailable",
    }

    def prepare(self, env: Env) -> Any:
        if "page" not in env.pools:  # one pending request serves every cell: viewing changes nothing
            request_id, mark = _hold(env, 1)[0]
            env.pools["page"] = [(request_id, mark, _links(env, [request_id])[request_id])]
        return env.pools["page"][0]

    def send(self, env: Env, state: Any) -> Outcome:
        return _page_outcome(env.client.get(state[2]))

    def backend(self, env: Env, state: Any) -> Any:
        return _refunds(env, state[1])

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        assert (outcome.status, outcome.code) == (503, expected), outcome

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        assert _refunds(env, state[1]) == before

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        again = env.client.get(state[2])
        assert again.status_code == 200 and "Approve this operation?" in again.text, again.text[-400:]


def _decision_forms(env: Env, count: int) -> list[tuple[str, str, str, dict[str, str]]]:
    forms = []
    held = _hold(env, count)
    links = _links(env, [request_id for request_id, _ in held])
    for request_id, mark in held:
        link = links[request_id]
        page = _retried(partial(env.client.get, link), 200)
        forms.append((request_id, mark, link, {**_form(page.text), "decision": "approve"}))
    return forms


class ApprovalDecisionRoute(Route):
    """The approver presses Approve: the vote, the quorum, the workflow released."""

    name = "approval-decision"
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(approvals)": "store_unavailable",
        "secretsmanager:GetSecretValue(approval-key)": "credential_unavailable",
        "dynamodb:TransactWriteItems(approvals)": "store_unavailable",
        "dynamodb:GetItem(approvals)#2": "store_unavailable",
        "firehose:PutRecord(recordings)": "recording_unavailable",
        "dynamodb:UpdateItem(approvals)": "store_unavailable",
        "dynamodb:GetItem(approvals)#3": "store_unavailable",
        "stepfunctions:SendTaskSuccess": "approval_unavailable",
        "firehose:PutRecord(recordings)#2": "recording_unavailable",
    }

    def prepare(self, env: Env) -> Any:
        return env.take(self.name, _decision_forms)

    def send(self, env: Env, state: Any) -> Outcome:
        return _page_outcome(env.client.post(state[2].split("?")[0], data=state[3]))

    def backend(self, env: Env, state: Any) -> Any:
        return _refunds(env, state[1])

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        assert (outcome.status, outcome.code) == (503, expected), outcome
        current = _status(env, state[0])
        assert current.status == "pending", "approved although the decision failed"

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        assert _refunds(env, state[1]) == before

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        again = env.client.post(state[2].split("?")[0], data=state[3])  # the approver submits again
        assert again.status_code == 200 and "You approved it" in again.text, again.text[-600:]
        deadline = time.monotonic() + 10
        while _status(env, state[0]).status != "approved":  # the workflow was released and marked it
            assert time.monotonic() < deadline, _status(env, state[0])
            time.sleep(0.05)


class PollRoute(Route):
    """The agent polls its pending request."""

    name = "poll"
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(agents)": "registry_unavailable",
        "dynamodb:GetItem(agents)#2": "registry_unavailable",
        "dynamodb:GetItem(approvals)": "store_unavailable",
        "dynamodb:UpdateItem(agents)": "ok",
    }

    def prepare(self, env: Env) -> Any:
        if "poll" not in env.pools:
            env.pools["poll"] = [_hold(env, 1)[0]]
        return env.pools["poll"][0]

    def send(self, env: Env, state: Any) -> Outcome:
        return _http_outcome(env.client.get(f"/requests/{state[0]}", headers=env.auth))

    def backend(self, env: Env, state: Any) -> Any:
        return _refunds(env, state[1])

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        if expected == "ok":
            assert outcome.status == 200, outcome
        else:
            assert (outcome.status, outcome.code) == (503, expected), outcome

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        assert _refunds(env, state[1]) == before

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        again = env.client.get(f"/requests/{state[0]}", headers=env.auth)
        assert again.status_code == 200 and again.json()["status"] == "pending", again.text


def _approved(env: Env, count: int) -> list[tuple[str, str]]:
    forms = _decision_forms(env, count)
    for _, _, link, form in forms:  # a failed submission is submitted again, as an approver would
        decided = _retried(partial(env.client.post, link.split("?")[0], data=form), 200)
        assert "You approved it" in decided.text, decided.text
    deadline = time.monotonic() + 20
    while any(_status(env, request_id).status != "approved" for request_id, *_ in forms):
        assert time.monotonic() < deadline, "the workflow did not mark the requests approved"
        time.sleep(0.05)
    return [(request_id, mark) for request_id, mark, *_ in forms]


class PollExecuteRoute(Route):
    """The agent polls an approved one-time request: the poll runs it, exactly once."""

    name = "poll-execute"
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(agents)": "registry_unavailable",
        "dynamodb:GetItem(agents)#2": "registry_unavailable",
        "dynamodb:GetItem(approvals)": "store_unavailable",
        "dynamodb:UpdateItem(approvals)": "store_unavailable",
        "firehose:PutRecord(recordings)": "recording_unavailable",
        "dynamodb:GetItem(connections)": "store_unavailable",
        "dynamodb:GetItem(policies)": "policy_unavailable",
        "dynamodb:GetItem(policies)#2": "policy_unavailable",
        "secretsmanager:GetSecretValue(demo)": "credential_unavailable",
        "firehose:PutRecord(recordings)#2": "recording_unavailable",
        "firehose:PutRecord(recordings)#3": "recording_unavailable",
        "dynamodb:PutItem(recordings)": "withheld",  # it ran: executed, the answer withheld
        "dynamodb:UpdateItem(approvals)#2": "store_unavailable",
        "firehose:PutRecord(recordings)#4": "recording_unavailable",
        "dynamodb:GetItem(approvals)#2": "store_unavailable",
        "dynamodb:UpdateItem(agents)": "ok",
    }

    def prepare(self, env: Env) -> Any:
        return env.take(self.name, _approved)

    def send(self, env: Env, state: Any) -> Outcome:
        return _http_outcome(env.client.get(f"/requests/{state[0]}", headers=env.auth))

    def backend(self, env: Env, state: Any) -> Any:
        return len(env.upstream())

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        if expected == "ok":
            assert outcome.status == 200 and _json_body(outcome)["status"] == "executed", outcome
        elif expected == "withheld":
            body = _json_body(outcome)
            assert outcome.status == 200 and body["status"] == "executed", outcome
            assert body["result"]["status"] == 503 and "recording_unavailable" in body["result"]["body"], body
        else:
            assert (outcome.status, outcome.code) == (503, expected), outcome

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        seen = env.upstream()[before:]
        assert not _forwarded_unrecorded(env, seen), "forwarded without an acknowledged request event"
        assert _refunds(env, state[1]) <= 1

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        forwarded = _refunds(env, state[1])
        again = env.client.get(f"/requests/{state[0]}", headers=env.auth)
        assert again.status_code == 200, again.text
        body = again.json()
        if forwarded:  # it ran during the failed poll: never again; its result if it could be kept
            assert body["status"] in ("executed", "executing"), body
        else:
            assert body["status"] == "executed" and body["result"]["status"] == 200, body
        assert _refunds(env, state[1]) == 1, "an approved one-time operation must run exactly once"


# --- SQL through the Data API ---------------------------------------------------------------------


def _data_api(env: Env, connection: str, sql: str) -> Outcome:
    body = {"resourceArn": RDS_CLUSTER, "secretArn": RDS_SECRET, "sql": sql}
    response = env.client.post(f"/sql/{connection}/Execute", headers=env.auth, json=body)
    doc = _json(response)
    return Outcome(
        response.status_code,
        str(doc.get("code", "")),
        response.text[:500],
        response.headers.get("x-wardgate-record-id", ""),
    )


def _rows(mark: str) -> int:
    return int(_admin_sql(f"SELECT count(*) FROM {TABLE} WHERE marker = %s", mark)[0][0])


class SqlRoute(Route):
    """An INSERT through the Data API route on PostgreSQL: the table shows what ran."""

    name = "sql"
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(agents)": "registry_unavailable",
        "dynamodb:GetItem(agents)#2": "registry_unavailable",
        "dynamodb:GetItem(connections)": "store_unavailable",
        "secretsmanager:GetSecretValue(sql-credential)": "credential_unavailable",
        "dynamodb:GetItem(policies)": "policy_unavailable",
        "dynamodb:GetItem(policies)#2": "policy_unavailable",
        "firehose:PutRecord(recordings)": "recording_unavailable",
        "firehose:PutRecord(recordings)#2": "recording_unavailable",
        "dynamodb:PutItem(recordings)": "recording_unavailable",
        "dynamodb:UpdateItem(agents)": "ok",
    }

    def prepare(self, env: Env) -> Any:
        return marker()

    def send(self, env: Env, state: Any) -> Outcome:
        return _data_api(env, SQL_CONNECTION, f"INSERT INTO {TABLE} (marker) VALUES ('{state}')")

    def backend(self, env: Env, state: Any) -> Any:
        return _rows(state)

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        if expected == "ok":
            assert outcome.status == 200, outcome
        else:
            assert (outcome.status, outcome.code) == (503, expected), outcome
            assert "ServiceUnavailableError" in outcome.text, outcome  # what boto3 raises

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        if _rows(state) != before:  # it ran: only after its request event was acknowledged
            assert any(
                e.get("event") == "request" and e.get("record_id") == outcome.record_id
                for e in env.injector.delivered()
            ), "the statement ran unrecorded"

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        again = marker()
        result = _data_api(env, SQL_CONNECTION, f"INSERT INTO {TABLE} (marker) VALUES ('{again}')")
        assert result.status == 200 and _rows(again) == 1, result


class RdsDataRoute(Route):
    """A SELECT through the Data API route on the real ``rds-data`` API (moto's)."""

    name = "sql-rds-data"
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(agents)": "registry_unavailable",
        "dynamodb:GetItem(agents)#2": "registry_unavailable",
        "dynamodb:GetItem(connections)": "store_unavailable",
        "secretsmanager:GetSecretValue(transaction-key)": "credential_unavailable",
        "dynamodb:GetItem(policies)": "policy_unavailable",
        "dynamodb:GetItem(policies)#2": "policy_unavailable",
        "firehose:PutRecord(recordings)": "recording_unavailable",
        "rds-data:ExecuteStatement(cluster)": "ServiceUnavailableError",
        "firehose:PutRecord(recordings)#2": "recording_unavailable",
        "dynamodb:PutItem(recordings)": "recording_unavailable",
        "dynamodb:UpdateItem(agents)": "ok",
    }

    def send(self, env: Env, state: Any) -> Outcome:
        return _data_api(env, RDS_CONNECTION, "SELECT 1")

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        if expected == "ok":
            assert outcome.status == 200, outcome
        else:
            assert (outcome.status, outcome.code) == (503, expected), outcome
            assert "ServiceUnavailableError" in outcome.text, outcome

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        recorded = False
        for call in list(env.injector.calls):
            if call.service == "firehose" and call.ok:
                recorded = recorded or any(json.loads(r).get("event") == "request" for r in call.records)
            if call.service == "rds-data":
                assert recorded, "the Data API was called before the statement was recorded"

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        again = self.send(env, state)
        assert again.status == 200, again


# --- administration: SCIM offboarding, the admin API ----------------------------------------------


def _register(env: Env, subject: str, owner: str) -> None:
    from wardgate.agents import Agent, AgentRegistry, AgentTable

    assert env.stack.issuer is not None
    registry = AgentRegistry(AgentTable(os.environ["AGENTS_TABLE"]))
    registry.register(Agent(env.stack.issuer.issuer, subject, owner, "fault matrix"), by="test")


def _forget_identities(env: Env, subject: str, owner: str, *extra: str) -> None:
    """Delete what a cell wrote to the agents table: moto's TransactWriteItems deep-copies a table
    it writes, so a table that kept every cell's agents would slow every later revocation down."""
    import boto3

    from wardgate.agents import agent_key, owner_key

    assert env.stack.issuer is not None
    table = os.environ["AGENTS_TABLE"]
    for pk in (agent_key(env.stack.issuer.issuer, subject), owner_key(owner), *extra):
        boto3.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": pk}})


def _refused_agent(env: Env, subject: str) -> str:
    assert env.stack.issuer is not None
    headers = {"Authorization": f"Bearer {env.stack.issuer.mint(subject, ['ci'])}"}
    response = env.client.get("/http/demo/anything", headers=headers)
    return str(_json(response).get("error", {}).get("code", response.status_code))


class ScimRoute(Route):
    """The IdP deactivates a user: the owner and their agents are revoked."""

    name = "scim"
    deps: ClassVar[dict[str, str]] = {
        "secretsmanager:GetSecretValue(scim-token)": "503",
        "dynamodb:GetItem(agents)": "503",
        "dynamodb:GetItem(agents)#2": "503",
        "dynamodb:Scan(agents)": "503",
        "dynamodb:TransactWriteItems(agents)": "503",
        "dynamodb:Scan(approvals)": "ok",  # cancelling pending approvals: the kill switch refuses anyway
        "firehose:PutRecord(recordings)": "503",
        "dynamodb:PutItem(recordings)": "503",
        "dynamodb:PutItem(agents)": "503",
    }

    def _scim(self, env: Env) -> httpx.Client:
        return httpx.Client(
            base_url=f"{env.stack.url}/scim/v2",
            headers={"Authorization": f"Bearer {env.scim_token}", "Content-Type": "application/scim+json"},
            timeout=30,
        )

    def prepare(self, env: Env) -> Any:
        owner = f"{marker()}@example.com"
        with self._scim(env) as scim:
            created = scim.post("/Users", json={"userName": owner, "active": True})
        assert created.status_code == 201, created.text
        subject = f"bot-{marker()}"
        _register(env, subject, owner)
        return created.json()["id"], owner, subject

    def send(self, env: Env, state: Any) -> Outcome:
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        }
        with self._scim(env) as scim:
            response = scim.patch(f"/Users/{state[0]}", json=patch)
        return Outcome(response.status_code, str(_json(response).get("status", "")), response.text[:500])

    def _revoked(self, owner: str) -> bool:
        from wardgate.agents import AgentRegistry, AgentTable

        state = AgentRegistry(AgentTable(os.environ["AGENTS_TABLE"])).owner(owner)
        return state is not None and state.revoked

    def _active(self, user_id: str) -> bool:
        from wardgate.agents import AgentTable
        from wardgate.scim import ScimUsers

        user = ScimUsers(AgentTable(os.environ["AGENTS_TABLE"])).get(user_id)
        return user is not None and user.active

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        if expected == "ok":
            assert outcome.status == 200, outcome
        else:
            assert (outcome.status, outcome.code) == (503, "503"), outcome
            assert "urn:ietf:params:scim:api:messages:2.0:Error" in outcome.text, outcome
        # Fail closed: a user the IdP sees deactivated is never an owner wardgate still trusts.
        assert self._active(state[0]) or self._revoked(state[1])

    def cleanup(self, env: Env, state: Any) -> None:
        user_id, owner, subject = state
        _forget_identities(env, subject, owner, f"scim:{user_id}", f"scimname:{owner}")

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        again = self.send(env, state)
        assert again.status == 200 and '"active": false' in again.text, again
        assert self._revoked(state[1])
        assert _refused_agent(env, state[2]) in ("agent_revoked", "owner_revoked")


AUDIT_DEPS = {
    "firehose:PutRecord(recordings)": "recording_unavailable",  # the audit trail's event
    "dynamodb:PutItem(recordings)": "recording_unavailable",  # and its index entry
}
CANCEL_APPROVALS = {
    "dynamodb:Scan(approvals)": "ok"
}  # a revocation's listener: the kill switch refuses anyway


class AdminRoute(Route):
    """An administrator's call on the admin API (every change audited)."""

    def __init__(self, action: str, deps: dict[str, str]) -> None:
        self.action, self.name = action, f"admin-{action}"
        self.deps = deps  # type: ignore[misc]

    def prepare(self, env: Env) -> Any:
        subject, owner = f"bot-{marker()}", f"{marker()}@example.com"
        if self.action != "register":
            _register(env, subject, owner)
        return subject, owner

    def send(self, env: Env, state: Any) -> Outcome:
        assert env.stack.issuer is not None
        subject, owner = state
        headers = {"Authorization": f"Bearer {env.admin_token}"}
        issuer, why = env.stack.issuer.issuer, "fault matrix"
        if self.action == "list":
            return _http_outcome(env.client.get("/admin/agents", headers=headers))
        path, body = {
            "register": (
                "/admin/agents",
                {
                    "issuer": issuer,
                    "subject": subject,
                    "owner": owner,
                    "purpose": why,
                    "connections": ["demo"],
                },
            ),
            "disable": ("/admin/agents/disable", {"subject": subject, "issuer": issuer, "reason": why}),
            "revoke": ("/admin/revocations", {"subject": subject, "issuer": issuer, "reason": why}),
            "revoke-owner": ("/admin/revocations", {"owner": owner, "reason": why}),
        }[self.action]
        return _http_outcome(env.client.post(path, headers=headers, json=body))

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        if expected == "ok":
            assert outcome.status in (200, 201), outcome
        else:
            assert (outcome.status, outcome.code) == (503, expected), outcome
        if self.action == "register":  # a registration that was refused (or not audited) does not serve
            from wardgate.agents import AgentRegistry, AgentTable

            assert env.stack.issuer is not None
            agent = AgentRegistry(AgentTable(os.environ["AGENTS_TABLE"])).get(
                env.stack.issuer.issuer, state[0]
            )
            assert agent is None or agent.status != "active", agent

    def cleanup(self, env: Env, state: Any) -> None:
        _forget_identities(env, *state)

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        subject, owner = state
        again = self.send(env, state)
        assert again.status == (201 if self.action == "register" else 200), again
        if self.action == "list":
            return
        refused = _refused_agent(env, subject)
        if self.action == "register":
            assert refused == "200", refused  # the new agent is served
        else:
            assert refused in ("agent_revoked", "owner_revoked"), refused
        action = {"register": "register_agent", "disable": "disable_agent", "revoke": "revoke_subject"}.get(
            self.action, "revoke_owner"
        )
        audited = [
            e["status"]
            for e in env.injector.delivered()
            if e.get("event") == "admin"
            and e.get("action") == action
            and (e["target"].get("subject") == subject or e["target"].get("owner") == owner)
        ]
        assert 200 in audited, f"the change is not in the audit trail: {audited}"


ADMIN_ROUTES = [
    AdminRoute(
        "list",
        {"dynamodb:GetItem(agents)": "registry_unavailable", "dynamodb:Scan(agents)": "registry_unavailable"},
    ),
    AdminRoute(
        "register",
        {
            "dynamodb:GetItem(agents)": "registry_unavailable",  # the admin's own identity
            "dynamodb:GetItem(agents)#2": "registry_unavailable",  # the owner's state
            "dynamodb:PutItem(agents)": "registry_unavailable",
            **AUDIT_DEPS,
        },
    ),
    AdminRoute(
        "disable",
        {
            "dynamodb:GetItem(agents)": "registry_unavailable",
            "dynamodb:GetItem(agents)#2": "registry_unavailable",
            "dynamodb:UpdateItem(agents)": "registry_unavailable",
            **CANCEL_APPROVALS,
            **AUDIT_DEPS,
        },
    ),
    AdminRoute(
        "revoke",
        {
            "dynamodb:GetItem(agents)": "registry_unavailable",
            "dynamodb:GetItem(agents)#2": "registry_unavailable",
            "dynamodb:UpdateItem(agents)": "registry_unavailable",
            **CANCEL_APPROVALS,
            **AUDIT_DEPS,
        },
    ),
    AdminRoute(
        "revoke-owner",
        {
            "dynamodb:GetItem(agents)": "registry_unavailable",
            "dynamodb:GetItem(agents)#2": "registry_unavailable",
            "dynamodb:Scan(agents)": "registry_unavailable",
            "dynamodb:TransactWriteItems(agents)": "registry_unavailable",
            **CANCEL_APPROVALS,
            **AUDIT_DEPS,
        },
    ),
]


# --- the approval notifier (SQS event source -> SES) -----------------------------------------------


class NotifierRoute(Route):
    """The workflow's SQS message reaches the notifier function, which mails approvers through SES."""

    name = "notifier"
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(approvals)": "redelivered",
        "dynamodb:UpdateItem(approvals)": "redelivered",
        "secretsmanager:GetSecretValue(approval-key)": "redelivered",
        "ses:SendEmail(sender)": "redelivered",
        "ses:SendEmail(sender)#2": "redelivered",
        "dynamodb:UpdateItem(approvals)#2": "redelivered",
        "firehose:PutRecord(recordings)": "redelivered",
    }

    def prepare(self, env: Env) -> Any:
        if "notifier" not in env.pools:
            request_id, _ = _hold(env, 1)[0]
            env.pools["notifier"] = [(request_id, _read(partial(env.desk().store.task_token, request_id)))]
        return env.pools["notifier"][0]

    def send(self, env: Env, state: Any) -> Outcome:
        from wardgate import runtime

        body = json.dumps({"request_id": state[0], "task_token": state[1]})
        event = {"Records": [{"messageId": "m-1", "body": body}]}
        outbox = os.environ.pop("WARDGATE_OUTBOX")  # on AWS: SES
        try:
            result = runtime.handle_notifier_event(event, None)
        finally:
            os.environ["WARDGATE_OUTBOX"] = outbox
        return Outcome([f["itemIdentifier"] for f in result["batchItemFailures"]])

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        assert outcome.status == ["m-1"], "a message that was not handled must go back to SQS"
        current = _status(env, state[0])
        assert current.status == "pending" and not current.decided, current

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        before = len([c for c in env.injector.made("ses:SendEmail(sender)") if c.ok])
        again = self.send(env, state)
        assert again.status == [], again
        assert len([c for c in env.injector.made("ses:SendEmail(sender)") if c.ok]) == before + 2


# --- PostgreSQL through the TCP gateway ------------------------------------------------------------


def _sqlstate(error: BaseException) -> str:
    return str(getattr(error, "sqlstate", "") or type(error).__name__)


class PgRoute(Route):
    """psql's protocol through the TCP gateway: a session's admission, then an INSERT."""

    name = "pg"
    lingers = True
    deps: ClassVar[dict[str, str]] = {
        "dynamodb:GetItem(agents)": "57P03",
        "dynamodb:GetItem(agents)#2": "57P03",
        "dynamodb:GetItem(connections)": "57P03",
        "dynamodb:GetItem(policies)": "57P03",
        "dynamodb:GetItem(policies)#2": "57P03",
        "firehose:PutRecordBatch(recordings)": "57P03",
        "dynamodb:PutItem(recordings)": "57P03",
        "secretsmanager:GetSecretValue(pg-credential)": "57P03",
        "firehose:PutRecordBatch(recordings)#2": "58000",
        "dynamodb:UpdateItem(agents)": "ok",
    }

    def prepare(self, env: Env) -> Any:
        return {"loop": asyncio.new_event_loop(), "marker": marker(), "conn": None}

    async def _connect(self, env: Env) -> Any:
        return await asyncpg.connect(
            host="127.0.0.1",
            port=env.stack.pg_port_bound,
            user="agent-1",
            password=env.token,
            database=PG_CONNECTION,
            ssl=env.pg_tls,
            timeout=DEADLINE_S * 2,
        )

    def send(self, env: Env, state: Any) -> Outcome:
        loop = state["loop"]
        try:
            state["conn"] = loop.run_until_complete(self._connect(env))
        except Exception as error:
            return Outcome(_sqlstate(error), text=str(error))
        try:
            loop.run_until_complete(
                state["conn"].execute(f"INSERT INTO {TABLE} VALUES ('{state['marker']}')")
            )
        except Exception as error:
            return Outcome(_sqlstate(error), text=str(error))
        return Outcome("00000")

    def backend(self, env: Env, state: Any) -> Any:
        return _rows(state["marker"])

    def check_refused(self, env: Env, state: Any, outcome: Outcome, expected: str) -> None:
        assert outcome.status == ("00000" if expected == "ok" else expected), outcome
        if expected == "58000":
            assert "cannot be recorded now" in outcome.text, outcome

    def check_recorded(self, env: Env, state: Any, before: Any, outcome: Outcome) -> None:
        if _rows(state["marker"]) != before:
            assert any(
                e.get("event") == "statement" and state["marker"] in json.dumps(e)
                for e in env.injector.delivered()
            ), "the statement ran unrecorded"

    def recover(self, env: Env, state: Any, outcome: Outcome) -> None:
        loop, again = state["loop"], marker()
        if state["conn"] is not None:  # the session goes on: the next statement runs
            loop.run_until_complete(state["conn"].execute(f"INSERT INTO {TABLE} VALUES ('{again}')"))
            assert _rows(again) == 1
        conn = loop.run_until_complete(self._connect(env))  # and a new session is admitted
        try:
            assert loop.run_until_complete(conn.fetchval("SELECT 1")) == 1
        finally:
            loop.run_until_complete(conn.close())

    def cleanup(self, env: Env, state: Any) -> None:
        loop = state["loop"]
        if state["conn"] is not None and not state["conn"].is_closed():
            loop.run_until_complete(state["conn"].close())
        loop.close()


HTTP_DEPS = {
    "dynamodb:GetItem(agents)": "registry_unavailable",  # the agent
    "dynamodb:GetItem(agents)#2": "registry_unavailable",  # its owner
    "dynamodb:GetItem(connections)": "store_unavailable",
    "dynamodb:GetItem(policies)": "policy_unavailable",  # the version in force
    "dynamodb:GetItem(policies)#2": "policy_unavailable",  # its document
    "secretsmanager:GetSecretValue(demo)": "credential_unavailable",
    "firehose:PutRecord(recordings)": "recording_unavailable",  # before forwarding
    "firehose:PutRecord(recordings)#2": "recording_unavailable",  # the outcome: the answer is withheld
    "dynamodb:PutItem(recordings)": "recording_unavailable",  # the index entry
    "dynamodb:UpdateItem(agents)": "ok",  # last_used, in the background
}
K8S_DEPS = {
    ("secretsmanager:GetSecretValue(k8s-credential)" if k == "secretsmanager:GetSecretValue(demo)" else k): v
    for k, v in HTTP_DEPS.items()
}
ROUTE_LIST: list[Route] = [  # the approval flows last: their items make the revocations' scans longer
    HttpRoute("http", "/http/demo/anything", HTTP_DEPS),
    HttpRoute("k8s", "/k8s/demo-k8s/api/v1/namespaces/prod/secrets", K8S_DEPS),
    SqlRoute(),
    RdsDataRoute(),
    PgRoute(),
    ScimRoute(),
    *ADMIN_ROUTES,
    HeldRoute(),
    ApprovalPageRoute(),
    ApprovalDecisionRoute(),
    PollRoute(),
    PollExecuteRoute(),
    NotifierRoute(),
]
ROUTES = {route.name: route for route in ROUTE_LIST}

# Cells that fail on a known defect in code this matrix may not change: reported, not fixed here.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Cell:
    route: str
    dependency: Dependency
    kind: str
    expected: str

    def __str__(self) -> str:
        return f"{self.route}-{self.dependency}-{self.kind}"


def _cells() -> list[Any]:
    cells = []
    for route in ROUTE_LIST:
        for spec, expected in route.deps.items():
            for kind in FAULT_KINDS:
                cell = Cell(route.name, Dependency.parse(spec), kind, expected)
                reason = KNOWN.get((route.name, spec))
                marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
                cells.append(pytest.param(cell, id=str(cell), marks=marks))
    return cells


CELLS = _cells()


# ---------------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("route", ROUTE_LIST, ids=lambda r: r.name)
def test_each_route_calls_what_it_declares(env: Env, route: Route):
    """On a cold container without faults, the route makes exactly the declared calls (at least as
    often as declared), so the matrix cannot miss a dependency the route has."""
    env.declaring = True
    try:
        state = route.prepare(env)
    finally:
        env.declaring = False
    env.cold()
    env.injector.watch()
    try:
        outcome = route.send(env, state)
        env.quiet()
        calls = list(env.injector.calls)
    finally:
        route.cleanup(env, state)
        env.quiet(settle=route.lingers)
        env.injector.stop()
    assert outcome.status in (200, 201, 202, "00000", []), outcome
    made = Counter(name for call in calls for name in call.names)
    declared = [Dependency.parse(spec) for spec in route.deps]
    wanted = Counter({d.base: max(x.occurrence for x in declared if x.base == d.base) for d in declared})
    log = [f"{c.names} {c.thread}" for c in calls]
    assert set(made) == set(wanted), f"declared {sorted(wanted)}, made {log}"
    short = {name: (made[name], count) for name, count in wanted.items() if made[name] < count}
    assert not short, f"declared more calls than made (made, declared): {short}; {log}"


@pytest.mark.parametrize("cell", CELLS)
def test_fault(env: Env, cell: Cell):
    route = ROUTES[cell.route]
    state = route.prepare(env)
    env.cold()
    before = route.backend(env, state)
    env.injector.watch()
    env.injector.arm(cell.dependency, cell.kind)
    try:
        started = time.monotonic()
        outcome = route.send(env, state)
        outcome.wall = time.monotonic() - started
        env.quiet()
        hits, slow = env.injector.hits, env.injector.slow_attempts
        env.injector.disarm()
        assert hits, f"the fault never fired: {cell.dependency} was not called ({outcome})"
        assert cell.kind != "slow" or slow, "the slow fault never waited"
        route.check_refused(env, state, outcome, cell.expected)
        route.check_recorded(env, state, before, outcome)
        assert outcome.wall < DEADLINE_S, f"answered after {outcome.wall:.1f} s"
        route.recover(env, state, outcome)
    finally:
        route.cleanup(env, state)
        env.quiet(settle=route.lingers)
        env.injector.stop()
