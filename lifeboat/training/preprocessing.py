"""Preprocessing: raw passenger CSVs -> de-duplicated rows, a deterministic train/holdout split, features.

The steps, each a pure ``DataFrame -> DataFrame`` transform, run by ``jobs/preprocess.py``:

1. :func:`validate_inputs` — every file against the passenger schema, on the driver, before Spark starts;
2. :func:`read_inputs` — each CSV read by Spark with an explicit schema, tagged with its input position;
3. :func:`id_statistics` / :func:`duplicate_counts` / :func:`label_conflicts` / :func:`deduplicate` — one row
   per PassengerId (the latest file wins; the same PassengerId with two labels fails); when no PassengerId
   repeats there is nothing to de-duplicate and the rows are only spread over the cores by PassengerId;
4. :func:`assign_split` — train or holdout by a salted hash of PassengerId (stable across runs and batches);
5. :func:`fit_spec_on_train` — the feature spec fitted on the train split (collected to the driver);
6. :func:`encode_features` — :func:`lifeboat.dataset.features.encode`, the very function serving runs, inside
Spark.

:func:`run_preprocess` writes everything under one output folder atomically (:func:`atomic_directory`)::

    features/           parquet: PassengerId, Survived, split, one float32 column per FEATURE_NAMES
    holdout_raw/        parquet: raw columns + Survived of the holdout (scored by the gate and parity check)
    train_raw/          parquet: raw columns + Survived of the train split (the drift reference)
    feature_spec.json   lifeboat.dataset.features.FeatureSpec fitted on the train split
    summary.json        inputs (md5, rows), duplicates removed, split sizes and positive rates, settings
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from lifeboat.data.lineage import data_fingerprint, file_md5
from lifeboat.dataset import schema
from lifeboat.dataset.features import FeatureSpec, encode, fit_feature_spec

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

logger = logging.getLogger(__name__)

ID = schema.ID_COLUMN
LABEL = schema.LABEL_COLUMN
RAW_COLUMNS: tuple[str, ...] = schema.COLUMN_NAMES
SPLIT = "split"
TRAIN = "train"
HOLDOUT = "holdout"

FEATURES_DIR = "features"
HOLDOUT_RAW_DIR = "holdout_raw"
TRAIN_RAW_DIR = "train_raw"
SPEC_FILE = "feature_spec.json"
SUMMARY_FILE = "summary.json"

#: Bookkeeping columns added by :func:`read_inputs` and dropped before anything is written.
SOURCE_INDEX = "_source_index"
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"

#: Raw columns :func:`lifeboat.dataset.features.fit_feature_spec` reads: only these are collected to the
# driver.
SPEC_FIT_COLUMNS: tuple[str, ...] = ("Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked")
#: The whitespace stripped from both ends of every CSV cell: Java's ``\s`` (space, \t, \n, \v, \f, \r).
CELL_WHITESPACE = " \t\n\x0b\f\r"
#: How many conflicting PassengerIds one error message lists.
MAX_REPORTED_CONFLICTS = 20


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


class PreprocessError(ValueError):
    """The input data cannot be preprocessed; ``problems`` holds one readable line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class InputFile:
    """One validated input CSV."""

    path: Path
    md5: str
    rows: int
    positive_rate: float | None
    validate_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for summary.json; the validation time goes to ``durations_seconds``)."""
        data = asdict(self)
        data["path"] = str(self.path)
        del data["validate_seconds"]
        return data


# --- Extract ------------------------------------------------------------------------------------------------


def discover_inputs(raw: Path, incoming: Path | None) -> list[Path]:
    """The training file, then every ``*.csv`` of ``incoming`` (sorted by name; a missing folder is empty).

    The order is the files' precedence: when a PassengerId appears in several files, the last one wins.
    """
    paths = [raw]
    if incoming is not None and incoming.is_dir():
        paths.extend(
            sorted(p for p in incoming.glob("*.csv") if p.is_file() and p.resolve() != raw.resolve())
        )
    return paths


def validate_inputs(paths: Sequence[Path]) -> list[InputFile]:
    """Validate every file with :func:`lifeboat.dataset.schema.validate_csv` (labels required) and checksum
    it.

    Every file is checked before failing, so one run reports all broken files; each problem line names the
    file, row and column.
    """
    problems: list[str] = []
    files: list[InputFile] = []
    for path in paths:
        started = time.monotonic()
        try:
            summary = schema.validate_csv(path, require_label=True)
        except schema.DataValidationError as exc:
            shown = exc.problems[: schema.MAX_REPORTED_PROBLEMS]
            problems.extend(f"{exc.path}: {p}" for p in shown)
            if exc.total > len(shown):
                problems.append(f"{exc.path}: ... and {exc.total - len(shown)} more problem(s)")
            continue
        files.append(
            InputFile(
                path=path,
                md5=file_md5(path),
                rows=summary.rows,
                positive_rate=summary.positive_rate,
                validate_seconds=round(time.monotonic() - started, 2),
            )
        )
        logger.info("validated %s: %d rows in %.1f s", path, summary.rows, files[-1].validate_seconds)
    if problems:
        raise PreprocessError(problems)
    return files


def _spark_type(kind: schema.ColumnKind) -> DataType:
    from pyspark.sql.types import DoubleType, LongType, StringType

    return {"int": LongType(), "float": DoubleType(), "str": StringType()}[kind]


def raw_schema(with_label: bool = True) -> StructType:
    """The typed Spark schema of raw passengers, from :data:`lifeboat.dataset.schema.COLUMNS` (+ the
    label)."""
    from pyspark.sql.types import StructField, StructType

    specs = (*schema.COLUMNS, schema.LABEL) if with_label else schema.COLUMNS
    return StructType([StructField(s.name, _spark_type(s.kind), nullable=not s.required) for s in specs])


def _typed(name: str, kind: schema.ColumnKind) -> Column:
    """A CSV cell parsed the way :func:`lifeboat.dataset.schema.validate_csv` reads it: stripped, empty =
    missing."""
    from pyspark.sql import functions as F  # noqa: N812

    # btrim() with an explicit set strips what the regex ^\s+|\s+$ did, without a regex per cell (5x faster).
    text = F.btrim(F.col(name), F.lit(CELL_WHITESPACE))
    value = F.when(text == "", F.lit(None)).otherwise(text)
    if kind == "str":
        return value
    number = value.cast("double")
    return number.cast("long") if kind == "int" else number


def read_labelled_csv(spark: SparkSession, path: Path, order: int) -> DataFrame:
    """Read one validated CSV into the typed raw schema plus its source (file, position, row order).

    The file's own header decides which column is where (columns may come in any order; optional columns may
    be absent and become null; unknown columns are dropped). Cells are read as text and parsed like the
    validator does, so whatever passed validation parses identically. ``multiLine`` keeps quoted newlines
    inside one record and makes each file one partition, so ``monotonically_increasing_id`` follows the
    file's row order.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.types import StringType, StructField, StructType

    header = list(pd.read_csv(path, nrows=0, dtype=str).columns)
    text_schema = StructType([StructField(name, StringType(), True) for name in header])
    frame = (
        spark.read.option("header", "true")
        .option("multiLine", "true")
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .schema(text_schema)
        .csv(str(path.resolve()))
    )
    columns = [
        (_typed(spec.name, spec.kind) if spec.name in header else F.lit(None))
        .cast(_spark_type(spec.kind))
        .alias(spec.name)
        for spec in (*schema.COLUMNS, schema.LABEL)
    ]
    return frame.select(
        *columns,
        F.lit(order).cast("int").alias(SOURCE_INDEX),
        F.lit(path.name).alias(SOURCE_FILE),
        F.monotonically_increasing_id().alias(SOURCE_ROW),
    )


