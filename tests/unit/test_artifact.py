"""The serving artifact loader: good artifacts load and score, broken ones are refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from lifeboat.dataset import features as legacy
from lifeboat.dataset.fitted import FittedEncoder
from lifeboat.registry.artifact import (
    ENCODER_FILE,
    INFO_FILE,
    ONNX_FILE,
    SPEC_FILE,
    ArtifactError,
    ServingModel,
)
from tests.support.models import sklearn_onnx_model

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def train(raw_train_csv: Path) -> pd.DataFrame:
    return pd.read_csv(raw_train_csv)


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory, train: pd.DataFrame) -> Path:
    directory = tmp_path_factory.mktemp("artifact")
    model, encoder = sklearn_onnx_model(train)
    (directory / ONNX_FILE).write_bytes(model.SerializeToString())
    (directory / "extra_files").mkdir()
    encoder.save(directory / "extra_files" / ENCODER_FILE)
    (directory / "extra_files" / INFO_FILE).write_text(json.dumps({"family": "sklearn-lr"}))
    return directory


def copy_artifact(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_load_and_score(artifact_dir: Path, train: pd.DataFrame) -> None:
    model = ServingModel.load(artifact_dir)
    probabilities = model.predict_proba(train)
    assert probabilities.shape == (891,)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert model.info == {"family": "sklearn-lr"}
    survived = train["Survived"].to_numpy() == 1
    assert probabilities[survived].mean() > probabilities[~survived].mean() + 0.3


def test_predict_proba_equals_predict_matrix_on_encoded_rows(artifact_dir: Path, train: pd.DataFrame) -> None:
    model = ServingModel.load(artifact_dir)
    np.testing.assert_array_equal(model.predict_proba(train), model.predict_matrix(model.encode(train)))


def test_empty_input_scores_nothing(artifact_dir: Path) -> None:
    model = ServingModel.load(artifact_dir)
    assert model.predict_matrix(np.empty((0, 22), dtype=np.float32)).shape == (0,)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        ServingModel.load(tmp_path / "nothing")


def test_corrupt_onnx_is_refused(artifact_dir: Path, tmp_path: Path) -> None:
    broken = copy_artifact(artifact_dir, tmp_path / "broken")
    (broken / ONNX_FILE).write_bytes(b"this is not an onnx graph")
    with pytest.raises(ArtifactError, match="onnxruntime cannot load"):
        ServingModel.load(broken)


def test_missing_encoder_is_refused(artifact_dir: Path, tmp_path: Path) -> None:
    broken = copy_artifact(artifact_dir, tmp_path / "nospec")
    (broken / "extra_files" / ENCODER_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"neither encoder\.json nor feature_spec\.json found"):
        ServingModel.load(broken)


def test_spec_artifact_exposes_its_dataset_spec(artifact_dir: Path) -> None:
    model = ServingModel.load(artifact_dir)
    assert model.encoder is not None
    assert model.dataset_spec is not None
    assert model.dataset_spec.name == "titanic"
    assert len(model.feature_names) == 22


def test_legacy_feature_spec_artifact_still_loads_and_scores_the_same(
    artifact_dir: Path, tmp_path: Path, train: pd.DataFrame
) -> None:
    """A version trained before dataset specs (feature_spec.json only) is served as before, and Titanic's spec
    encodes exactly like the legacy encoder, so the same graph gives the same probabilities."""
    old = copy_artifact(artifact_dir, tmp_path / "legacy")
    (old / "extra_files" / ENCODER_FILE).unlink()
    legacy.fit_feature_spec(train).save(old / "extra_files" / SPEC_FILE)
    model = ServingModel.load(old)
    assert model.encoder is None
    assert model.dataset_spec is None
    np.testing.assert_array_equal(
        model.predict_proba(train), ServingModel.load(artifact_dir).predict_proba(train)
    )
    records = train.head(3).to_dict("records")
    np.testing.assert_array_equal(model.predict_proba(records), model.predict_proba(train.head(3)))


def test_encoder_without_example_record_is_refused(artifact_dir: Path, tmp_path: Path) -> None:
    broken = copy_artifact(artifact_dir, tmp_path / "noexample")
    path = broken / "extra_files" / ENCODER_FILE
    data = json.loads(path.read_text())
    data["spec"].pop("example")
    encoder = FittedEncoder.from_dict({**data, "spec_fingerprint": _fingerprint(data["spec"])})
    encoder.save(path)
    with pytest.raises(ArtifactError, match=r"dataset spec 'titanic' has no example record"):
        ServingModel.load(broken)


def _fingerprint(spec: dict[str, object]) -> str:
    from lifeboat.dataset.spec import parse_spec

    return parse_spec(spec).fingerprint()


def test_model_with_wrong_input_width_fails_the_canary(
    artifact_dir: Path, tmp_path: Path, train: pd.DataFrame
) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(np.random.default_rng(0).random((20, 3)), [0, 1] * 10)
    narrow = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, 3]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    broken = copy_artifact(artifact_dir, tmp_path / "narrow")
    onnx.save(narrow, str(broken / ONNX_FILE))
    with pytest.raises(ArtifactError, match="canary"):
        ServingModel.load(broken)
    assert ServingModel.load(broken, check=False).source == str(broken)
