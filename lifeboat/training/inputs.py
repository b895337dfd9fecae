"""The preprocess output folder as training reads it: summary, fitted encoder and the feature splits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeboat.dataset.fitted import EncoderError, FittedEncoder
from lifeboat.training.errors import TrainingInputError
from lifeboat.training.output import (
    ENCODER_FILE,
    FEATURES_DIR,
    HOLDOUT_RAW_DIR,
    ID,
    LABEL,
    SPLIT,
    SUMMARY_FILE,
    TRAIN_RAW_DIR,
    load_summary,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class PreprocessOutput:
    """The pieces of a preprocess output folder that training reads."""

    directory: Path
    summary: dict[str, Any]
    encoder: FittedEncoder

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's input columns, in order."""
        return self.encoder.feature_names


def open_preprocess_output(directory: Path) -> PreprocessOutput:
    """Check a preprocess output folder and read its summary and fitted encoder."""
    directory = directory.resolve()
    missing = [
        name
        for name in (FEATURES_DIR, HOLDOUT_RAW_DIR, TRAIN_RAW_DIR, ENCODER_FILE, SUMMARY_FILE)
        if not (directory / name).exists()
    ]
    if not directory.is_dir() or missing:
        raise TrainingInputError(
            f"{directory} is not a complete preprocess output "
            f"(missing: {', '.join(missing) or 'the folder'}); "
            "run jobs/preprocess.py first"
        )
    try:
        encoder = FittedEncoder.load(directory / ENCODER_FILE)
        summary = load_summary(directory)
    except (EncoderError, OSError, json.JSONDecodeError) as exc:
        raise TrainingInputError(f"{directory}: {exc}") from exc
    return PreprocessOutput(directory=directory, summary=summary, encoder=encoder)


def load_split(spark: SparkSession, data: PreprocessOutput, split: str) -> DataFrame:
    """One split of the feature table: the row key, the 0/1 label and the feature columns."""
    from pyspark.sql import functions as F  # noqa: N812

    frame = spark.read.parquet(str(data.directory / FEATURES_DIR))
    return frame.filter(F.col(SPLIT) == split).select(ID, LABEL, *data.feature_names)