def read_inputs(spark: SparkSession, files: Sequence[InputFile]) -> DataFrame:
    """All input files as one DataFrame (raw schema + source columns); row counts checked against validation.

    The frame is cached before it is counted, so the CSVs are parsed once; the caller unpersists it.
    Raises :class:`PreprocessError` (after unpersisting) when Spark reads a different number of rows than
    validation counted.
    """
    from functools import reduce

    from pyspark.sql import functions as F  # noqa: N812

    frames = [read_labelled_csv(spark, f.path, i) for i, f in enumerate(files)]
    combined = reduce(lambda a, b: a.unionByName(b), frames).cache()
    counts: dict[int, int] = {
        int(row[SOURCE_INDEX]): int(row["n"])
        for row in combined.groupBy(SOURCE_INDEX).agg(F.count(F.lit(1)).alias("n")).collect()
    }
    mismatched = [
        f"{f.path}: Spark read {counts.get(i, 0)} rows but validation counted {f.rows}"
        for i, f in enumerate(files)
        if counts.get(i, 0) != f.rows
    ]
    if mismatched:
        combined.unpersist()
        raise PreprocessError(mismatched)
    return combined


# --- Transform ----------------------------------------------------------------------------------------------


def id_statistics(frame: DataFrame) -> DataFrame:
    """Per PassengerId: ``rows`` and ``labels`` (distinct labels: 0, 1 or 2).

    One aggregation over two narrow columns: whole rows are only compared, by :func:`duplicate_counts`, for
    the PassengerIds that occur more than once.
    """
    from pyspark.sql import functions as F  # noqa: N812

    return frame.groupBy(ID).agg(
        F.count(F.lit(1)).alias("rows"),
        F.when(F.min(LABEL) < F.max(LABEL), 2).when(F.count(LABEL) > 0, 1).otherwise(0).alias("labels"),
    )


