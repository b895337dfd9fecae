"""Preprocessing: raw passenger CSVs -> de-duplicated rows, a deterministic train/holdout split, features.

The steps, each a pure ``DataFrame -> DataFrame`` transform, run by ``jobs/preprocess.py``:

1. :func:`.reading.validate_inputs` - every file against the passenger schema, on the driver, before Spark
   starts;
2. :func:`.reading.read_inputs` - each CSV read by Spark with an explicit schema, tagged with its position;
3. :mod:`lifeboat.training.dedup` - one row per PassengerId (the latest file wins; the same PassengerId with
   two labels fails); when no PassengerId repeats there is nothing to de-duplicate and the rows are only
   spread over the cores by PassengerId;
4. :func:`.holdout.assign_split` - train or holdout by a salted hash of PassengerId (stable across runs);
5. :func:`fit_spec_on_train` - the feature spec fitted on the train split (collected to the driver);
6. :func:`encode_features` - :func:`lifeboat.dataset.features.encode`, the very function serving runs,
   inside Spark.

:func:`run_preprocess` writes everything under one output folder atomically
(:func:`.output.atomic_directory`)::

    features/           parquet: PassengerId, Survived, split, one float32 column per FEATURE_NAMES
    holdout_raw/        parquet: raw columns + Survived of the holdout (scored by the gate and parity check)
    train_raw/          parquet: raw columns + Survived of the train split (the drift reference)
    feature_spec.json   lifeboat.dataset.features.FeatureSpec fitted on the train split
    summary.json        inputs (md5, rows), duplicates removed, split sizes and positive rates, settings
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lifeboat.data.lineage import data_fingerprint
from lifeboat.dataset.features import FeatureSpec, encode, fit_feature_spec
from lifeboat.training.dedup import deduplicate, duplicate_counts, id_statistics, label_conflicts
from lifeboat.training.errors import PreprocessError
from lifeboat.training.holdout import assign_split, check_split, split_counts
from lifeboat.training.output import (
    FEATURES_DIR,
    HOLDOUT,
    HOLDOUT_RAW_DIR,
    ID,
    LABEL,
    RAW_COLUMNS,
    SPEC_FILE,
    SPLIT,
    SUMMARY_FILE,
    TRAIN,
    TRAIN_RAW_DIR,
    atomic_directory,
    timed_step,
    to_pandas,
    write_json,
)
from lifeboat.training.reading import (
    SOURCE_FILE,
    SOURCE_INDEX,
    SOURCE_ROW,
    InputFile,
    read_inputs,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

logger = logging.getLogger(__name__)


#: Raw columns :func:`lifeboat.dataset.features.fit_feature_spec` reads: only these are collected to the
# driver.
SPEC_FIT_COLUMNS: tuple[str, ...] = ("Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked")


# --- Extract ------------------------------------------------------------------------------------------------


# --- Transform ----------------------------------------------------------------------------------------------


def fit_spec_on_train(frame: DataFrame) -> FeatureSpec:
    """Fit the feature spec on the train split's raw rows.

    Only :data:`SPEC_FIT_COLUMNS` are collected to the driver (with Arrow): a few hundred bytes per row, so
    this is fine up to several million rows. Rows are sorted by PassengerId (on the driver: no Spark sort
    needed) so the fit never depends on partitioning.
    """
    from pyspark.sql import functions as F  # noqa: N812

    train = to_pandas(frame.filter(F.col(SPLIT) == TRAIN).select(ID, *SPEC_FIT_COLUMNS))
    train = train.sort_values(ID, kind="stable").reset_index(drop=True)
    return fit_feature_spec(train.drop(columns=[ID]))


def feature_schema(feature_names: Sequence[str]) -> StructType:
    """Schema of the feature table: id, label, split, then one FloatType column per feature."""
    from pyspark.sql.types import FloatType, LongType, StringType, StructField, StructType

    return StructType(
        [
            StructField(ID, LongType(), False),
            StructField(LABEL, LongType(), True),
            StructField(SPLIT, StringType(), True),
            *(StructField(name, FloatType(), False) for name in feature_names),
        ]
    )


def encode_features(frame: DataFrame, spec: FeatureSpec) -> DataFrame:
    """Encode raw rows with :func:`lifeboat.dataset.features.encode` (the serving code path) inside Spark.

    ``frame`` must hold the raw columns; ``Survived`` and ``split`` are carried along when present (null
    otherwise). Features come out as float32, exactly what serving feeds the ONNX model.
    """
    from pyspark.sql import functions as F  # noqa: N812

    spec_data = spec.to_dict()
    names = list(spec.feature_names)
    carried = {LABEL: "long", SPLIT: "string"}
    selected = frame.select(
        *RAW_COLUMNS,
        *(
            (F.col(c) if c in frame.columns else F.lit(None)).cast(kind).alias(c)
            for c, kind in carried.items()
        ),
    )

    def encode_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        local_spec = FeatureSpec.from_dict(spec_data)
        for batch in batches:
            matrix = encode(batch, local_spec)
            out = pd.DataFrame(matrix, columns=names, index=batch.index)
            out.insert(0, SPLIT, batch[SPLIT])
            out.insert(0, LABEL, batch[LABEL])
            out.insert(0, ID, batch[ID])
            yield out

    return selected.mapInPandas(encode_batches, schema=feature_schema(names))


# --- Load ---------------------------------------------------------------------------------------------------


def run_preprocess(
    spark: SparkSession, files: Sequence[InputFile], output: Path, holdout_percent: int, salt: int
) -> dict[str, Any]:
    """Read, de-duplicate, split, fit, encode and write validated ``files`` to ``output``; return the summary.

    Raises :class:`PreprocessError` (and writes nothing) for label conflicts across files or a split missing a
    class.
    """
    from pyspark.sql import functions as F  # noqa: N812

    if not files:
        raise PreprocessError(["no input files"])
    started = time.monotonic()
    durations: dict[str, float] = {"validate": round(sum(f.validate_seconds for f in files), 2)}
    with timed_step(durations, "read"):
        combined = read_inputs(spark, files)
    stats = id_statistics(combined).cache()
    rows: DataFrame | None = None
    try:
        with timed_step(durations, "duplicates"):
            duplicates = duplicate_counts(combined, stats)
            if duplicates.conflicting_ids:
                raise PreprocessError(label_conflicts(combined, stats))
        with timed_step(durations, "split"):
            # A CSV is read as one partition (multiLine): spread the rows over the cores by PassengerId, which
            # is also the distribution de-duplication needs, so the encoding and the writes run in parallel.
            spread = combined.repartition(max(1, spark.sparkContext.defaultParallelism), ID)
            unique = deduplicate(spread) if duplicates.repeated else spread
            rows = assign_split(unique, holdout_percent, salt).drop(SOURCE_INDEX, SOURCE_FILE, SOURCE_ROW)
            rows = rows.cache()
            counts = split_counts(rows)
            check_split(counts, holdout_percent)
        with timed_step(durations, "feature_spec"):
            spec = fit_spec_on_train(rows)
        features = encode_features(rows, spec)

        summary: dict[str, Any] = {
            "inputs": [f.as_dict() for f in files],
            "data_fingerprint": data_fingerprint(f.md5 for f in files),
            "rows_in": duplicates.rows_in,
            "exact_duplicates_removed": duplicates.exact_duplicates,
            "superseded_rows_removed": duplicates.superseded,
            "rows_out": duplicates.passengers,
            "train": counts[TRAIN],
            "holdout": counts[HOLDOUT],
            "feature_names": list(spec.feature_names),
            "encoding_version": spec.encoding_version,
            "holdout_percent": holdout_percent,
            "salt": salt,
            "spark_version": spark.version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with atomic_directory(output) as staging:
            with timed_step(durations, "encode_and_write"):
                # Sorted within partitions (no extra shuffle): the same input always gives the same files.
                features.sortWithinPartitions(ID).write.parquet(str(staging / FEATURES_DIR))
            with timed_step(durations, "write_raw"):
                raw_out = [*RAW_COLUMNS, LABEL]
                for split, folder in ((HOLDOUT, HOLDOUT_RAW_DIR), (TRAIN, TRAIN_RAW_DIR)):
                    selected = rows.filter(F.col(SPLIT) == split).select(*raw_out)
                    selected.sortWithinPartitions(ID).write.parquet(str(staging / folder))
            spec.save(staging / SPEC_FILE)
            summary["duration_seconds"] = round(time.monotonic() - started, 2)
            summary["durations_seconds"] = durations
            write_json(staging / SUMMARY_FILE, summary)
    finally:
        if rows is not None:
            rows.unpersist()
        stats.unpersist()
        combined.unpersist()
    logger.info(
        "preprocessed %d input rows into %d (train %d, holdout %d) in %s",
        duplicates.rows_in,
        duplicates.passengers,
        counts[TRAIN]["rows"],
        counts[HOLDOUT]["rows"],
        output,
    )
    return summary
