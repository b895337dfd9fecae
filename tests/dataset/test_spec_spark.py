"""One code path for Spark and serving: the encoder inside ``mapInPandas`` gives what a direct call gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lifeboat.dataset.encoder import FittedEncoder, encode

pytestmark = pytest.mark.spark


def test_encoder_inside_spark_map_in_pandas_matches_direct_encoding(
    spark: Any, fitted: FittedEncoder, raw_train_csv: Path, train_frame: pd.DataFrame
) -> None:
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    frame = spark.read.csv(str(raw_train_csv), header=True, inferSchema=True).repartition(3)
    names = list(fitted.feature_names)
    schema = StructType(
        [StructField("PassengerId", LongType()), *(StructField(n, DoubleType()) for n in names)]
    )
    encoder_data = fitted.to_dict()  # what a Spark job ships to its executors

    def encode_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        local = FittedEncoder.from_dict(encoder_data)
        for batch in batches:
            out = pd.DataFrame(encode(local, batch).astype(np.float64), columns=names, index=batch.index)
            out.insert(0, "PassengerId", batch["PassengerId"].astype("int64"))
            yield out

    result = frame.mapInPandas(encode_batches, schema=schema).toPandas().sort_values("PassengerId")
    direct = encode(fitted, train_frame.sort_values("PassengerId"))
    from_spark = result[names].to_numpy()
    assert from_spark.shape == (891, 22)
    assert np.abs(from_spark - direct.astype(np.float64)).max() <= 1e-12
