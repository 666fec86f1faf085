"""The double's OpenAPI schemas, by the names a real server gives them (``io.k8s.api.core.v1.Pod``).

``DEFINITIONS`` holds every schema in OpenAPI v3 form; ``openapi.py`` serves them in the v3
documents and, rewritten, in the v2 one, and validates objects against them.
"""

from __future__ import annotations

from wardgate.dev.kube.schemas import apps, core, meta
from wardgate.dev.kube.schemas.fields import JSON

DEFINITIONS: dict[str, JSON] = {**meta.DEFINITIONS, **core.DEFINITIONS, **apps.DEFINITIONS}


def _by_group_version_kind() -> dict[tuple[str, str, str], str]:
    names: dict[tuple[str, str, str], str] = {}
    for name, schema in DEFINITIONS.items():
        for entry in schema.get("x-kubernetes-group-version-kind", ()):
            # DeleteOptions and WatchEvent are declared in every group; the kind's own type wins.
            names.setdefault((entry["group"], entry["version"], entry["kind"]), name)
    return names


SCHEMA_BY_GVK: dict[tuple[str, str, str], str] = _by_group_version_kind()


def schema_name(group: str, version: str, kind: str) -> str | None:
    """The schema name of a kind: ("apps", "v1", "Deployment") -> ``io.k8s.api.apps.v1.Deployment``."""
    return SCHEMA_BY_GVK.get((group, version, kind))
