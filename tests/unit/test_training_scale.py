"""Pure pieces of training at scale: the CV sample setting and quotas, and exact float32 tree thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from lifeboat.orchestration.pipeline import train_args
from lifeboat.settings import MIN_CV_SAMPLE_ROWS, get_settings
from lifeboat.training.onnx_export import float32_at_or_below
from lifeboat.training.selection import stratified_quotas
from lifeboat.training.train import TrainConfig

pytestmark = pytest.mark.unit


# --- The setting --------------------------------------------------------------------------------------------


def test_cv_sample_rows_is_read_from_the_environment_and_reaches_the_train_job(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings_env.setenv("LIFEBOAT_CV_SAMPLE_ROWS", "20000")
    settings = get_settings()
    assert settings.cv_sample_rows == 20_000
    args = train_args(settings, tmp_path / "preprocess", tmp_path / "train")
    assert args[args.index("--cv-sample-rows") + 1] == "20000"


@pytest.mark.parametrize("value", ["0", str(MIN_CV_SAMPLE_ROWS), "5000000"])
def test_cv_sample_rows_accepts_zero_or_a_usable_size(settings_env: pytest.MonkeyPatch, value: str) -> None:
    settings_env.setenv("LIFEBOAT_CV_SAMPLE_ROWS", value)
    assert get_settings().cv_sample_rows == int(value)


@pytest.mark.parametrize("value", ["-1", "1", str(MIN_CV_SAMPLE_ROWS - 1), "many"])
def test_cv_sample_rows_refuses_negative_tiny_or_non_numbers(
    settings_env: pytest.MonkeyPatch, value: str
) -> None:
    settings_env.setenv("LIFEBOAT_CV_SAMPLE_ROWS", value)
    with pytest.raises(ValidationError, match="cv_sample_rows"):
        get_settings()


@pytest.mark.parametrize("value", [-5, 1, MIN_CV_SAMPLE_ROWS - 1])
def test_train_config_refuses_a_tiny_sample(tmp_path: Path, value: int) -> None:
    with pytest.raises(ValueError, match="cv_sample_rows"):
        TrainConfig(input_dir=tmp_path, output_dir=tmp_path, model_name="m", cv_sample_rows=value)


# --- Quotas -------------------------------------------------------------------------------------------------


def test_quotas_keep_the_label_mix_and_sum_to_the_sample_size() -> None:
    quotas = stratified_quotas({0: 493_000, 1: 307_000}, 100_000)
    assert quotas == {0: 61_625, 1: 38_375}
    odd = stratified_quotas({0: 2, 1: 1}, 2)  # 1.33 and 0.67: the larger remainder gets the row
    assert odd == {0: 1, 1: 1}
    assert sum(stratified_quotas({0: 1_001, 1: 999, 2: 7}, 1_000).values()) == 1_000


def test_quotas_keep_every_row_when_the_data_is_small_or_sampling_is_off() -> None:
    counts = {0: 400, 1: 312}
    assert stratified_quotas(counts, 712) == counts
    assert stratified_quotas(counts, 100_000) == counts
    assert stratified_quotas(counts, 0) == counts


def test_a_rare_label_keeps_at_least_one_row() -> None:
    quotas = stratified_quotas({0: 1_000_000, 1: 3}, 1_000)
    assert quotas[1] == 1
    assert quotas[0] == 1_000


# --- float32 thresholds -------------------------------------------------------------------------------------


def test_float32_threshold_is_the_largest_float32_not_above_the_double() -> None:
    midpoint = (float(np.float32(0.1)) + float(np.float32(0.2))) / 2
    down = float32_at_or_below(midpoint)
    assert down <= midpoint
    assert float(np.float32(down)) == down  # representable: ONNX stores it unchanged
    assert float(np.nextafter(np.float32(down), np.float32(np.inf))) > midpoint
    assert float(np.float32(midpoint)) > midpoint  # what rounding to nearest would have stored


@pytest.mark.parametrize("value", [0.5, 0.0, -3.0, 7.25, float(np.float32(1e-30))])
def test_float32_threshold_keeps_representable_values(value: float) -> None:
    assert float32_at_or_below(value) == value


def test_float32_threshold_decides_like_the_double_for_every_nearby_float32() -> None:
    rng = np.random.default_rng(1)
    for threshold in rng.uniform(-100, 100, 200):
        exact = float32_at_or_below(float(threshold))
        candidate = np.float32(threshold)
        for x in (
            np.nextafter(candidate, np.float32(-np.inf)),
            candidate,
            np.nextafter(candidate, np.float32(np.inf)),
        ):
            assert (float(x) <= threshold) == (x <= np.float32(exact))
