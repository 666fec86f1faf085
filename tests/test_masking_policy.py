"""Masking settings in policy: profiles per connection, exemptions per group, errors with file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.test_policy_files import GOOD
from wardgate.masking import mask_json, mask_rows
from wardgate.masking.policy import MaskingPolicy, MaskingSettingsError
from wardgate.policy.files import PolicyFileError, load

CUSTOMER = {"name": "Ada", "email": "ada@example.com", "phone": "+1 415 555 0100", "card": "4242424242424242"}


def masked(policy: MaskingPolicy, connection: str, groups: tuple[str, ...] = ()) -> object:
    return mask_json(CUSTOMER, policy.for_caller(connection, groups).profile).value


def test_no_settings_means_every_builtin_detector_and_secrets_masked():
    applied = MaskingPolicy(None).for_caller("api", ["ci"])
    assert applied.source == "default" and applied.revealed == ()
    assert applied.profile.kubernetes_secrets and applied.profile.on_limit == "refuse"
    assert not applied.profile.allow_binary
    assert masked(MaskingPolicy(None), "api") == {
        "name": "Ada",
        "email": "[masked:email]",
        "phone": "[masked:phone]",
        "card": "************4242",
    }


def test_connection_profiles_replace_the_defaults_keys_and_exemptions_need_group_and_connection():
    policy = MaskingPolicy(
        {
            "default": {"detectors": ["email", "card"], "fields": ["$.name"]},
            "connections": {"crm": {"fields": []}},
            "exemptions": [
                {"groups": ["pii-readers"], "connections": ["crm"], "reveal": ["email"]},
                {"groups": ["auditors"], "reveal": ["fields", "kubernetes_secrets"]},
            ],
        }
    )
    assert masked(policy, "billing") == {
        **CUSTOMER,
        "name": "[masked]",
        "email": "[masked:email]",
        "card": "************4242",
    }
    assert masked(policy, "crm") == {**CUSTOMER, "email": "[masked:email]", "card": "************4242"}
    assert masked(policy, "crm", ("pii-readers",)) == {**CUSTOMER, "card": "************4242"}
    assert masked(policy, "billing", ("pii-readers",))["email"] == "[masked:email]"  # not on billing
    auditor = policy.for_caller("billing", ("auditors",))
    assert auditor.revealed == ("fields", "kubernetes_secrets")
    assert not auditor.profile.kubernetes_secrets and auditor.profile.fields == ()
    assert auditor.to_record() == {"profile": "default", "revealed": ["fields", "kubernetes_secrets"]}
    assert policy.for_caller("crm", ()).to_record() == {"profile": "connections.crm"}


def test_columns_rules_reach_sql_rows():
    policy = MaskingPolicy({"default": {"columns": ["SSN"]}})
    rows = mask_rows(["id", "ssn"], [(1, "078-05-1120")], policy.for_caller("db", ()).profile)
    assert rows.value == [(1, "[masked]")] and rows.counts == {"field": 1}


def test_profiles_are_built_once_per_connection_and_exemption_set():
    policy = MaskingPolicy({"exemptions": [{"groups": ["a", "b"], "reveal": ["email"]}]})
    assert policy.for_caller("x", ["a"]) is policy.for_caller("x", ["b", "c"])
    assert policy.for_caller("x", ["c"]) is not policy.for_caller("x", ["a"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"default": {"detectors": ["credit_card"]}}, "unknown detector 'credit_card'"),
        (
            {"default": {"custom": [{"name": "email", "regex": "x"}]}},
            "detector name 'email' is already taken",
        ),
        (
            {"default": {"custom": [{"name": "x", "regex": "(", "words": ["a"]}]}},
            "exactly one of regex or words",
        ),
        (
            {"default": {"custom": [{"name": "x", "regex": "("}]}},
            "custom detector 'x': missing ), unterminated",
        ),
        ({"default": {"custom": [{"name": "x", "regex": "a*"}]}}, "matches the empty string"),
        ({"default": {"max_bytes": 0}}, "max_bytes must be a positive integer"),
        ({"exemptions": [{"groups": ["g"], "reveal": ["emails"]}]}, "exemption reveals unknown ['emails']"),
        # found by fuzz/policy_yaml.py: it used to apply, then fail every request on the connection
        ({"default": {"fields": ["$.custome[rs*].name"]}}, "is not a JSON path"),
    ],
)
def test_invalid_settings_say_what_is_wrong(settings, message):
    with pytest.raises(MaskingSettingsError) as error:
        MaskingPolicy(settings)
    assert message in str(error.value)


def test_policy_files_report_masking_errors_with_file_and_line(tmp_path: Path):
    text = GOOD + textwrap.dedent(
        """\
        settings:
          masking:
            default:
              custom:
                - {name: badge, regex: "("}
            connections:
              nowhere: {binary: pass}
            exemptions:
              - {groups: [pii], connections: [api, elsewhere], reveal: [email]}
        """
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as error:
        load([str(path)])
    messages = error.value.messages
    assert any(
        m.startswith(f"{path}:18: settings.masking.default.custom[0]: masking: custom detector 'badge'")
        for m in messages
    ), messages
    assert any(
        m.startswith(f"{path}:20: settings.masking.connections.nowhere:")
        and "unknown connection 'nowhere'" in m
        for m in messages
    ), messages
    assert any(
        f"{path}:22: settings.masking.exemptions[0].connections[1]:" in m and "'elsewhere'" in m
        for m in messages
    ), messages


def test_the_schema_rejects_unknown_masking_keys(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD + "settings:\n  masking:\n    default: {on_limt: truncate}\n")
    with pytest.raises(PolicyFileError) as error:
        load([str(path)])
    assert any("settings.masking.default" in m and "on_limt" in m for m in error.value.messages)


def test_a_valid_masking_policy_loads_and_reaches_the_policy_set(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD + "settings:\n  masking:\n    connections:\n      api: {detectors: [card]}\n")
    _, policy_set = load([str(path)])
    applied = policy_set.masking.for_caller("api", ["ci"])
    assert applied.source == "connections.api"
    assert [d.name for d in applied.profile.active] == ["card"]
