"""Kubernetes Secrets: every value masked, whatever the detectors would say about it.

A Secret's values are base64 and rarely look like anything a detector knows (a database
password is just a word), so they are masked by position, not by content: every value of
``data`` becomes the base64 of ``[masked]`` (clients that decode it still get valid bytes) and
every value of ``stringData`` becomes ``[masked]``. Keys are kept, so an agent can still see
which keys a Secret has. The ``kubectl.kubernetes.io/last-applied-configuration`` annotation
holds a copy of the whole Secret as applied, so its values are masked the same way, and it stays
the JSON document ``kubectl apply`` reads for its three-way patch (a bare ``[masked]`` made every
client-side apply to an existing Secret fail); one that is not such a document is masked whole.

Secrets are found wherever the API server puts them: a Secret, the items of a SecretList or a
List, watch events (one JSON document per line), and the objects of a Table. Everything else
in the body is then masked by the detectors like any JSON body.

A request for the ``secrets`` resource (``resource="secrets"``) can also come back as metadata
only: the ``PartialObjectMetadata`` objects a Table embeds (what ``kubectl get secrets`` asks for)
or a ``PartialObjectMetadataList``. They name no kind, yet their annotations hold the
last-applied copy of the Secret, so in such a response every one of them is masked as a Secret.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from wardgate.masking.engine import FIELD_MASK, MaskingProfile, MaskingRefused, MaskResult, mask_body

SECRET = "kubernetes_secret"
"""The ``counts`` key of Secret values masked."""
MASKED_DATA = base64.b64encode(FIELD_MASK.encode()).decode("ascii")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SECRET_WORD = re.compile(b"Secret")  # re looks for its rarer first letter: faster than ``in`` here


def mask_kubernetes_body(
    body: bytes, content_type: str | None, profile: MaskingProfile, *, resource: str | None = None
) -> MaskResult[bytes]:
    """Mask a Kubernetes API response: Secret values by position, then the detectors everywhere.
    ``resource``: the resource the request named (``secrets``: metadata-only objects are Secrets)."""
    counts: dict[str, int] = {}
    of_secrets = resource == "secrets"
    if (
        profile.kubernetes_secrets
        and (of_secrets or _SECRET_WORD.search(body) is not None)
        and "json" in (content_type or "").lower()
    ):
        body = _mask_secrets(body, counts, profile.max_depth, of_secrets)
    result = mask_body(body, content_type, None, profile)
    for name, n in result.counts.items():
        counts[name] = counts.get(name, 0) + n
    return MaskResult(result.value, counts, result.truncated, result.content_type, result.content_encoding)


def _mask_secrets(body: bytes, counts: dict[str, int], max_depth: int, of_secrets: bool = False) -> bytes:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MaskingRefused("the Kubernetes response is not valid UTF-8") from None
    try:
        documents = [json.loads(text)]
        joiner = ""
    except ValueError:  # a watch stream: one JSON document per line
        try:
            documents = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise MaskingRefused("the Kubernetes response mentions a Secret but is not valid JSON") from None
        except RecursionError:
            raise MaskingRefused(f"JSON nesting is deeper than the masking limit of {max_depth}") from None
        joiner = "\n"
    except RecursionError:
        raise MaskingRefused(f"JSON nesting is deeper than the masking limit of {max_depth}") from None
    for document in documents:
        for secret in _secrets_in(document, max_depth, of_secrets):
            _mask_secret(secret, counts)
    out = joiner.join(json.dumps(d, ensure_ascii=False, separators=(",", ":")) for d in documents)
    return (out + joiner).encode("utf-8")


def _secrets_in(root: Any, max_depth: int, of_secrets: bool = False) -> list[dict[str, Any]]:
    """Every Secret object in a decoded response (no recursion: depth cannot crash this); with
    ``of_secrets``, every metadata-only object too (they can only be Secrets' metadata)."""
    kinds = ("Secret", "PartialObjectMetadata") if of_secrets else ("Secret",)
    lists = ("SecretList", "PartialObjectMetadataList") if of_secrets else ("SecretList",)
    found: list[dict[str, Any]] = []
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, is_secret_item = stack.pop()
        if depth > max_depth:
            raise MaskingRefused(f"JSON nesting is deeper than the masking limit of {max_depth}")
        if isinstance(node, dict):
            if is_secret_item or node.get("kind") in kinds:
                found.append(node)
            items_are_secrets = node.get("kind") in lists
            for key, value in node.items():
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1, items_are_secrets and key == "items"))
        elif isinstance(node, list):
            stack.extend((item, depth + 1, is_secret_item) for item in node if isinstance(item, dict | list))
    return found


def _mask_secret(secret: dict[str, Any], counts: dict[str, int]) -> None:
    masked = 0
    for key, mask in (("data", MASKED_DATA), ("stringData", FIELD_MASK)):
        values = secret.get(key)
        if isinstance(values, dict):
            for name in values:
                values[name] = mask
                masked += 1
    annotations = (secret.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = _masked_last_applied(annotations[LAST_APPLIED])
        masked += 1
    if masked:
        counts[SECRET] = counts.get(SECRET, 0) + masked


def _masked_last_applied(value: Any) -> str:
    """The applied copy with its values masked as a Secret's are, as compact JSON (what kubectl
    writes); anything but a JSON object whose ``data``/``stringData`` are objects: ``[masked]``."""
    try:
        applied = json.loads(value) if isinstance(value, str) else None
    except (ValueError, RecursionError):
        return FIELD_MASK
    if not isinstance(applied, dict):
        return FIELD_MASK
    for key, mask in (("data", MASKED_DATA), ("stringData", FIELD_MASK)):
        values = applied.get(key)
        if values is None:
            continue
        if not isinstance(values, dict):
            return FIELD_MASK
        for name in values:
            values[name] = mask
    metadata = applied.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        metadata["annotations"].pop(LAST_APPLIED, None)  # a copy of a copy: never kept
    return json.dumps(applied, ensure_ascii=False, separators=(",", ":"))
