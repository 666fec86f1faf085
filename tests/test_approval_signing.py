"""Signing and binding of approval links: unit tests, no AWS."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from wardgate.approvals.model import ApprovalRequest, Vote
from wardgate.approvals.settings import ApprovalSettings, RuleApproval
from wardgate.approvals.signing import PAGE_TOKEN_SECONDS, LinkError, Signer, binding_of
from wardgate.errors import Forbidden

NOW = 1_800_000_000


def request(**changes: object) -> ApprovalRequest:
    held = {
        "method": "POST",
        "path": "/v1/refunds",
        "query": "",
        "headers": {},
        "body": base64.b64encode(b'{"amount":900}').decode(),
    }
    base = ApprovalRequest(
        request_id="a" * 32,
        record_id="r",
        record_started_at=NOW,
        issuer="https://issuer",
        subject="agent-1",
        owner="alice@example.com",
        groups=("ci",),
        connection="billing",
        kind="http",
        rule="refunds need a human",
        reason="refunds over 500",
        policy_version="p-1",
        operation={"protocol": "http", "method": "POST", "path": "/v1/refunds", "query": ""},
        summary="POST /v1/refunds",
        held=held,
        approvers=("bob@example.com", "carol@example.com"),
        quorum=1,
        any_deny_ends=True,
        mode="one-time",
        window_seconds=0,
        created_at=NOW,
        expires_at=NOW + 3600,
        binding="",
    )
    base = replace(base, **changes)  # type: ignore[arg-type]
    base.binding = binding_of(base)
    return base


def signer(at: float = NOW + 10, key: bytes = b"k" * 32) -> Signer:
    return Signer(lambda: key, clock=lambda: at)


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "agent-2"},
        {"issuer": "https://other"},
        {"connection": "payroll"},
        {"rule": "other"},
        {"policy_version": "p-2"},
        {"expires_at": NOW + 7200},
        {"operation": {"protocol": "http", "method": "POST", "path": "/v1/refunds/all", "query": ""}},
        {"mode": "window"},
    ],
)
def test_the_binding_covers_every_field_that_makes_the_operation(change):
    assert binding_of(request(**change)) != binding_of(request())


def test_the_binding_covers_the_held_body():
    original = request()
    altered = request()
    altered.held = {**altered.held, "body": base64.b64encode(b'{"amount":90000}').decode()}
    assert binding_of(altered) != original.binding


def test_a_signed_link_verifies_for_its_approver():
    held = request()
    token = signer().link_token(held, "bob@example.com")
    claims = signer().verify_link(held, token)
    assert claims.approver == "bob@example.com" and claims.request_id == held.request_id
    assert "task" not in token and len(token) < 400


def expect(code: str, held: ApprovalRequest, token: str, s: Signer | None = None) -> None:
    with pytest.raises(LinkError) as refused:
        (s or signer()).verify_link(held, token)
    assert refused.value.code == code


def test_forged_and_altered_links_are_refused():
    held = request()
    token = signer().link_token(held, "bob@example.com")
    encoded, signature = token.split(".")
    expect("bad_signature", held, f"{encoded}.{'0' * 64}")
    expect("bad_signature", held, token, signer(key=b"another key"))
    claims = json.loads(base64.urlsafe_b64decode(encoded + "=="))
    claims["a"] = "carol@example.com"  # re-address Bob's link to Carol
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    expect("bad_signature", held, f"{altered}.{signature}")
    expect("bad_link", held, "not-a-token")
    expect("bad_link", held, "")


def test_a_link_of_another_request_is_refused():
    held = request()
    other = request(request_id="b" * 32)
    expect("bad_signature", other, signer().link_token(held, "bob@example.com"))


def test_a_changed_stored_operation_fails_its_binding():
    held = request()
    token = signer().link_token(held, "bob@example.com")
    held.operation = {**held.operation, "path": "/v1/refunds/all"}
    expect("binding_mismatch", held, token)


def test_an_expired_link_is_refused():
    held = request()
    token = signer().link_token(held, "bob@example.com")
    expect("link_expired", held, token, signer(at=held.expires_at))


def test_a_link_for_someone_no_longer_an_approver_is_refused():
    held = request()
    token = signer().link_token(held, "mallory@example.com")
    expect("not_an_approver", held, token)


def test_page_tokens():
    held = request()
    claims = signer().verify_link(held, signer().link_token(held, "bob@example.com"))
    page = signer().page_token(claims)
    signer().verify_page_token(claims, page)
    for bad, code in (
        ("", "missing_page_token"),
        ("123.abc", "bad_page_token"),
        ("x.y", "missing_page_token"),
    ):
        with pytest.raises(LinkError) as refused:
            signer().verify_page_token(claims, bad)
        assert refused.value.code == code
    other = signer().verify_link(held, signer().link_token(held, "carol@example.com"))
    with pytest.raises(LinkError):
        signer().verify_page_token(other, page)  # Bob's page token does not decide for Carol's link
    with pytest.raises(LinkError) as old:
        signer(at=NOW + 10 + PAGE_TOKEN_SECONDS + 1).verify_page_token(claims, page)
    assert old.value.code == "page_expired"


def test_quorum_and_any_deny():
    held = request(approvers=("a@x", "b@x", "c@x"), quorum=2)
    assert held.settled() == ""
    held.votes["a@x"] = Vote("a@x", "approve", NOW)
    assert held.settled() == ""
    held.votes["b@x"] = Vote("b@x", "approve", NOW)
    assert held.settled() == "approved"
    denied = request(approvers=("a@x", "b@x", "c@x"), quorum=2)
    denied.votes["c@x"] = Vote("c@x", "deny", NOW)
    assert denied.settled() == "denied"
    patient = request(approvers=("a@x", "b@x", "c@x"), quorum=2, any_deny_ends=False)
    patient.votes["c@x"] = Vote("c@x", "deny", NOW)
    assert patient.settled() == ""
    patient.votes["b@x"] = Vote("b@x", "deny", NOW)
    assert patient.settled() == "denied"  # one approver left cannot reach two


def test_settings_resolve_names_and_addresses_and_cap_windows():
    settings = ApprovalSettings.from_document(
        {
            "settings": {
                "approval": {
                    "approvers": {"leads": ["A@Example.com", "b@example.com"]},
                    "max_window_minutes": 30,
                }
            }
        }
    )
    assert settings.resolve(("leads", "c@example.com", "b@example.com")) == (
        "a@example.com",
        "b@example.com",
        "c@example.com",
    )
    with pytest.raises(Forbidden) as unknown:
        settings.resolve(("no-such-team",))
    assert unknown.value.code == "approval_impossible"
    assert RuleApproval.of({"mode": "window", "minutes": 600}, settings).window_seconds == 30 * 60
    assert RuleApproval.of({}, settings).mode == "one-time"


def test_policy_validation_catches_approver_names_that_resolve_to_nobody():
    from wardgate.policy.document import PolicyError, build

    document = {
        "version": 1,
        "rules": [
            {
                "name": "r",
                "effect": "require_approval",
                "approvers": ["finance-lead"],
                "match": {"http": {"methods": ["POST"]}},
            }
        ],
        "settings": {"approval": {"approvers": {"finance-leads": ["a@example.com"]}}},
    }
    with pytest.raises(PolicyError) as invalid:
        build(document)
    assert "finance-lead" in str(invalid.value.problems)
    document["rules"][0]["approvers"] = ["finance-leads", "cfo@example.com"]
    assert build(document).rules[0].approvers == ("finance-leads", "cfo@example.com")
