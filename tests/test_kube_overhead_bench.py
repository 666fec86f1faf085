"""``benchmarks/kube_overhead.py`` at a tiny scale, so that the benchmark keeps working while the
Kubernetes paths change: the local stack, the three kubeconfigs (one from ``wardgate kubeconfig``
per wardgate path), the client process and its checks (100 pods every way, the on-call email
masked through wardgate, the same bytes on both wardgate paths), kubectl, the profile and the
report. One run for the module (about 20 s).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import their neighbours by name

import kube_overhead


@pytest.fixture(scope="module")
def run() -> tuple[Any, argparse.Namespace]:
    args = argparse.Namespace(
        calls=2, block=1, warmup=0, kubectl=1, profile=False, profile_calls=2, profile_after=True
    )
    return kube_overhead.run(args), args


def test_every_path_answers_the_same_pods_masked_through_wardgate(
    run: tuple[Any, argparse.Namespace],
) -> None:
    results, _ = run
    facts = results.facts
    assert facts["same_body"] is True
    assert facts["direct_masked"] == 0
    # every pod: its on-call email and four IP values (podIP, podIPs[0].ip, hostIP, hostIPs[0].ip)
    assert facts["lambda_masked"] == facts["listener_masked"] == 5 * kube_overhead.PODS
    assert facts["lambda_bytes"] == facts["listener_bytes"] > facts["direct_bytes"]
    for kind in (results.client, results.raw, results.kubectl):
        assert {path: len(samples) for path, samples in kind.items()} == {
            path: 2 if kind is not results.kubectl else 1 for path in kube_overhead.PATHS
        }
    # each list through wardgate is recorded (request and response events), in memory
    assert facts["recorded_events"] >= 2 * 2 * 2 * 2 and facts["index_entries"] >= 2 * 2 * 2


def test_the_report_has_its_tables_targets_and_profile(run: tuple[Any, argparse.Namespace]) -> None:
    results, args = run
    summary, text = kube_overhead.report(results, args)
    assert summary.count("p50 ≤ 1.5x direct") == 2 and re.search(r"\*\*(met|missed)\*\*", summary)
    for label in kube_overhead.LABELS.values():
        assert text.count(f"| {label} |") == 3  # deserialised, HTTP alone, kubectl
    assert "masking the answer (`mask_kubernetes_body`)" in text
    assert "the listener's event loop" in text and "`GatewayServer.dispatch`" in text
    figures = json.loads(re.search(r"<!-- figures (\{.*\}) -->", text).group(1))  # type: ignore[union-attr]
    assert set(figures) == {"direct_p50", "lambda_p50", "listener_p50"}
    assert all(value > 0 for value in figures.values())
