"""The agent registry and the kill switch, against DynamoDB (moto in-process)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from moto import mock_aws

from wardgate import aws
from wardgate.agents import Agent, AgentRegistry, AgentTable, Revocation, owner_key, registration_mode
from wardgate.dev.stack import FAKE_AWS_ENV
from wardgate.errors import GatewayError
from wardgate.identity import Identity
from wardgate.operations.http import HttpOperation
from wardgate.policy.document import build

ISSUER = "https://idp.example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(restore_env: None) -> Iterator[AgentTable]:
    os.environ.update(FAKE_AWS_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        aws.reset_clients()
        aws.client("dynamodb").create_table(
            TableName="agents",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield AgentTable("agents")
    aws.reset_clients()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(table: AgentTable, clock: Clock) -> AgentRegistry:
    return AgentRegistry(table, clock=clock)


def agent(subject: str = "ci-bot", owner: str = "Alice@Example.com", **kwargs: object) -> Agent:
    values: dict = {
        "issuer": ISSUER,
        "subject": subject,
        "owner": owner,
        "purpose": "CI",
        "connections": ("demo",),
    }
    values.update(kwargs)
    return Agent(**values)


def ident(subject: str = "ci-bot", **kwargs: object) -> Identity:
    return Identity(subject, ISSUER, ("ci",), **kwargs)  # type: ignore[arg-type]


def refused(registry: AgentRegistry, identity: Identity, connection: str | None = "demo") -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        registry.check(identity, connection)
    return caught.value


def test_a_registered_agent_gets_its_owner_from_the_registry_not_from_the_token(registry):
    registry.register(agent(owner_groups=("platform",)), by="admin")
    checked = registry.check(ident(owner="mallory@example.com"), "demo")
    assert checked.owner == "alice@example.com"  # lowercased, and the registry wins over the claim
    assert checked.owner_groups == ("platform",)
    assert checked.registered
    assert checked.to_record()["owner_groups"] == ["platform"]


def test_unregistered_identities_pass_when_optional_and_are_refused_when_required(table, clock):
    mode = {"value": "optional"}
    registry = AgentRegistry(table, registration=lambda: mode["value"], clock=clock)
    unregistered = ident("stranger")
    assert registry.check(unregistered, "demo") is unregistered
    mode["value"] = "required"
    error = refused(registry, unregistered)
    assert (error.status, error.code) == (403, "agent_not_registered")
    assert "stranger" in error.message


def test_registration_mode_reads_policy_settings_and_fails_closed_on_nonsense():
    assert registration_mode({}) == "optional"
    assert registration_mode({"agents": {"registration": "required"}}) == "required"
    assert registration_mode({"agents": {"registration": "sometimes"}}) == "required"


def test_client_credentials_tokens_match_on_client_id(registry):
    registry.register(agent(subject="client-123"), by="admin")
    checked = registry.check(ident("0oa-service-principal", client_id="client-123"), "demo")
    assert checked.owner == "alice@example.com"


def test_an_agent_is_refused_on_connections_it_is_not_registered_for(registry):
    registry.register(agent(connections=("demo", "billing")), by="admin")
    registry.register(agent(subject="wide", connections=("*",)), by="admin")
    assert registry.check(ident(), "billing").registered
    error = refused(registry, ident(), "warehouse")
    assert (error.status, error.code) == (403, "agent_connection_not_allowed")
    assert registry.check(ident("wide"), "warehouse").registered


def test_disabling_takes_effect_once_the_cache_ttl_has_passed(registry, clock):
    registry.register(agent(), by="admin")
    registry.check(ident(), "demo")
    other = AgentRegistry(registry.table)  # another container does the disabling
    result = other.disable("ci-bot", None, by="bob", reason="rotating credentials")
    assert result.agents == ((ISSUER, "ci-bot"),)
    clock.now += registry.ttl_seconds
    error = refused(registry, ident())
    assert (error.status, error.code) == (403, "agent_revoked")
    stored = registry.get(ISSUER, "ci-bot")
    assert stored is not None
    assert (stored.status, stored.status_by, stored.status_reason) == (
        "disabled",
        "bob",
        "rotating credentials",
    )


def test_revoking_an_owner_revokes_every_agent_they_own_and_future_registrations(registry, clock):
    for name in ("a1", "a2", "a3"):
        registry.register(agent(subject=name), by="admin")
    registry.register(agent(subject="bobs", owner="bob@example.com"), by="admin")
    result = registry.revoke_owner("ALICE@example.com", by="secops", reason="offboarded")
    assert sorted(s for _, s in result.agents) == ["a1", "a2", "a3"]
    assert not result.owner_already_revoked
    for name in ("a1", "a2", "a3"):
        error = refused(registry, ident(name))
        assert error.code == "agent_revoked"
        stored = registry.get(ISSUER, name)
        assert stored is not None and stored.status == "revoked" and stored.status_by == "secops"
    assert registry.check(ident("bobs"), "demo").owner == "bob@example.com"
    with pytest.raises(GatewayError) as caught:
        registry.register(agent(subject="a4"), by="admin")
    assert (caught.value.status, caught.value.code) == (409, "owner_revoked")
    # An unregistered identity whose token names the revoked owner is refused too.
    assert refused(registry, ident("unregistered", owner="alice@example.com")).code == "owner_revoked"


def test_the_owner_item_alone_refuses_all_agents_so_nothing_is_half_revoked(registry, clock):
    """If only the owner item was written (a crash between transactions), every agent is refused."""
    registry.register(agent(), by="admin")
    registry.table.put(owner_key("alice@example.com"), {"owner": "alice@example.com", "status": "revoked"})
    clock.now += 1
    assert refused(registry, ident()).code == "owner_revoked"
    # ... and the scheduled check finishes the job on the agent items.
    actions = registry.sweep(provisioned=None)
    assert [a["action"] for a in actions] == ["revoke_agent"]
    stored = registry.get(ISSUER, "ci-bot")
    assert stored is not None and stored.status == "revoked"


def test_revoking_an_owner_again_changes_nothing(registry):
    registry.register(agent(), by="admin")
    first = registry.revoke_owner("alice@example.com", by="secops", reason="offboarded")
    second = registry.revoke_owner("alice@example.com", by="scim", reason="replayed")
    assert first.agents and not second.agents
    assert second.already == first.agents and second.owner_already_revoked
    state = registry.owner("alice@example.com")
    assert state is not None and (state.by, state.reason) == ("secops", "offboarded")  # not overwritten
    stored = registry.get(ISSUER, "ci-bot")
    assert stored is not None and stored.status_by == "secops"


def test_an_owner_with_more_agents_than_one_transaction_holds_is_revoked_completely(registry):
    for i in range(130):
        registry.register(agent(subject=f"bot-{i}"), by="admin")
    result = registry.revoke_owner("alice@example.com", by="secops", reason="offboarded")
    assert len(result.agents) == 130
    assert {a.status for a in registry.agents("alice@example.com")} == {"revoked"}


def test_revoking_unknown_or_ambiguous_subjects_and_missing_reasons_are_clear_errors(registry):
    with pytest.raises(GatewayError) as caught:
        registry.revoke_subject("ghost", None, by="secops", reason="why not")
    assert (caught.value.status, caught.value.code) == (404, "unknown_agent")
    registry.register(agent(subject="twin"), by="admin")
    registry.register(agent(subject="twin", issuer="https://other.example.com"), by="admin")
    with pytest.raises(GatewayError) as caught:
        registry.revoke_subject("twin", None, by="secops", reason="x")
    assert caught.value.status == 400 and "several issuers" in caught.value.message
    with pytest.raises(GatewayError) as caught:
        registry.revoke_subject("twin", ISSUER, by="secops", reason="  ")
    assert caught.value.code == "reason_required"
    done = registry.revoke_subject("twin", ISSUER, by="secops", reason="compromised")
    assert done.agents == ((ISSUER, "twin"),)
    again = registry.revoke_subject("twin", ISSUER, by="secops", reason="compromised")
    assert again.agents == () and again.already == ((ISSUER, "twin"),)
    with pytest.raises(GatewayError) as caught:  # registering a known identity again is a conflict
        registry.register(agent(subject="twin"), by="admin")
    assert caught.value.code == "agent_exists"


def test_revoked_is_final_disabling_does_not_overwrite_it(registry):
    registry.register(agent(), by="admin")
    registry.revoke_subject("ci-bot", ISSUER, by="secops", reason="compromised")
    result = registry.disable("ci-bot", ISSUER, by="bob", reason="tidy up")
    assert result.agents == () and result.already == ((ISSUER, "ci-bot"),)
    stored = registry.get(ISSUER, "ci-bot")
    assert stored is not None and (stored.status, stored.status_reason) == ("revoked", "compromised")


def test_expired_registrations_are_refused_and_disabled_by_the_scheduled_check(registry):
    registry.register(agent(expires_at=int(time.time()) - 5), by="admin")
    registry.register(agent(subject="fresh", expires_at=int(time.time()) + 3600), by="admin")
    assert refused(registry, ident()).code == "agent_expired"
    assert registry.check(ident("fresh"), "demo").registered
    actions = registry.sweep(provisioned=None)
    assert actions == [
        {
            "action": "disable_agent",
            "target": {"issuer": ISSUER, "subject": "ci-bot", "owner": "alice@example.com"},
            "reason": "registration expired",
        }
    ]
    assert registry.sweep(provisioned=None) == []  # nothing left to do


def test_the_scheduled_check_flags_agents_whose_owner_the_idp_does_not_know(registry):
    registry.register(agent(), by="admin")
    registry.register(agent(subject="bobs", owner="bob@example.com"), by="admin")
    actions = registry.sweep(provisioned={"bob@example.com"})
    assert [(a["action"], a["target"]["subject"]) for a in actions] == [("flag_agent", "ci-bot")]
    stored = registry.get(ISSUER, "ci-bot")
    assert stored is not None and stored.flags == ("owner_not_provisioned",)
    assert registry.sweep(provisioned={"bob@example.com"}) == []  # flagged once
    assert [a["action"] for a in registry.sweep(provisioned={"alice@example.com", "bob@example.com"})] == [
        "unflag_agent"
    ]


def test_registry_failures_refuse_with_503(clock, table):
    broken = AgentRegistry(AgentTable("no-such-table"), clock=clock)
    error = refused(broken, ident())
    assert (error.status, error.code) == (503, "registry_unavailable")


def test_last_used_is_written_in_the_background_at_most_once_per_interval(registry, clock):
    registry.register(agent(), by="admin")
    writes: list[int] = []
    touch = registry.table.touch

    def counting(pk: str, when: int) -> None:
        writes.append(when)
        touch(pk, when)

    registry.table.touch = counting  # type: ignore[method-assign]
    for _ in range(5):
        registry.check(ident(), "demo")
    registry.flush()
    assert len(writes) == 1
    stored = registry.get(ISSUER, "ci-bot")
    assert stored is not None and stored.last_used == writes[0]
    clock.now += registry.last_used_interval
    registry.check(ident(), "demo")
    registry.flush()
    assert len(writes) == 2


def test_revocation_listeners_hear_of_every_revocation_and_cannot_undo_it(registry):
    heard: list[Revocation] = []

    def cancel_approvals(revocation: Revocation) -> None:
        heard.append(revocation)

    def broken(revocation: Revocation) -> None:
        raise RuntimeError("approval store down")

    registry.listeners += [cancel_approvals, broken]
    registry.register(agent(), by="admin")
    result = registry.revoke_owner("alice@example.com", by="secops", reason="offboarded")
    assert [(r.kind, r.target, r.agents) for r in heard] == [
        ("owner", "alice@example.com", ((ISSUER, "ci-bot"),))
    ]
    assert result.listener_errors == ("broken: RuntimeError",)
    assert refused(registry, ident()).code == "agent_revoked"


def test_concurrent_revoke_and_requests_end_with_every_request_refused(table):
    """Requests racing an owner revocation: none is refused for a wrong reason, none passes after it."""
    registry = AgentRegistry(table, ttl_seconds=0.05)
    names = [f"bot-{i}" for i in range(20)]
    for name in names:
        registry.register(agent(subject=name), by="admin")
    revoked_at: list[float] = []
    outcomes: list[tuple[float, str]] = []
    stop = threading.Event()

    def requests() -> None:
        checker = AgentRegistry(table, ttl_seconds=0.05)
        while not stop.is_set():
            for name in names:
                started = time.monotonic()
                try:
                    checker.check(ident(name), "demo")
                    outcomes.append((started, "allowed"))
                except GatewayError as error:
                    outcomes.append((started, error.code))

    workers = [threading.Thread(target=requests) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    AgentRegistry(table).revoke_owner("alice@example.com", by="secops", reason="offboarded")
    revoked_at.append(time.monotonic())
    time.sleep(0.3)
    stop.set()
    for worker in workers:
        worker.join()
    assert {code for _, code in outcomes} <= {"allowed", "agent_revoked", "owner_revoked"}
    late = [code for started, code in outcomes if started > revoked_at[0] + 0.05]
    assert late and "allowed" not in late
    assert {a.status for a in registry.agents()} == {"revoked"}


def test_policy_rules_match_owners_and_owner_groups():
    policy = build(
        {
            "version": 1,
            "connections": [{"name": "demo", "kind": "http", "upstream_url": "https://demo.example.com"}],
            "rules": [
                {
                    "name": "platform owners' agents",
                    "effect": "allow",
                    "identity": {"owner_groups": ["platform"]},
                    "match": {"http": {"methods": ["GET"]}},
                },
                {
                    "name": "not mallory's",
                    "effect": "deny",
                    "identity": {"owners": ["mallory@example.com"]},
                    "match": {"http": {"methods": ["*"]}},
                },
            ],
            "packs": [],
            "settings": {"agents": {"registration": "required"}},
        }
    )
    operation = HttpOperation("GET", "/x", "")
    platform = ident(owner="alice@example.com", owner_groups=("platform",), registered=True)
    assert policy.decide(platform, "demo", "http", operation).outcome == "allow"
    assert policy.decide(ident(), "demo", "http", operation).outcome == "deny"
    mallory = ident(owner="mallory@example.com", owner_groups=("platform",), registered=True)
    assert policy.decide(mallory, "demo", "http", operation).rule == "not mallory's"


def test_policy_files_accept_agent_settings_and_owner_groups_and_reject_nonsense(tmp_path):
    from wardgate.policy.files import PolicyFileError, load

    good = tmp_path / "good.yaml"
    good.write_text(
        "rules:\n"
        "  - name: platform agents\n"
        "    effect: allow\n"
        "    identity: {owner_groups: [platform], owners: [alice@example.com]}\n"
        "    match: {http: {methods: [GET]}}\n"
        "settings: {agents: {registration: required}}\n"
    )
    document, policy_set = load([str(good)])
    assert registration_mode(document["settings"]) == "required"
    assert policy_set.rules[0].identity is not None and policy_set.rules[0].identity.owner_groups is not None
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\nsettings: {agents: {registration: sometimes}}\n")
    with pytest.raises(PolicyFileError):
        load([str(bad)])
