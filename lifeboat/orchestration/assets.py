"""Airflow Assets: each dataset's incoming data starts its retraining run; a promotion is an event too.

* ``<dataset>_incoming`` (``x-lifeboat://<dataset>/incoming``): ``lifeboat add-batch`` and
  ``lifeboat new-batch`` record an event on it through Airflow's REST API (``POST /api/v2/assets/events``,
  the batch's DVC md5 and row count in ``extra``). ``<dataset>_retrain`` is scheduled on its cron schedule
  OR that asset (``AssetOrTimeSchedule``), so a new batch starts a run at once and the nightly run stays.
* ``<dataset>_champion`` (``x-lifeboat://<dataset>/champion``): the retrain DAG's ``promote`` task has it
  as its outlet (with the promoted version in ``extra``), so other DAGs can be scheduled on promotions.

The ``x-`` scheme keeps Airflow from normalising the URI as a file or object-store path: the incoming folder
is a different path on the host and in the containers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow.sdk import Asset

    from lifeboat.settings import Settings

logger = logging.getLogger(__name__)

URI_SCHEME = "x-lifeboat"


class AssetsClient(Protocol):
    """The part of :class:`lifeboat.orchestration.airflow_api.AirflowClient` that asset events use."""

    def asset_id(self, name: str) -> int | None: ...

    def create_asset_event(self, asset_id: int, extra: Mapping[str, Any]) -> dict[str, Any]: ...


def incoming_name(dataset: str) -> str:
    """The name of ``dataset``'s incoming-data asset."""
    return f"{dataset}_incoming"


def champion_name(dataset: str) -> str:
    """The name of ``dataset``'s champion asset."""
    return f"{dataset}_champion"


def incoming_asset(dataset: str) -> Asset:
    """The asset a new batch of ``dataset`` updates (the retrain DAG is scheduled on it)."""
    from airflow.sdk import Asset

    return Asset(name=incoming_name(dataset), uri=f"{URI_SCHEME}://{dataset}/incoming", group="lifeboat")


def champion_asset(dataset: str) -> Asset:
    """The asset a promotion of ``dataset``'s champion updates (the promote task's outlet)."""
    from airflow.sdk import Asset

    return Asset(name=champion_name(dataset), uri=f"{URI_SCHEME}://{dataset}/champion", group="lifeboat")


@dataclass(frozen=True)
class Announcement:
    """What announcing new data did: the recorded event's id (None: none), and a line for people."""

    event_id: int | None
    message: str


def announce_new_data(client: AssetsClient, dataset: str, extra: Mapping[str, Any]) -> Announcement:
    """Record an event on ``dataset``'s incoming asset with ``extra``; the retrain DAG starts a run on it.

    An asset Airflow does not know yet (its DAG not parsed) is not an error: the data is in place and the
    next scheduled run trains on it; the message says so.
    """
    name = incoming_name(dataset)
    asset_id = client.asset_id(name)
    if asset_id is None:
        return Announcement(
            None, f"Airflow has no asset {name} yet: the next scheduled run will use the data"
        )
    event = client.create_asset_event(asset_id, extra)
    event_id = int(event["id"])
    logger.info("asset event %d on %s: %s", event_id, name, dict(extra))
    return Announcement(event_id, f"asset event {event_id} on {name}: {dataset}_retrain starts a run")


def announce_to_embedded_stack(settings: Settings, extra: Mapping[str, Any]) -> Announcement:
    """:func:`announce_new_data` to the embedded stack's Airflow, when it runs here (``lifeboat up``).

    Never raises for an unreachable Airflow: the batch is already added, so the failure is reported in
    the message and the next scheduled run picks the data up.
    """
    import httpx

    from lifeboat.orchestration.airflow_api import AirflowApiError
    from lifeboat.stack import embedded, processes

    paths = processes.StackPaths.from_settings(settings)
    if processes.running_pid(paths, "airflow") is None:
        return Announcement(None, "the embedded Airflow is not running: the next scheduled run uses the data")
    try:
        with embedded.airflow_client(settings) as client:
            return announce_new_data(client, settings.dataset, extra)
    except (AirflowApiError, httpx.HTTPError) as exc:
        logger.warning("could not record the asset event: %s", exc)
        return Announcement(None, f"could not tell Airflow ({exc}): the next scheduled run will use the data")


def batch_extra(dataset: str, batch: Path) -> dict[str, Any]:
    """The ``extra`` of a new batch's event: dataset, file name, DVC md5 and rows (its lineage)."""
    from lifeboat.data import versioning as data

    return {
        "dataset": dataset,
        "batch": batch.name,
        "md5": data.pointer_md5(batch),
        "rows": data.count_rows(batch),
    }


def announce_batch(settings: Settings, batch: Path) -> Announcement:
    """Tell the embedded stack's Airflow that ``batch`` was added (``lifeboat add-batch``, ``new-batch``)."""
    return announce_to_embedded_stack(settings, batch_extra(settings.dataset, batch))
