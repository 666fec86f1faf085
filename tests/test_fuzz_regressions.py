"""Crashes the fuzz harnesses (fuzz/) found, each replayed on the function that crashed.

Every input here is also a seed of its harness (fuzz/corpus/<target>/), so CI's fuzz runs replay
it too; fuzz/README.md lists them with their fixes.
"""

from __future__ import annotations

import pytest

from wardgate.errors import BadRequest
from wardgate.operations import UnparseableOperation
from wardgate.operations.k8s import parse_k8s_request
from wardgate.proxies.http import normalise_path

# ---------------------------------------------------------------- fuzz/http_path.py, k8s_request.py


@pytest.mark.parametrize("raw", ["/\udce7", "/a/\udc99b", "/%41\ud800"])
def test_a_lone_surrogate_in_the_path_is_bad_path_not_a_crash(raw: str) -> None:
    # A JSON event can carry "\udce7"; it cannot be encoded, so unquote_to_bytes raised
    # UnicodeEncodeError out of normalise_path (a 500 on /http/ and /k8s/).
    with pytest.raises(BadRequest) as refused:
        normalise_path(raw)
    assert refused.value.code == "bad_path"
    with pytest.raises(UnparseableOperation):
        parse_k8s_request("GET", raw)
