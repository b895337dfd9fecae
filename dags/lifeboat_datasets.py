"""
### lifeboat_datasets - `<dataset>_retrain` and `<dataset>_rollback` for each `data/<dataset>/dataset.yaml`

Wiring only: the DAGs are built by `lifeboat.orchestration.dags` (one definition for every dataset; Titanic
keeps `titanic_retrain` and `titanic_rollback`). Adding a dataset folder with a spec adds its two DAGs at the
next parse; nothing here changes. (The words "airflow" and "dag" in this file make Airflow's safe-mode
scan parse it: it skips files without them.)
"""

from __future__ import annotations

from typing import Any

from lifeboat.orchestration.dags import dataset_dags


def lifeboat_datasets() -> dict[str, Any]:
    """Every dataset's DAGs by DAG id, for the DAG processor to find at module level."""
    return dataset_dags()


globals().update(lifeboat_datasets())
