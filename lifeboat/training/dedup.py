"""Duplicate rows across input files: counts, label conflicts, and keeping the newest copy of each id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lifeboat.dataset.columns import category_key
from lifeboat.training.output import ID, LABEL
from lifeboat.training.reading import SOURCE_FILE, SOURCE_INDEX, SOURCE_ROW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: How many conflicting ids one error message lists.
MAX_REPORTED_CONFLICTS = 20


def id_statistics(frame: DataFrame) -> DataFrame:
    """Per row key (the id): ``rows`` and ``labels`` (distinct labels: 0, 1 or 2).

    One aggregation over two narrow columns: whole rows are only compared, by :func:`duplicate_counts`, for
    the ids that occur more than once. Without an id every row has its own key: nothing repeats.
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
        """Distinct rows replaced by a later row of the same id (same label, other values)."""
        return self.distinct_rows - self.passengers

    @property
    def repeated(self) -> bool:
        """Whether some id occurs in more than one row (else there is nothing to de-duplicate)."""
        return self.rows_in > self.passengers


def duplicate_counts(frame: DataFrame, stats: DataFrame, raw_columns: Sequence[str]) -> DuplicateCounts:
    """Totals of :func:`id_statistics` ``stats`` of ``frame``; distinct whole rows (``raw_columns``, label
    included) of repeated ids only.

    One Spark job when every id is unique (the usual case); otherwise one more, over the rows of the
    repeated ids.
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
        distinct_rows = passengers - repeated_ids + repeated.select(*raw_columns).distinct().count()
    return DuplicateCounts(rows_in, distinct_rows, passengers, int(row["conflicts"]))


def label_conflicts(
    frame: DataFrame,
    stats: DataFrame,
    id_column: str,
    label_column: str,
    limit: int = MAX_REPORTED_CONFLICTS,
) -> list[str]:
    """One line per id carrying different labels in different rows, naming the files and labels."""
    from pyspark.sql import functions as F  # noqa: N812

    conflicts = stats.filter(F.col("labels") > 1)
    keys = [int(r[ID]) for r in conflicts.select(ID).orderBy(ID).limit(limit + 1).collect()]
    seen: dict[int, set[tuple[int, str, str]]] = {}
    names: dict[int, str] = {}
    rows = frame.filter(F.col(ID).isin(keys[:limit])).select(
        ID, id_column, SOURCE_INDEX, SOURCE_FILE, label_column
    )
    for r in rows.collect():
        names[int(r[ID])] = str(r[id_column])
        seen.setdefault(int(r[ID]), set()).add(
            (int(r[SOURCE_INDEX]), str(r[SOURCE_FILE]), _label_text(r[label_column]))
        )
    lines = []
    for key in keys[:limit]:
        where = ", ".join(f"label {label} in {name}" for _, name, label in sorted(seen.get(key, set())))
        lines.append(f"{id_column} {names.get(key, key)} has conflicting labels across files: {where}")
    if len(keys) > limit:
        lines.append(f"... and {conflicts.count() - limit} more conflicting {id_column}(s)")
    return lines


def _label_text(value: object) -> str:
    """A label as the data file wrote it (integers without a decimal point)."""
    return category_key(value) if isinstance(value, int | float | str | bool) else str(value)


def deduplicate(frame: DataFrame) -> DataFrame:
    """One row per id: the row from the latest file (last row of that file when it repeats an id).

    Exact duplicate rows are a special case (all copies are equal, one is kept). Label conflicts must have
    been ruled out first (:func:`label_conflicts`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    latest_first = Window.partitionBy(ID).orderBy(F.col(SOURCE_INDEX).desc(), F.col(SOURCE_ROW).desc())
    return (
        frame.withColumn("_rank", F.row_number().over(latest_first)).filter(F.col("_rank") == 1).drop("_rank")
    )
