"""Data API bodies as JSON (``dataapi.service.render_json``): orjson where it writes what json.dumps
wrote, json.dumps where it would not (non-finite doubles, integers beyond 64 bits)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.dataapi.service import DataApiResponse, render_json


def as_before(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def same(a: Any, b: Any) -> bool:
    """JSON values equal, NaN equal to NaN (json.loads reads ``NaN`` as a float that is not)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


FIELDS = st.one_of(
    st.just({"isNull": True}),
    st.booleans().map(lambda v: {"booleanValue": v}),
    st.integers().map(lambda v: {"longValue": v}),  # beyond 64 bits too
    st.floats().map(lambda v: {"doubleValue": v}),  # NaN and infinities too
    st.text()
    .filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
    .map(lambda v: {"stringValue": v}),
    st.lists(st.floats(), max_size=3).map(lambda v: {"arrayValue": {"doubleValues": v}}),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(FIELDS, max_size=4), max_size=5), st.text(max_size=20))
def test_bodies_read_back_as_json_dumps_wrote_them(records: list[list[dict[str, Any]]], label: str) -> None:
    body = {"numberOfRecordsUpdated": 0, "records": records, "columnMetadata": [{"label": label}]}
    rendered = render_json(body)
    assert same(json.loads(rendered), json.loads(as_before(body)))
    assert same(json.loads(rendered), body)


def test_non_finite_doubles_and_huge_integers_are_written_as_json_dumps_wrote_them() -> None:
    for value in (math.nan, math.inf, -math.inf, 2**64, -(2**80)):
        body = {"records": [[{"doubleValue" if isinstance(value, float) else "longValue": value}]]}
        assert render_json(body) == as_before(body)  # NaN, Infinity or the exact integer, never null


def test_a_result_renders_compact_utf8() -> None:
    body = {
        "records": [[{"stringValue": 'Zoë \u2028 \x00 "quoted"'}, {"longValue": 7}]],
        "generatedFields": [],
    }
    assert DataApiResponse(200, body).body_bytes() == as_before(body)
    text_with_null = {"records": [[{"stringValue": "a:null, [null"}]]}
    assert render_json(text_with_null) == as_before(text_with_null)  # the slower path, same bytes
