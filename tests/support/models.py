"""Small real ONNX models for tests that need registered versions without running Spark.

The models are scikit-learn logistic regressions on a dataset spec's real encoder (Titanic's unless another
spec is given), converted with skl2onnx: real ONNX graphs, loaded by the real
:class:`lifeboat.registry.artifact.ServingModel`. ``noise`` degrades a model on purpose (0 = fit on the true
labels, 1 = fit on shuffled labels) so gate tests get better and worse versions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifeboat.dataset.encoder import FittedEncoder, encode, fit
from lifeboat.dataset.labels import binary_labels
from lifeboat.dataset.models import DatasetSpec
from lifeboat.dataset.spec import load_spec
from tests.support.mlflow_state import mlflow_uris_restored

if TYPE_CHECKING:
    from lifeboat.settings import Settings


REPO_ROOT = Path(__file__).resolve().parents[2]


def titanic_spec() -> DatasetSpec:
    """data/titanic/dataset.yaml of this checkout."""
    return load_spec(REPO_ROOT / "data" / "titanic" / "dataset.yaml")


def _fit_sklearn(
    train: pd.DataFrame, noise: float, seed: int, spec: DatasetSpec | None = None
) -> tuple[Any, FittedEncoder]:
    """Fit the logistic regression of :func:`sklearn_onnx_model` (a share ``noise`` of labels shuffled)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    spec = spec if spec is not None else titanic_spec()
    encoder = fit(spec, train)
    x = encode(encoder, train)
    y = binary_labels(spec, train[spec.label.column].tolist())
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < noise
    y[flip] = rng.permutation(y[flip])
    # One BLAS thread: on a 2-core machine the default threading makes this small fit ~10x slower.
    with threadpool_limits(1):
        clf = LogisticRegression(max_iter=2000).fit(x, y)
    return clf, encoder


def _to_onnx(clf: Any) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    return convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, int(clf.n_features_in_)]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )


def sklearn_onnx_model(
    train: pd.DataFrame, noise: float = 0.0, seed: int = 0, spec: DatasetSpec | None = None
) -> tuple[Any, FittedEncoder]:
    """Fit a logistic regression on ``train`` (a share ``noise`` of labels shuffled); convert to ONNX."""
    clf, encoder = _fit_sklearn(train, noise, seed, spec)
    return _to_onnx(clf), encoder


def onnx_parity(clf: Any, onnx_model: Any, encoder: FittedEncoder, rows: pd.DataFrame) -> float:
    """Max |p_sklearn - p_onnxruntime| on ``rows``: the same servability check the training job records."""
    import onnxruntime as ort

    x = encode(encoder, rows)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    _, probabilities = session.run(None, {"features": x})
    return float(np.max(np.abs(clf.predict_proba(x)[:, 1] - np.asarray(probabilities)[:, 1])))


def register_sklearn_version(
    model_name: str,
    train: pd.DataFrame,
    noise: float = 0.0,
    seed: int = 0,
    tags: dict[str, str] | None = None,
    parity_rows: pd.DataFrame | None = None,
    spec: DatasetSpec | None = None,
) -> str:
    """Log and register a scikit-learn ONNX version (alias challenger) in the current MLflow store.

    With ``parity_rows`` the version also gets the ``parity_max_abs_diff`` tag, measured (scikit-learn vs
    onnxruntime) on those rows as the training job does for Spark vs onnxruntime. ``spec`` is the dataset
    (default: Titanic); ``train`` holds its raw columns and label.
    """
    import mlflow

    from lifeboat.registry.store import PARITY_TAG, log_serving_model, register_challenger

    clf, encoder = _fit_sklearn(train, noise, seed, spec)
    onnx_model = _to_onnx(clf)
    all_tags = dict(tags or {})
    if parity_rows is not None:
        all_tags[PARITY_TAG] = repr(onnx_parity(clf, onnx_model, encoder, parity_rows))
    with mlflow.start_run():
        uri = log_serving_model(onnx_model, encoder, {"family": "sklearn-lr", "noise": noise})
    version = register_challenger(uri, model_name, all_tags)
    return str(version.version)


def split_by_passenger_id(frame: pd.DataFrame, every: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): every ``every``-th PassengerId goes to the holdout, the rest to training."""
    is_holdout = frame["PassengerId"] % every == 0
    return frame[~is_holdout].reset_index(drop=True), frame[is_holdout].reset_index(drop=True)


def titanic_frame(path: Path) -> pd.DataFrame:
    """Read a Kaggle Titanic CSV with pandas defaults."""
    return pd.read_csv(path)


@contextmanager
def mlflow_store(settings: Settings) -> Iterator[str]:
    """Use ``settings.tracking_uri`` as the tracking and registry store (experiment created, artifacts under
    the state folder) until the block ends; the previous URIs and ``MLFLOW_TRACKING_URI`` are restored after.

    For a module- or session-scoped store: creating an MLflow schema takes 10-20 s, so tests that need
    registered versions share one store and keep apart by model name.
    """
    from lifeboat.registry.store import configure_mlflow, database_uri

    with mlflow_uris_restored():
        uri = database_uri(settings.tracking_uri)
        os.environ["MLFLOW_TRACKING_URI"] = uri
        configure_mlflow(settings)
        yield uri


def artifact_dir(model_name: str, version: str) -> Path:
    """The local folder holding a registered version's artifacts (file-based artifact stores only)."""
    from urllib.parse import urlparse

    from mlflow import MlflowClient

    uri = MlflowClient().get_model_version_download_uri(model_name, version)
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"{model_name} version {version} is not stored in a local folder: {uri}")
    return Path(parsed.path)
