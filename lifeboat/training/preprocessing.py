"""Preprocessing: a dataset's raw labelled CSVs -> de-duplicated rows, a deterministic train/holdout split,
features.

The steps, each a pure ``DataFrame -> DataFrame`` transform driven by the dataset spec, run by
``jobs/preprocess.py``:

1. :func:`.reading.validate_inputs` - every file against the spec's columns, on the driver, before Spark
   starts;
2. :func:`.reading.read_inputs` - each CSV read by Spark with the spec's types, tagged with its position,
   plus the row key and the 0/1 label (:mod:`lifeboat.dataset.labels`);
3. :mod:`lifeboat.training.dedup` - one row per id (the latest file wins; the same id with two labels
   fails); when no id repeats (always, for a dataset without id) nothing is removed and the rows are only
   spread over the cores by key;
4. :func:`.holdout.assign_split` - train or holdout by a salted hash of the row key (stable across runs);
5. :func:`fit_encoder_on_train` - the spec's encoder fitted on the train split (collected to the driver);
6. :func:`encode_features` - :func:`lifeboat.dataset.encoder.encode`, the very function serving runs,
   inside Spark.

:func:`run_preprocess` writes everything under one output folder atomically
(:func:`.output.atomic_directory`)::

    features/           parquet: _key, _label, split, one float32 column per feature
    holdout_raw/        parquet: raw columns (label included), _key, _label of the holdout (scored by the
                        gate and the parity check)
    train_raw/          parquet: the same for the train split (the drift reference)
    encoder.json        lifeboat.dataset.fitted.FittedEncoder fitted on the train split (embeds the spec)
    summary.json        dataset, spec fingerprint, inputs (md5, rows), duplicates removed, split sizes and
                        positive rates, settings
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
from lifeboat.dataset.encoder import FittedEncoder, encode, fit
from lifeboat.dataset.models import DatasetSpec
from lifeboat.training.dedup import deduplicate, duplicate_counts, id_statistics, label_conflicts
from lifeboat.training.errors import PreprocessError
from lifeboat.training.holdout import assign_split, check_split, split_counts
from lifeboat.training.output import (
    ENCODER_FILE,
    FEATURES_DIR,
    HOLDOUT,
    HOLDOUT_RAW_DIR,
    ID,
    LABEL,
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
    raw_columns,
    read_inputs,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

logger = logging.getLogger(__name__)


# --- Transform ----------------------------------------------------------------------------------------------


def fit_encoder_on_train(frame: DataFrame, spec: DatasetSpec) -> FittedEncoder:
    """Fit the spec's encoder on the train split's raw rows.

    Only the spec's input columns are collected to the driver (with Arrow): a few hundred bytes per row, so
    this is fine up to several million rows. Rows are sorted by key (on the driver: no Spark sort needed) so
    the fit never depends on partitioning.
    """
    from pyspark.sql import functions as F  # noqa: N812

    train = to_pandas(frame.filter(F.col(SPLIT) == TRAIN).select(ID, *spec.input_columns))
    train = train.sort_values(ID, kind="stable").reset_index(drop=True)
    return fit(spec, train.drop(columns=[ID]))


def feature_schema(feature_names: Sequence[str]) -> StructType:
    """Schema of the feature table: key, label, split, then one FloatType column per feature."""
    from pyspark.sql.types import FloatType, LongType, StringType, StructField, StructType

    return StructType(
        [
            StructField(ID, LongType(), False),
            StructField(LABEL, LongType(), True),
            StructField(SPLIT, StringType(), True),
            *(StructField(name, FloatType(), False) for name in feature_names),
        ]
    )


def encode_features(frame: DataFrame, encoder: FittedEncoder) -> DataFrame:
    """Encode raw rows with :func:`lifeboat.dataset.encoder.encode` (the serving code path) inside Spark.

    ``frame`` must hold the key and the spec's input columns; the 0/1 label and ``split`` are carried along
    when present (null otherwise). Features come out as float32, exactly what serving feeds the ONNX model.
    """
    from pyspark.sql import functions as F  # noqa: N812

    encoder_data = encoder.to_dict()  # what the executors rebuild the encoder from
    names = list(encoder.feature_names)
    carried = {LABEL: "long", SPLIT: "string"}
    selected = frame.select(
        ID,
        *encoder.spec.input_columns,
        *(
            (F.col(c) if c in frame.columns else F.lit(None)).cast(kind).alias(c)
            for c, kind in carried.items()
        ),
    )

    def encode_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        local = FittedEncoder.from_dict(encoder_data)
        for batch in batches:
            matrix = encode(local, batch)
            out = pd.DataFrame(matrix, columns=names, index=batch.index)
            out.insert(0, SPLIT, batch[SPLIT])
            out.insert(0, LABEL, batch[LABEL])
            out.insert(0, ID, batch[ID])
            yield out

    return selected.mapInPandas(encode_batches, schema=feature_schema(names))


# --- Load ---------------------------------------------------------------------------------------------------


def run_preprocess(
    spark: SparkSession,
    files: Sequence[InputFile],
    output: Path,
    holdout_percent: int,
    salt: int,
    spec: DatasetSpec,
) -> dict[str, Any]:
    """Read, de-duplicate, split, fit, encode and write validated ``files`` of the ``spec``'s dataset to
    ``output``; return the summary.

    Raises :class:`PreprocessError` (and writes nothing) for label conflicts across files or a split missing a
    class.
    """
    from pyspark.sql import functions as F  # noqa: N812

    if not files:
        raise PreprocessError(["no input files"])
    started = time.monotonic()
    durations: dict[str, float] = {"validate": round(sum(f.validate_seconds for f in files), 2)}
    with timed_step(durations, "read"):
        combined = read_inputs(spark, files, spec)
    stats = id_statistics(combined).cache()
    rows: DataFrame | None = None
    try:
        with timed_step(durations, "duplicates"):
            raw = [c.name for c in raw_columns(spec)]
            duplicates = duplicate_counts(combined, stats, raw)
            if duplicates.conflicting_ids:
                raise PreprocessError(
                    label_conflicts(combined, stats, spec.id_column or ID, spec.label.column)
                )
        with timed_step(durations, "split"):
            # A CSV is read as one partition (multiLine): spread the rows over the cores by key, which
            # is also the distribution de-duplication needs, so the encoding and the writes run in parallel.
            spread = combined.repartition(max(1, spark.sparkContext.defaultParallelism), ID)
            unique = deduplicate(spread) if duplicates.repeated else spread
            rows = assign_split(unique, holdout_percent, salt).drop(SOURCE_INDEX, SOURCE_FILE, SOURCE_ROW)
            rows = rows.cache()
            counts = split_counts(rows)
            check_split(counts, holdout_percent)
        with timed_step(durations, "fit_encoder"):
            encoder = fit_encoder_on_train(rows, spec)
        features = encode_features(rows, encoder)

        summary: dict[str, Any] = {
            "dataset": spec.name,
            "dataset_spec_fingerprint": spec.fingerprint(),
            "id_column": spec.id_column,
            "label_column": spec.label.column,
            "positive_label": spec.label.positive,
            "inputs": [f.as_dict() for f in files],
            "data_fingerprint": data_fingerprint(f.md5 for f in files),
            "rows_in": duplicates.rows_in,
            "exact_duplicates_removed": duplicates.exact_duplicates,
            "superseded_rows_removed": duplicates.superseded,
            "rows_out": duplicates.passengers,
            "train": counts[TRAIN],
            "holdout": counts[HOLDOUT],
            "feature_names": list(encoder.feature_names),
            "encoding_version": encoder.encoding_version,
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
                raw_out = [*raw, ID, LABEL]
                for split, folder in ((HOLDOUT, HOLDOUT_RAW_DIR), (TRAIN, TRAIN_RAW_DIR)):
                    selected = rows.filter(F.col(SPLIT) == split).select(*raw_out)
                    selected.sortWithinPartitions(ID).write.parquet(str(staging / folder))
            encoder.save(staging / ENCODER_FILE)
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
