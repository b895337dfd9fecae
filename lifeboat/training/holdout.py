"""The train/holdout split: a salted hash of the id decides, so a row keeps its side across runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifeboat.training.errors import PreprocessError
from lifeboat.training.output import HOLDOUT, ID, LABEL, SPLIT, TRAIN

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def holdout_bucket(salt: int) -> Column:
    """The row's bucket 0..99: ``pmod(xxhash64(row key, salt), 100)`` (both as 64-bit integers; Titanic's
    key is its PassengerId)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.pmod(F.xxhash64(F.col(ID).cast("long"), F.lit(salt).cast("long")), F.lit(100))


def assign_split(frame: DataFrame, holdout_percent: int, salt: int) -> DataFrame:
    """Add ``split``: ``holdout`` for buckets below ``holdout_percent``, else ``train``.

    It depends only on the row key (the id) and the salt, so a row stays on its side across runs and when new
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
                f"the {split} split has {rows} rows of which {positives} are positive: it needs both classes "
                f"(holdout percent {holdout_percent}; add data or change --holdout-percent)"
            )
    if problems:
        raise PreprocessError(problems)
