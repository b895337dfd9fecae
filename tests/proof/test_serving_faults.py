"""Faults during a reload: each test ends with the old champion still served and the server answering.

* the MLflow tracking server (a real ``mlflow server`` on SQLite) goes down after a promotion: the reload
  answers 502 naming the registry, readiness stays true, the old version keeps answering; once MLflow is
  back the same reload serves the promoted version;
* the champion alias points to a version whose artifacts were deleted (the whole folder, or the files in
  it): the reload is refused with a message naming that version, the old version keeps answering.

(A corrupt ONNX file, a registry down at start-up and a registry locked for a while are covered in
tests/serving/test_serving_api.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lifeboat.registry.artifact import CANARY_PASSENGER
from tests.proof.proof_support import batch_problem, mlflow_server, prediction_problem, register_artifact_copy
from tests.serving.serving_support import ServingVersions, StoreRef, auth, set_champion

pytestmark = pytest.mark.integration

PASSENGER: dict[str, Any] = dict(CANARY_PASSENGER)


def metric(client: Any, name: str, **labels: str) -> float:
    """One sample of the app's /metrics (0 when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def assert_serving(client: Any, version: str) -> None:
    """The app is ready with ``version`` and answers single and batch predictions with it."""
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    assert ready.json()["model_version"] == version
    single = client.post("/predict", json=PASSENGER)
    assert single.status_code == 200, single.text
    assert prediction_problem(single.json(), {version}) is None
    batch = client.post("/predict/batch", json={"passengers": [PASSENGER] * 3})
    assert batch.status_code == 200, batch.text
    assert batch_problem(batch.json(), 3, {version}) is None
    assert client.get("/health").status_code == 200


def test_mlflow_down_during_a_reload_keeps_the_old_model_then_recovers(
    make_client: Any,
    store_copy: StoreRef,
    serving_versions: ServingVersions,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    database = Path(store_copy.tracking_uri.removeprefix("sqlite:///"))
    old, promoted = store_copy.version, serving_versions.alternate
    with mlflow_server(database, tmp_path / "mlflow") as mlflow:
        registry = StoreRef(mlflow.url, store_copy.model_name, old)
        client = make_client(mlflow.url)
        assert_serving(client, old)

        set_champion(registry, promoted)  # a promotion went through the server...
        mlflow.stop()  # ...then the server died before the reload
        reload = client.post("/admin/reload", headers=auth())
        assert reload.status_code == 502, reload.text
        detail = reload.json()["detail"]
        assert mlflow.url in detail
        assert f"still serving version {old}" in detail
        assert_serving(client, old)  # readiness stays true, predictions keep coming from the old model
        assert metric(client, "lifeboat_model_reload_failures_total", trigger="admin", reason="registry") == 1

        mlflow.start()  # the same port, the same registry: the promotion is still there
        recovered = client.post("/admin/reload", headers=auth())
        assert recovered.status_code == 200, recovered.text
        body = recovered.json()
        assert (body["old_version"], body["new_version"], body["changed"]) == (old, promoted, True)
        assert_serving(client, promoted)


@pytest.mark.parametrize("deleted", ["folder", "files"])
def test_a_champion_whose_artifacts_were_deleted_is_refused(
    make_client: Any, store_copy: StoreRef, serving_versions: ServingVersions, tmp_path: Path, deleted: str
) -> None:
    old = store_copy.version
    client = make_client(store_copy.tracking_uri)
    assert_serving(client, old)
    artifacts = tmp_path / "doomed-artifacts"
    doomed = register_artifact_copy(store_copy, serving_versions.alternate, artifacts)
    set_champion(store_copy, doomed)
    if deleted == "folder":
        shutil.rmtree(artifacts)
    else:
        for path in sorted(artifacts.rglob("*"), reverse=True):
            if path.is_file():
                path.unlink()

    refused = client.post("/admin/reload", headers=auth())
    assert refused.status_code == 409, refused.text  # not servable; 502 is for an unreachable registry
    detail = refused.json()["detail"]
    assert f"version {doomed}" in detail, f"the refusal does not name the refused version {doomed}: {detail}"
    assert f"still serving version {old}" in detail
    assert_serving(client, old)
    assert client.get("/model").json()["model_version"] == old

    set_champion(store_copy, old)  # the operator rolls the alias back: the reload agrees, nothing changes
    back = client.post("/admin/reload", headers=auth())
    assert back.status_code == 200, back.text
    assert (back.json()["new_version"], back.json()["changed"]) == (old, False)
    assert_serving(client, old)
