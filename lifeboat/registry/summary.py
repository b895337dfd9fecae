"""A read-only summary of a registered model's recent versions, aliases and gate decisions (the Models
page)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lifeboat.registry.promotion import parity_from_tags
from lifeboat.registry.store import (
    CHALLENGER,
    CHAMPION,
    GATE_TAG_PREFIX,
    PREVIOUS_CHAMPION,
    PROMOTED_AT_TAG,
    ROLLBACK_TAG_PREFIX,
    RegistryError,
    mlflow_client,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion


def _json_list(raw: str | None) -> list[str]:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return [raw]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _describe_version(model_version: ModelVersion, aliases: Sequence[str]) -> dict[str, Any]:
    """A JSON-friendly view of one version: aliases, creation time, gate outcome, promotion and rollback."""
    tags = dict(model_version.tags or {})
    created = model_version.creation_timestamp
    prefix = f"{GATE_TAG_PREFIX}challenger."
    rollback_tags = {
        k[len(ROLLBACK_TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(ROLLBACK_TAG_PREFIX)
    }
    return {
        "version": str(model_version.version),
        "aliases": sorted(aliases),
        "created_at": datetime.fromtimestamp(created / 1000, UTC).isoformat(timespec="seconds")
        if created
        else None,
        "status": model_version.status,
        "run_id": model_version.run_id,
        "source": model_version.source,
        "gate_decision": tags.get(f"{GATE_TAG_PREFIX}decision"),
        "gate_reasons": _json_list(tags.get(f"{GATE_TAG_PREFIX}reasons")),
        "gate_notes": _json_list(tags.get(f"{GATE_TAG_PREFIX}notes")),
        "gate_compared_with": tags.get(f"{GATE_TAG_PREFIX}champion_version"),
        "gate_evaluated_at": tags.get(f"{GATE_TAG_PREFIX}evaluated_at"),
        "metrics": {k[len(prefix) :]: _parse_float(v) for k, v in tags.items() if k.startswith(prefix)},
        "parity_max_abs_diff": parity_from_tags(tags),
        "promoted_at": tags.get(PROMOTED_AT_TAG),
        "rollback": rollback_tags or None,
    }


def _parse_float(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def model_summary(model_name: str, last_n: int = 10) -> dict[str, Any]:
    """What the UIs and the CLI show: the aliased versions and the last ``last_n`` versions, newest first.

    Each version is described by :func:`_describe_version`. A model that is not registered yet gives
    ``exists: False`` and empty entries (a fresh installation is not an error).
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_client()
    empty: dict[str, Any] = {
        "model_name": model_name,
        "exists": False,
        CHAMPION: None,
        PREVIOUS_CHAMPION: None,
        CHALLENGER: None,
        "versions": [],
    }
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return empty
        raise RegistryError(f"cannot read registered model {model_name}: {exc}") from exc
    alias_map = {alias: str(v) for alias, v in (registered.aliases or {}).items()}
    aliases_of: dict[str, list[str]] = {}
    for alias, version in alias_map.items():
        aliases_of.setdefault(version, []).append(alias)
    quote = '"' if "'" in model_name else "'"
    try:
        recent = client.search_model_versions(
            f"name = {quote}{model_name}{quote}", max_results=max(1, last_n), order_by=["version_number DESC"]
        )
        by_version = {str(v.version): v for v in recent}
        for version in alias_map.values():
            if version not in by_version:
                by_version[version] = client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RegistryError(f"cannot list the versions of {model_name}: {exc}") from exc

    def described(version: str | None) -> dict[str, Any] | None:
        if version is None:
            return None
        return _describe_version(by_version[version], aliases_of.get(version, []))

    return {
        "model_name": model_name,
        "exists": True,
        CHAMPION: described(alias_map.get(CHAMPION)),
        PREVIOUS_CHAMPION: described(alias_map.get(PREVIOUS_CHAMPION)),
        CHALLENGER: described(alias_map.get(CHALLENGER)),
        "versions": [described(str(v.version)) for v in recent][: max(0, last_n)],
    }