@dataclass(frozen=True)
class DuplicateCounts:
    """What de-duplication will remove, from :func:`duplicate_counts`."""

    rows_in: int
    distinct_rows: int
    passengers: int
    conflicting_ids: int

    @property
    def exact_duplicates(self) -> int:
        """Rows identical to another row (every column, label included)."""
        return self.rows_in - self.distinct_rows

    @property
    def superseded(self) -> int:
        """Distinct rows replaced by a later row of the same passenger (same label, other values)."""
        return self.distinct_rows - self.passengers

    @property
    def repeated(self) -> bool:
        """Whether some PassengerId occurs in more than one row (else there is nothing to de-duplicate)."""
        return self.rows_in > self.passengers


def duplicate_counts(frame: DataFrame, stats: DataFrame) -> DuplicateCounts:
    """Totals of :func:`id_statistics` ``stats`` of ``frame``; distinct whole rows of repeated ids only.

    One Spark job when every PassengerId is unique (the usual case); otherwise one more, over the rows of the
    repeated PassengerIds.
    """
    from pyspark.sql import functions as F  # noqa: N812

    row = stats.agg(
        F.coalesce(F.sum("rows"), F.lit(0)).alias("rows"),
        F.count(F.lit(1)).alias("passengers"),
        F.count(F.when(F.col("labels") > 1, True)).alias("conflicts"),
        F.count(F.when(F.col("rows") > 1, True)).alias("repeated_ids"),
    ).collect()[0]
    rows_in, passengers, repeated_ids = int(row["rows"]), int(row["passengers"]), int(row["repeated_ids"])
    distinct_rows = rows_in
    if repeated_ids:
        repeated = frame.join(stats.filter(F.col("rows") > 1).select(ID), ID, "left_semi")
        distinct_rows = passengers - repeated_ids + repeated.select(*RAW_COLUMNS, LABEL).distinct().count()
    return DuplicateCounts(rows_in, distinct_rows, passengers, int(row["conflicts"]))


