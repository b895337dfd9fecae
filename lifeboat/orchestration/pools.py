"""One Airflow pool of one slot per dataset for the tasks that move its registry aliases.

``max_active_runs`` is per DAG, so without it a ``<dataset>_retrain`` run's ``promote`` and a
``<dataset>_rollback`` run's ``rollback`` could move the same aliases at the same time. Both tasks run in
:func:`registry_pool` of their dataset, which has one slot: one waits for the other.

Airflow never schedules a task whose pool does not exist (the scheduler logs "Tasks using non-existent
pool"), so every dataset's pool is created before its DAGs run: by ``lifeboat up`` through the REST API
(:func:`ensure_pools`) and, in compose, by ``airflow-init`` (``python -m lifeboat.orchestration.pools FILE``
writes the file ``airflow pools import`` reads).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

#: Slots of each registry pool: one alias move at a time per dataset.
REGISTRY_POOL_SLOTS = 1


class PoolsClient(Protocol):
    """The part of :class:`lifeboat.orchestration.airflow_api.AirflowClient` that pools use."""

    def pool(self, name: str) -> dict[str, Any] | None: ...

    def put_pool(self, name: str, slots: int, description: str) -> None: ...


def registry_pool(dataset: str) -> str:
    """The pool of ``dataset``'s ``promote`` and ``rollback`` tasks."""
    return f"lifeboat_{dataset}_registry"


def _description(dataset: str) -> str:
    return f"lifeboat: one alias move at a time in {dataset}'s registry (promote, rollback)"


def pools_document(datasets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The registry pools of ``datasets`` in the format of ``airflow pools import``."""
    return {
        registry_pool(d): {
            "slots": REGISTRY_POOL_SLOTS,
            "description": _description(d),
            "include_deferred": False,
        }
        for d in datasets
    }


def ensure_pools(client: PoolsClient, datasets: Sequence[str]) -> list[str]:
    """Create (or fix the slots of) every dataset's registry pool; return the pools created or changed."""
    changed = []
    for dataset in datasets:
        name = registry_pool(dataset)
        found = client.pool(name)
        if found is not None and found.get("slots") == REGISTRY_POOL_SLOTS:
            continue
        client.put_pool(name, REGISTRY_POOL_SLOTS, _description(dataset))
        changed.append(name)
        logger.info("Airflow pool %s: %d slot", name, REGISTRY_POOL_SLOTS)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lifeboat.orchestration.pools FILE``: write the pools of every dataset spec to FILE."""
    from lifeboat.orchestration.dags import discover_datasets
    from lifeboat.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m lifeboat.orchestration.pools", description=main.__doc__)
    parser.add_argument("file", type=Path, help="where to write the JSON for `airflow pools import`")
    args = parser.parse_args(argv)
    # Settings() rather than the cached get_settings(): this command reads its environment now.
    datasets = [entry.name for entry in discover_datasets(Settings().data_root)]
    args.file.write_text(json.dumps(pools_document(datasets), indent=2) + "\n")
    print(f"lifeboat: {len(datasets)} registry pool(s) written to {args.file}: {', '.join(datasets)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
