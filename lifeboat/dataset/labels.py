"""The bookkeeping columns every dataset's processed rows carry, and the label as 0/1.

Whatever a dataset calls its id and label, preprocessing adds two columns of fixed names: :data:`ROW_KEY`
(a 64-bit integer naming the row: the id when it is an integer, a hash of it when it is text, a hash of the
file name and row position when the dataset has no id) and :data:`TARGET` (1 when the label is the spec's
positive value, else 0). The split, the folds, the gate and the parity check all work on these two.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from lifeboat.dataset.columns import Scalar, category_key
from lifeboat.dataset.models import DatasetSpec

#: The row's key (64-bit integer) in processed data.
ROW_KEY = "_key"
#: The label as 0/1 (1 = the spec's positive value) in processed data.
TARGET = "_label"


def positive_key(spec: DatasetSpec) -> str:
    """The spec's positive label value as a category key (``1``, ``"yes"``...)."""
    return category_key(spec.label.positive)


def binary_labels(spec: DatasetSpec, values: Iterable[Scalar | None]) -> np.ndarray:
    """0/1 labels (int64) of raw label values: 1 where the value is the spec's positive value.

    Raises ``ValueError`` naming the label column when a value is missing.
    """
    positive = positive_key(spec)
    out: list[int] = []
    for value in values:
        if value is None or (isinstance(value, float) and value != value):
            raise ValueError(f"the label column {spec.label.column!r} has a missing value")
        out.append(1 if category_key(value) == positive else 0)
    return np.asarray(out, dtype=np.int64)
