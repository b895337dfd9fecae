"""The JVM-free serving artifact: an ONNX model plus the feature spec it was trained with.

One loader for everyone: the training job's parity check, the promotion gate (scoring the champion on a new
holdout) and the prediction server all load a model version through :class:`ServingModel`, so "it passed
parity" and "the server can load it" are the same statement.

Layout of an artifact directory (as logged by ``mlflow.onnx.log_model(..., extra_files=[...])``)::

    model.onnx                       ONNX graph: float32 features -> probability [N, 2]
    extra_files/feature_spec.json    lifeboat.dataset.features.FeatureSpec
    extra_files/model_info.json      family, feature names, training run (informational)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from lifeboat.dataset.features import (
    Columns,
    FeatureSpec,
    FeatureSpecError,
    drift_alerts,
    encode,
    encode_with_alerts,
)

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


#: The one input of a served graph whose per-feature inputs are fed from one matrix (see :func:`one_input`).
FEATURES_INPUT = "lifeboat_features"


class ArtifactError(RuntimeError):
    """A serving artifact is missing, unreadable, or does not produce valid probabilities."""


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / EXTRA_DIR / name):
        if candidate.is_file():
            return candidate
    raise ArtifactError(f"{name} not found in serving artifact {directory}")


def one_input(model: Any, feature_names: Sequence[str]) -> Any | None:
    """The ONNX graph fed from one float matrix [N, F] instead of one [N, 1] input per feature, or None.

    Graphs converted from Spark take every feature as its own input (then concatenate them), and
    onnxruntime's per-input overhead makes scoring one row several times slower than the graph itself.
    A Split node in front hands each original input its column of ``FEATURES_INPUT`` (columns in
    ``feature_names`` order), so the outputs are exactly the same. None when the graph does not take
    float features by name (it is then served as it is). Needs the ``onnx`` package (not onnxruntime's).
    """
    from onnx import TensorProto, helper

    graph = model.graph
    initialized = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialized]
    if len(inputs) < 2 or any(
        i.name not in feature_names
        or i.type.tensor_type.elem_type != TensorProto.FLOAT
        or len(i.type.tensor_type.shape.dim) != 2
        for i in inputs
    ):
        return None
    wanted = {i.name for i in inputs}
    outputs = [
        name if name in wanted else f"{FEATURES_INPUT}_unused_{j}" for j, name in enumerate(feature_names)
    ]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    sizes = [1] * len(feature_names)
    rewritten = type(model)()
    rewritten.CopyFrom(model)
    if opset < 13:  # split sizes: an attribute before opset 13, an input since
        split = helper.make_node("Split", [FEATURES_INPUT], outputs, axis=1, split=sizes)
    else:
        sizes_name = f"{FEATURES_INPUT}_split"
        rewritten.graph.initializer.append(
            helper.make_tensor(sizes_name, TensorProto.INT64, [len(sizes)], sizes)
        )
        split = helper.make_node("Split", [FEATURES_INPUT, sizes_name], outputs, axis=1)
    kept = [i for i in rewritten.graph.input if i.name not in wanted]
    del rewritten.graph.input[:]
    rewritten.graph.input.extend(
        [helper.make_tensor_value_info(FEATURES_INPUT, TensorProto.FLOAT, ["N", len(feature_names)]), *kept]
    )
    rewritten.graph.node.insert(0, split)
    return rewritten


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
        session = None
        try:
            import onnx  # optional: without it the graph is served with its own inputs (slower per row)

            rewritten = one_input(onnx.load(str(onnx_path)), spec.feature_names)
            if rewritten is not None:
                session = ort.InferenceSession(
                    rewritten.SerializeToString(), options, providers=["CPUExecutionProvider"]
                )
        except ImportError:
            logger.info("the onnx package is not installed: serving %s with its own inputs", onnx_path)
        except Exception as exc:  # not servable from one matrix (or not a valid graph): load it as it is
            logger.warning(
                "cannot feed %s from one matrix (%s); serving it with its own inputs", onnx_path, exc
            )
        if session is None:
            try:
                session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
                raise ArtifactError(f"onnxruntime cannot load {onnx_path}: {exc}") from exc
        model = cls(session=session, spec=spec, info=info, source=str(directory))
        if check:
            model.check()
        return model

    @cached_property
    def _output_name(self) -> str:
        return self._probability_output()

    @cached_property
    def _input_names(self) -> list[str]:
        return [str(inp.name) for inp in self.session.get_inputs()]

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
        inputs = self._input_names
        if len(inputs) == 1:
            return {inputs[0]: matrix}
        index = {name: i for i, name in enumerate(self.spec.feature_names)}
        try:
            return {name: matrix[:, index[name] : index[name] + 1] for name in inputs}
        except KeyError as exc:
            raise ArtifactError(f"{self.source}: ONNX input {exc} is not a known feature") from exc

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of survival for already-encoded rows (float32 [N, F])."""
        if matrix.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        (probabilities,) = self.session.run(
            [self._output_name], self._feed(matrix.astype(np.float32, copy=False))
        )
        return np.asarray(probabilities, dtype=np.float64)[:, 1]

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Probability of survival for raw passenger columns (see
        :func:`lifeboat.dataset.features.encode`)."""
        return self.predict_matrix(encode(columns, self.spec))

    def drift_alerts(self, columns: Columns) -> list[str]:
        """Per-row drift sentences against this model's training reference."""
        return drift_alerts(columns, self.spec)

    def predict_with_alerts(self, columns: Columns) -> tuple[np.ndarray, list[str]]:
        """``(predict_proba(columns), drift_alerts(columns))`` reading the columns once (serving's path)."""
        matrix, alerts = encode_with_alerts(columns, self.spec)
        return self.predict_matrix(matrix), alerts

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
