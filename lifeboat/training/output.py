"""The preprocess output folder: its names and columns, atomic writes, and the step timer every job uses."""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from lifeboat.dataset.labels import ROW_KEY, TARGET

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


logger = logging.getLogger(__name__)

#: The row key and the 0/1 label of processed rows (see :mod:`lifeboat.dataset.labels`).
ID = ROW_KEY
LABEL = TARGET

SPLIT = "split"


TRAIN = "train"


HOLDOUT = "holdout"


FEATURES_DIR = "features"


HOLDOUT_RAW_DIR = "holdout_raw"


TRAIN_RAW_DIR = "train_raw"


#: The encoder fitted on the train split (:class:`lifeboat.dataset.fitted.FittedEncoder`).
ENCODER_FILE = "encoder.json"


SUMMARY_FILE = "summary.json"


@contextmanager
def timed_step(durations: dict[str, float], step: str, log: logging.Logger | None = None) -> Iterator[None]:
    """Add the wall time of the block to ``durations[step]`` and log ``step <step> took N s`` on ``log``.

    The jobs record their steps this way (``durations_seconds`` in their summaries) so that a benchmark or an
    operator can see where a run's time goes. Spark is lazy: a step's time is that of the actions it runs.
    """
    started = time.monotonic()
    try:
        yield
    finally:
        durations[step] = round(durations.get(step, 0.0) + time.monotonic() - started, 2)
        (log or logger).info("step %s took %.1f s", step, durations[step])


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """Collect a (small) DataFrame to the driver as pandas, through Arrow."""
    return cast(pd.DataFrame, frame.toPandas())


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``target``; on success it replaces ``target`` by a rename.

    A job killed midway leaves only a hidden ``.<name>.tmp-*`` sibling (removed by the next run), never a
    half-written ``target``. An existing ``target`` (a re-run) is first renamed aside and deleted after the
    new folder is in place; between those two renames ``target`` is briefly absent, never partial.
    """
    target = target.resolve()
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in [*parent.glob(f".{target.name}.tmp-*"), *parent.glob(f".{target.name}.old-*")]:
        logger.info("removing %s left by an interrupted run", stale)
        shutil.rmtree(stale, ignore_errors=True)
    token = uuid.uuid4().hex[:12]
    staging = parent / f".{target.name}.tmp-{token}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        old = parent / f".{target.name}.old-{token}"
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    partial.replace(path)


def load_summary(directory: Path) -> dict[str, Any]:
    """The ``summary.json`` of a preprocess output folder."""
    data: dict[str, Any] = json.loads((directory / SUMMARY_FILE).read_text())
    return data
