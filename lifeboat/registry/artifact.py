"""The JVM-free serving artifact: an ONNX model plus the fitted encoder it was trained with.

One loader for everyone: the training job's parity check, the promotion gate (scoring the champion on a new
holdout) and the prediction server all load a model version through :class:`ServingModel`, so "it passed
parity" and "the server can load it" are the same statement.

Layout of an artifact directory (as logged by ``mlflow.onnx.log_model(..., extra_files=[...])``)::

    model.onnx                       ONNX graph: float32 features -> probability [N, 2]
    extra_files/encoder.json         lifeboat.dataset.fitted.FittedEncoder (embeds the dataset spec)
    extra_files/model_info.json      family, feature names, training run (informational)

Versions trained before dataset specs carry ``extra_files/feature_spec.json`` (the Titanic-only
:class:`lifeboat.dataset.features.FeatureSpec`) instead of ``encoder.json``: they still load and score.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from lifeboat.dataset import encoder as spec_encoder
from lifeboat.dataset import features as legacy
from lifeboat.dataset.features import Columns, FeatureSpec, FeatureSpecError
from lifeboat.dataset.fitted import EncoderError, FittedEncoder
from lifeboat.dataset.models import DatasetSpec

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
ENCODER_FILE = "encoder.json"
#: The legacy (Titanic-only) encoding file of versions trained before dataset specs.
SPEC_FILE = "feature_spec.json"
INFO_FILE = "model_info.json"
EXTRA_DIR = "extra_files"

#: What a serving artifact encodes with: a fitted dataset-spec encoder, or the legacy Titanic feature spec.
Encoding = FittedEncoder | FeatureSpec

#: The passenger a legacy (feature_spec.json) artifact must score: its canary when loading and reloading.
#: Spec-based artifacts score their spec's ``example`` record instead.
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


def encoding_file(encoding: Encoding) -> str:
    """The artifact file name an encoding is saved under (:data:`ENCODER_FILE` or the legacy
    :data:`SPEC_FILE`)."""
    return ENCODER_FILE if isinstance(encoding, FittedEncoder) else SPEC_FILE


def load_encoding(directory: Path) -> Encoding:
    """The encoding of an artifact directory: ``encoder.json``, else the legacy ``feature_spec.json``."""
    try:
        path = _find(directory, ENCODER_FILE)
    except ArtifactError:
        path = None
    try:
        if path is not None:
            return FittedEncoder.load(path)
        return FeatureSpec.load(_find(directory, SPEC_FILE))
    except (EncoderError, FeatureSpecError) as exc:
        raise ArtifactError(f"{directory}: {exc}") from exc
    except ArtifactError as exc:
        raise ArtifactError(
            f"neither {ENCODER_FILE} nor {SPEC_FILE} found in serving artifact {directory}"
        ) from exc


def canary_record(encoding: Encoding) -> dict[str, Any]:
    """The record a model must score before it is served: the spec's example (legacy: a Kaggle passenger)."""
    if isinstance(encoding, FeatureSpec):
        return dict(CANARY_PASSENGER)
    if not encoding.spec.example:
        raise ArtifactError(
            f"dataset spec {encoding.spec.name!r} has no example record: add `example:` to its dataset.yaml "
            "(the record every new model must score before it is served)"
        )
    return dict(encoding.spec.example)


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
    """A loaded serving artifact: encode raw rows, score them with onnxruntime."""

    session: Any
    encoding: Encoding
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
        encoding = load_encoding(directory)
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

            rewritten = one_input(onnx.load(str(onnx_path)), encoding.feature_names)
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
        model = cls(session=session, encoding=encoding, info=info, source=str(directory))
        if check:
            model.check()
        return model

    @property
    def encoder(self) -> FittedEncoder | None:
        """The fitted dataset-spec encoder (None for a legacy feature_spec.json artifact)."""
        return self.encoding if isinstance(self.encoding, FittedEncoder) else None

    @property
    def dataset_spec(self) -> DatasetSpec | None:
        """The dataset spec this model was trained with (None for a legacy artifact)."""
        encoder = self.encoder
        return encoder.spec if encoder is not None else None

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's input columns, in matrix order."""
        return tuple(self.encoding.feature_names)

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
        index = {name: i for i, name in enumerate(self.feature_names)}
        try:
            return {name: matrix[:, index[name] : index[name] + 1] for name in inputs}
        except KeyError as exc:
            raise ArtifactError(f"{self.source}: ONNX input {exc} is not a known feature") from exc

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of the positive class for already-encoded rows (float32 [N, F])."""
        if matrix.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        (probabilities,) = self.session.run(
            [self._output_name], self._feed(matrix.astype(np.float32, copy=False))
        )
        return np.asarray(probabilities, dtype=np.float64)[:, 1]

    def encode(self, rows: spec_encoder.Rows) -> np.ndarray:
        """Raw rows (a DataFrame, column mapping or records) -> the model's float32 input matrix."""
        if isinstance(self.encoding, FittedEncoder):
            return spec_encoder.encode(self.encoding, rows)
        return legacy.encode(_columns(rows), self.encoding)

    def predict_proba(self, rows: spec_encoder.Rows) -> np.ndarray:
        """Probability of the positive class for raw rows (encoded as training encoded them)."""
        return self.predict_matrix(self.encode(rows))

    def drift_alerts(self, rows: spec_encoder.Rows) -> list[str]:
        """Per-row drift sentences against this model's training reference."""
        if isinstance(self.encoding, FittedEncoder):
            return self.predict_with_alerts(rows)[1]
        return legacy.drift_alerts(_columns(rows), self.encoding)

    def predict_with_alerts(self, rows: spec_encoder.Rows) -> tuple[np.ndarray, list[str]]:
        """``(predict_proba(rows), drift_alerts(rows))`` reading the rows once (serving's path)."""
        if isinstance(self.encoding, FittedEncoder):
            matrix, alerts = spec_encoder.encode_with_alerts(self.encoding, rows)
        else:
            matrix, alerts = legacy.encode_with_alerts(_columns(rows), self.encoding)
        return self.predict_matrix(matrix), alerts

    def check(self) -> float:
        """Score the canary record (:func:`canary_record`); raise :class:`ArtifactError` unless it gets a
        probability."""
        record = canary_record(self.encoding)
        try:
            (p,) = self.predict_proba({k: [v] for k, v in record.items()})
        except ArtifactError:
            raise
        except Exception as exc:  # any failure to run the graph means the artifact is not servable
            raise ArtifactError(f"{self.source}: scoring the canary record failed: {exc}") from exc
        if not (0.0 <= p <= 1.0) or np.isnan(p):
            raise ArtifactError(f"{self.source}: canary probability {p!r} is not in [0, 1]")
        return float(p)


def _columns(rows: spec_encoder.Rows) -> Columns:
    """Column-wise form of ``rows`` for the legacy encoder (which reads columns only)."""
    if isinstance(rows, Mapping):
        return rows
    if isinstance(rows, Sequence) and not hasattr(rows, "columns"):
        names = {key for row in rows for key in row}
        return {name: [row.get(name) for row in rows] for name in names}
    return rows  # a DataFrame is a mapping of columns already
