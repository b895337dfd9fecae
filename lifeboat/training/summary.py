"""``train_summary.json``: what one training run produced, as a typed record.

Written by the training job (:meth:`lifeboat.training.train.TrainResult.summary`) and read back by the
pipeline (:func:`read_train_summary`), so a renamed or missing key fails at the boundary with the file's
name instead of a ``KeyError`` later. Importing this module loads no Spark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

SUMMARY_NAME = "train_summary.json"
#: Tag of every run and registered version: the fingerprint of the dataset spec it was trained with.
DATASET_SPEC_TAG = "dataset_spec_fingerprint"
#: Version tag: the labelled rows the version was trained on (input rows, before de-duplication).
INPUT_ROWS_TAG = "data_input_rows"


class TrainSummaryError(ValueError):
    """A training summary file is missing, unreadable or not a training summary."""


class Parity(BaseModel):
    """How far the ONNX serving model's probabilities are from Spark's on the holdout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_abs_diff: float
    tolerance: float


class TrainSummary(BaseModel):
    """One training run: the registered version, its metrics and where everything went."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    dataset: str
    dataset_spec_fingerprint: str
    model_name: str
    version: str | None
    registered: bool
    family: str
    params: dict[str, Any]
    cv: dict[str, float]
    cv_by_family: dict[str, dict[str, Any]]
    cv_sample: dict[str, Any]
    holdout: dict[str, float]
    parity: Parity
    spark_model_uri: str
    serving_model_uri: str
    data_fingerprint: str
    preprocess_dir: str
    durations_seconds: dict[str, float]


@dataclass
class TrainResult:
    """What :func:`lifeboat.training.train.run_training` did; :meth:`summary` is ``train_summary.json``."""

    run_id: str
    model_name: str
    version: str | None
    family: str
    params: dict[str, Any]
    cv: dict[str, float]
    cv_by_family: dict[str, dict[str, Any]]
    holdout: dict[str, float]
    parity_max_abs_diff: float
    parity_tolerance: float
    spark_model_uri: str
    serving_model_uri: str
    data_fingerprint: str
    preprocess_dir: str
    durations: dict[str, float]
    cv_sample: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""
    dataset_spec_fingerprint: str = ""

    def summary(self) -> TrainSummary:
        """The typed ``train_summary.json``."""
        return TrainSummary(
            run_id=self.run_id,
            dataset=self.dataset,
            dataset_spec_fingerprint=self.dataset_spec_fingerprint,
            model_name=self.model_name,
            version=self.version,
            registered=self.version is not None,
            family=self.family,
            params=self.params,
            cv=self.cv,
            cv_by_family=self.cv_by_family,
            cv_sample=self.cv_sample,
            holdout=self.holdout,
            parity=Parity(max_abs_diff=self.parity_max_abs_diff, tolerance=self.parity_tolerance),
            spark_model_uri=self.spark_model_uri,
            serving_model_uri=self.serving_model_uri,
            data_fingerprint=self.data_fingerprint,
            preprocess_dir=self.preprocess_dir,
            durations_seconds=self.durations,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``train_summary.json``)."""
        return self.summary().model_dump()


def read_train_summary(path: Path) -> TrainSummary:
    """The summary in ``path``; :class:`TrainSummaryError` naming the file when it is not one."""
    try:
        return TrainSummary.model_validate_json(path.read_text())
    except FileNotFoundError as exc:
        raise TrainSummaryError(f"no training summary at {path}: did the train step run?") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise TrainSummaryError(f"{path} is not a training summary: {where}: {first['msg']}") from exc