def label_conflicts(frame: DataFrame, stats: DataFrame, limit: int = MAX_REPORTED_CONFLICTS) -> list[str]:
    """One line per PassengerId carrying different labels in different rows, naming the files and labels."""
    from pyspark.sql import functions as F  # noqa: N812

    conflicts = stats.filter(F.col("labels") > 1)
    ids = [int(r[ID]) for r in conflicts.select(ID).orderBy(ID).limit(limit + 1).collect()]
    seen: dict[int, set[tuple[int, str, int]]] = {}
    for r in frame.filter(F.col(ID).isin(ids[:limit])).select(ID, SOURCE_INDEX, SOURCE_FILE, LABEL).collect():
        seen.setdefault(int(r[ID]), set()).add((int(r[SOURCE_INDEX]), str(r[SOURCE_FILE]), int(r[LABEL])))
    lines = []
    for pid in ids[:limit]:
        where = ", ".join(f"label {label} in {name}" for _, name, label in sorted(seen.get(pid, set())))
        lines.append(f"PassengerId {pid} has conflicting labels across files: {where}")
    if len(ids) > limit:
        lines.append(f"... and {conflicts.count() - limit} more conflicting PassengerId(s)")
    return lines


def deduplicate(frame: DataFrame) -> DataFrame:
    """One row per PassengerId: the row from the latest file (last row of that file when it repeats an id).

    Exact duplicate rows are a special case (all copies are equal, one is kept). Label conflicts must have
    been ruled out first (:func:`label_conflicts`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    latest_first = Window.partitionBy(ID).orderBy(F.col(SOURCE_INDEX).desc(), F.col(SOURCE_ROW).desc())
    return (
        frame.withColumn("_rank", F.row_number().over(latest_first)).filter(F.col("_rank") == 1).drop("_rank")
    )


def holdout_bucket(salt: int) -> Column:
    """The passenger's bucket 0..99: ``pmod(xxhash64(PassengerId, salt), 100)`` (both as 64-bit integers)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.pmod(F.xxhash64(F.col(ID).cast("long"), F.lit(salt).cast("long")), F.lit(100))


def assign_split(frame: DataFrame, holdout_percent: int, salt: int) -> DataFrame:
    """Add ``split``: ``holdout`` for buckets below ``holdout_percent``, else ``train``.

    It depends only on the PassengerId and the salt, so a passenger stays on its side across runs and when new
    batches are added.
    """
    from pyspark.sql import functions as F  # noqa: N812

    return frame.withColumn(
        SPLIT, F.when(holdout_bucket(salt) < holdout_percent, F.lit(HOLDOUT)).otherwise(F.lit(TRAIN))
    )


def split_counts(frame: DataFrame) -> dict[str, dict[str, float]]:
    """Rows and positive rate of each split."""
    from pyspark.sql import functions as F  # noqa: N812

    stats = {
        row[SPLIT]: (int(row["rows"]), int(row["positives"]))
        for row in frame.groupBy(SPLIT)
        .agg(F.count(F.lit(1)).alias("rows"), F.sum(LABEL).alias("positives"))
        .collect()
    }
    out: dict[str, dict[str, float]] = {}
    for split in (TRAIN, HOLDOUT):
        rows, positives = stats.get(split, (0, 0))
        out[split] = {
            "rows": rows,
            "positives": positives,
            "positive_rate": positives / rows if rows else 0.0,
        }
    return out


def check_split(counts: dict[str, dict[str, float]], holdout_percent: int) -> None:
    """Both sides must hold both classes, or neither training nor the gate can be trusted."""
    problems = []
    for split in (TRAIN, HOLDOUT):
        rows, positives = int(counts[split]["rows"]), int(counts[split]["positives"])
        if rows == 0 or positives == 0 or positives == rows:
            problems.append(
                f"the {split} split has {rows} rows of which {positives} survived: it needs both classes "
                f"(holdout percent {holdout_percent}; add data or change --holdout-percent)"
            )
    if problems:
        raise PreprocessError(problems)


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """Collect a (small) DataFrame to the driver as pandas, through Arrow."""
    return cast(pd.DataFrame, frame.toPandas())


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


def load_summary(directory: Path) -> dict[str, Any]:
    """The ``summary.json`` of a preprocess output folder."""
    data: dict[str, Any] = json.loads((directory / SUMMARY_FILE).read_text())
    return data
