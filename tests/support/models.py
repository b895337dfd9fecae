"""Small real ONNX models for tests that need registered versions without running Spark.

The models are scikit-learn logistic regressions on lifeboat's real feature encoding, converted with
skl2onnx: real ONNX graphs, loaded by the real :class:`lifeboat.artifact.ServingModel`. ``quality`` degrades a
model on purpose (0 = fit on the true labels, 1 = fit on shuffled labels) so gate tests get better and worse
versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.features import FEATURE_NAMES, FeatureSpec, encode, fit_feature_spec


def sklearn_onnx_model(train: pd.DataFrame, noise: float = 0.0, seed: int = 0) -> tuple[Any, FeatureSpec]:
    """Fit a logistic regression on ``train`` (with a share ``noise`` of labels shuffled) and convert to ONNX."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    spec = fit_feature_spec(train)
    x = encode(train, spec)
    y = train["Survived"].to_numpy().copy()
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < noise
    y[flip] = rng.permutation(y[flip])
    clf = LogisticRegression(max_iter=2000).fit(x, y)
    onnx_model = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    return onnx_model, spec


def register_sklearn_version(model_name: str, train: pd.DataFrame, noise: float = 0.0, seed: int = 0,
                             tags: dict[str, str] | None = None) -> str:
    """Log and register a scikit-learn ONNX version (alias challenger) in the current MLflow store."""
    import mlflow

    from lifeboat.registry import log_serving_model, register_challenger

    onnx_model, spec = sklearn_onnx_model(train, noise=noise, seed=seed)
    with mlflow.start_run():
        uri = log_serving_model(onnx_model, spec, {"family": "sklearn-lr", "noise": noise})
    version = register_challenger(uri, model_name, tags or {})
    return str(version.version)


def titanic_frame(path: Path) -> pd.DataFrame:
    """Read a Kaggle Titanic CSV with pandas defaults."""
    return pd.read_csv(path)
