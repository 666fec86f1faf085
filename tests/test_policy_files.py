"""Policy files: schema and semantic errors name the file, the line and the field; nothing half-loaded."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wardgate.policy.files import PolicyFileError, load

GOOD = """\
version: 1
connections:
  - name: api
    kind: http
    upstream_url: https://api.example.com
    credential_secret: wardgate/api
    allowed_groups: [ci]
rules:
  - name: read
    effect: allow
    connections: [api]
    match:
      http: {methods: [GET]}
"""


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def problems(*paths: str) -> list[str]:
    with pytest.raises(PolicyFileError) as error:
        load(list(paths))
    return error.value.messages


def test_a_good_file_loads(tmp_path):
    document, policy_set = load([write(tmp_path, "a.yaml", GOOD)])
    assert [r.name for r in policy_set.rules] == ["read"]
    assert document["connections"][0]["name"] == "api"


def test_the_example_policy_in_the_repository_is_valid():
    _, policy_set = load([str(Path(__file__).resolve().parent.parent / "policies")])
    assert len(policy_set.rules) > 5


def test_schema_errors_name_file_line_and_field(tmp_path):
    bad = GOOD.replace("effect: allow", "effect: alow").replace("methods: [GET]", "methods: GET")
    path = write(tmp_path, "bad.yaml", bad)
    messages = problems(path)
    assert any(m.startswith(f"{path}:10: rules[0].effect:") and "alow" in m for m in messages), messages
    assert any(f"{path}:13: rules[0].match.http.methods:" in m for m in messages), messages


def test_unknown_fields_are_errors_not_ignored(tmp_path):
    path = write(
        tmp_path, "typo.yaml", GOOD.replace("    effect: allow", "    effect: allow\n    efect: deny")
    )
    assert f"{path}:11: rules[0].efect: unknown field" in problems(path)


def test_invalid_yaml_and_duplicate_keys(tmp_path):
    broken = write(tmp_path, "broken.yaml", "rules: [\n  - name: x\n")
    assert any(m.startswith(f"{broken}:") and "invalid YAML" in m for m in problems(broken))
    dup = write(
        tmp_path, "dup.yaml", GOOD.replace("    effect: allow", "    effect: allow\n    effect: deny")
    )
    assert any(":11: rules[0].effect: duplicate key" in m for m in problems(dup))


def test_semantic_errors_point_at_the_right_file_and_line(tmp_path):
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(
        tmp_path,
        "b.yaml",
        """\
        rules:
          - name: ok
            effect: deny
          - name: sql rule on an http connection
            effect: deny
            connections: [api]
            match:
              sql: {kinds: [delete]}
        packs:
          - name: no-such-pack
            connections: [api]
        """,
    )
    messages = problems(first, second)
    assert any(
        m.startswith(f"{second}:6: rules[1].connections[0]:") and "never be enforced" in m for m in messages
    )
    assert any(m.startswith(f"{second}:10: packs[0].name:") and "unknown pack" in m for m in messages)


def test_names_must_be_unique_across_files_and_settings_set_once(tmp_path):
    a = write(tmp_path, "a.yaml", GOOD + "settings:\n  unparseable: deny\n")
    b = write(
        tmp_path, "b.yaml", GOOD.replace("name: api", "name: api2") + "settings:\n  unparseable: deny\n"
    )
    messages = problems(a, b)
    assert any(f"{b}:" in m and "settings.unparseable" in m for m in messages), messages


def test_a_folder_loads_every_yaml_file_in_it(tmp_path):
    write(tmp_path, "1.yaml", GOOD)
    write(tmp_path, "2.yml", "rules:\n  - name: more\n    effect: deny\n")
    _, policy_set = load([str(tmp_path)])
    assert {r.name for r in policy_set.rules} == {"read", "more"}
    assert problems(str(tmp_path / "empty-dir-does-not-exist")) != []


RULES_ONLY = """\
version: 1
rules:
  - name: read
    effect: allow
    connections: [api]
    match:
      http: {methods: [GET]}
packs:
  - name: read-only-sql
    connections: [warehouse]
"""


def test_files_without_connections_are_checked_against_the_connections_table(tmp_path):
    # What `policy export` prints declares no connections (they live in the connections table):
    # its rules are checked against the table, as apply checks them.
    path = write(tmp_path, "rules.yaml", RULES_ONLY)
    _, policy_set = load([path], lambda: {"api": "http", "warehouse": "sql"})
    assert "read" in [r.name for r in policy_set.rules]
    with pytest.raises(PolicyFileError) as error:
        load([path], lambda: {"api": "http"})
    messages = error.value.messages
    # The pack expands to several rules; its unknown connection is reported once.
    assert messages == [
        f"{path}:10: packs[0].connections[0]: pack 'read-only-sql' names unknown connection 'warehouse'"
    ]
    with pytest.raises(PolicyFileError) as error:
        load([path], lambda: {"api": "sql", "warehouse": "sql"})
    assert any("connection 'api' is a sql connection" in m for m in error.value.messages)


def test_with_no_table_to_read_the_names_of_stored_connections_are_left_unchecked(tmp_path):
    _, policy_set = load([write(tmp_path, "rules.yaml", RULES_ONLY)])
    assert "read" in [r.name for r in policy_set.rules]
    # A file that declares connections is still checked against them alone.
    with pytest.raises(PolicyFileError):
        load([write(tmp_path, "both.yaml", GOOD.replace("connections: [api]", "connections: [elsewhere]"))])
