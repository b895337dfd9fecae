"""The JVM-free serving artifact: an ONNX model plus the feature spec it was trained with.

One loader for everyone: the training job's parity check, the promotion gate (scoring the champion on a new
holdout) and the prediction server all load a model version through :class:`ServingModel`, so "it passed
parity" and "the server can load it" are the same statement.

Layout of an artifact directory (as logged by ``mlflow.onnx.log_model(..., extra_files=[...])``)::

    model.onnx                       ONNX graph: float32 features -> probability [N, 2]
    extra_files/feature_spec.json    lifeboat.features.FeatureSpec
    extra_files/model_info.json      family, feature names, training run (informational)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifeboat.features import Columns, FeatureSpec, FeatureSpecError, drift_alerts, encode

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
SPEC_FILE = "feature_spec.json"
INFO_FILE = "model_info.json"
EXTRA_DIR = "extra_files"

#: A passenger every servable model must score: used as the canary when loading and reloading.
CANARY_PASSENGER: dict[str, Any] = {
    "PassengerId": 892,
    "Pclass": 3,
    "Name": "Kelly, Mr. James",
    "Sex": "male",
    "Age": 34.5,
    "SibSp": 0,
    "Parch": 0,
    "Ticket": "330911",
    "Fare": 7.8292,
    "Cabin": None,
    "Embarked": "Q",
}


class ArtifactError(RuntimeError):
    """A serving artifact is missing, unreadable, or does not produce valid probabilities."""


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / EXTRA_DIR / name):
        if candidate.is_file():
            return candidate
    raise ArtifactError(f"{name} not found in serving artifact {directory}")


@dataclass
class ServingModel:
    """A loaded serving artifact: encode raw passengers, score them with onnxruntime."""

    session: Any
    spec: FeatureSpec
    info: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def load(cls, directory: Path | str, check: bool = True) -> ServingModel:
        """Load an artifact directory; with ``check`` also score the canary passenger (see :meth:`check`)."""
        import onnxruntime as ort

        directory = Path(directory)
        if not directory.is_dir():
            raise ArtifactError(f"serving artifact directory {directory} does not exist")
        onnx_path = _find(directory, ONNX_FILE)
        try:
            spec = FeatureSpec.load(_find(directory, SPEC_FILE))
        except FeatureSpecError as exc:
            raise ArtifactError(f"{directory}: {exc}") from exc
        info: dict[str, Any] = {}
        try:
            info = json.loads(_find(directory, INFO_FILE).read_text())
        except (ArtifactError, json.JSONDecodeError):
            logger.warning("no readable %s in %s", INFO_FILE, directory)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
            raise ArtifactError(f"onnxruntime cannot load {onnx_path}: {exc}") from exc
        model = cls(session=session, spec=spec, info=info, source=str(directory))
        if check:
            model.check()
        return model

    def _probability_output(self) -> str:
        outputs = self.session.get_outputs()
        for out in outputs:
            if out.name.lower().startswith("probabilit"):
                return str(out.name)
        for out in outputs:
            if out.shape and len(out.shape) == 2 and out.shape[-1] == 2:
                return str(out.name)
        raise ArtifactError(f"{self.source}: no probability output among {[o.name for o in outputs]}")

    def _feed(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        inputs = self.session.get_inputs()
        if len(inputs) == 1:
            return {inputs[0].name: matrix}
        index = {name: i for i, name in enumerate(self.spec.feature_names)}
        try:
            return {inp.name: matrix[:, index[inp.name] : index[inp.name] + 1] for inp in inputs}
        except KeyError as exc:
            raise ArtifactError(f"{self.source}: ONNX input {exc} is not a known feature") from exc

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of survival for already-encoded rows (float32 [N, F])."""
        if matrix.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        name = self._probability_output()
        (probabilities,) = self.session.run([name], self._feed(matrix.astype(np.float32, copy=False)))
        return np.asarray(probabilities, dtype=np.float64)[:, 1]

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Probability of survival for raw passenger columns (see :func:`lifeboat.features.encode`)."""
        return self.predict_matrix(encode(columns, self.spec))

    def drift_alerts(self, columns: Columns) -> list[str]:
        """Per-row drift sentences against this model's training reference."""
        return drift_alerts(columns, self.spec)

    def check(self) -> float:
        """Score the canary passenger; raise :class:`ArtifactError` unless the result is a probability."""
        try:
            (p,) = self.predict_proba({k: [v] for k, v in CANARY_PASSENGER.items()})
        except ArtifactError:
            raise
        except Exception as exc:  # any failure to run the graph means the artifact is not servable
            raise ArtifactError(f"{self.source}: scoring the canary passenger failed: {exc}") from exc
        if not (0.0 <= p <= 1.0) or np.isnan(p):
            raise ArtifactError(f"{self.source}: canary probability {p!r} is not in [0, 1]")
        return float(p)
