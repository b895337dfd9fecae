"""Settings: environment overrides, production refuses placeholder secrets, no side effects."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lifeboat.settings import Settings, get_settings

pytestmark = pytest.mark.unit


def test_defaults_are_development_with_no_token(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("LIFEBOAT_RELOAD_TOKEN", raising=False)
    settings_env.delenv("LIFEBOAT_ENVIRONMENT", raising=False)
    settings = get_settings()
    assert settings.environment == "development"
    assert settings.reload_token is None
    assert settings.model_name == "titanic-survival"


def test_environment_variables_override(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LIFEBOAT_GATE_MIN_ROC_AUC", "0.9")
    settings_env.setenv("LIFEBOAT_MODEL_FAMILIES", '["lr"]')
    settings = get_settings()
    assert settings.gate_min_roc_auc == 0.9
    assert settings.model_families == ["lr"]


@pytest.mark.parametrize("token", [None, "changeme", "admin", "short-token"])
def test_production_refuses_missing_or_placeholder_token(
    settings_env: pytest.MonkeyPatch, token: str | None
) -> None:
    settings_env.setenv("LIFEBOAT_ENVIRONMENT", "production")
    if token is None:
        settings_env.delenv("LIFEBOAT_RELOAD_TOKEN", raising=False)
    else:
        settings_env.setenv("LIFEBOAT_RELOAD_TOKEN", token)
    with pytest.raises(ValidationError, match="LIFEBOAT_RELOAD_TOKEN"):
        Settings()


def test_production_accepts_a_real_token(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LIFEBOAT_ENVIRONMENT", "production")
    settings_env.setenv("LIFEBOAT_RELOAD_TOKEN", "f" * 8 + "0123456789abcdef")
    settings = Settings()
    assert settings.reload_token is not None
    assert "0123456789abcdef" not in repr(settings)


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize("token", ["short-token", "changeme", "  token  "])
def test_a_short_or_placeholder_token_is_refused_in_every_environment(
    settings_env: pytest.MonkeyPatch, environment: str, token: str
) -> None:
    settings_env.setenv("LIFEBOAT_ENVIRONMENT", environment)
    settings_env.setenv("LIFEBOAT_RELOAD_TOKEN", token)
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings()


def test_the_token_is_compared_as_it_was_validated(settings_env: pytest.MonkeyPatch) -> None:
    """A token file ending in a newline gives the same token to the server and to its callers."""
    settings_env.setenv("LIFEBOAT_ENVIRONMENT", "production")
    settings_env.setenv("LIFEBOAT_RELOAD_TOKEN", "0123456789abcdef-token\n")
    token = Settings().reload_token
    assert token is not None
    assert token.get_secret_value() == "0123456789abcdef-token"
    settings_env.setenv("LIFEBOAT_RELOAD_TOKEN", "   ")
    settings_env.setenv("LIFEBOAT_ENVIRONMENT", "development")
    assert Settings().reload_token is None  # blank = unset: reload disabled


def test_tracking_uri_precedence(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings_env.setenv("LIFEBOAT_STATE_DIR", str(tmp_path))
    settings_env.delenv("LIFEBOAT_MLFLOW_TRACKING_URI", raising=False)
    settings_env.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Settings().tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings_env.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert Settings().tracking_uri == "http://127.0.0.1:5999"
    settings_env.setenv("LIFEBOAT_MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert Settings().tracking_uri == "http://mlflow:5000"


def test_settings_create_nothing_on_disk(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings_env.setenv("LIFEBOAT_STATE_DIR", str(state))
    settings = Settings()
    _ = (
        settings.tracking_uri,
        settings.runs_dir,
        settings.prediction_log_path,
        settings.resolved_reports_dir,
    )
    assert not state.exists()


def test_bad_values_are_refused(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LIFEBOAT_HOLDOUT_PERCENT", "90")
    with pytest.raises(ValidationError, match="holdout_percent"):
        Settings()


def test_titanic_is_the_default_dataset_and_keeps_its_names(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("LIFEBOAT_DATASET", raising=False)
    settings = get_settings()
    assert settings.dataset == "titanic"
    assert settings.raw_data == Path("data/titanic/raw/train.csv")
    assert settings.unlabelled_data == Path("data/titanic/raw/test.csv")
    assert settings.incoming_dir == Path("data/titanic/incoming")
    assert (settings.experiment_name, settings.model_name) == ("titanic-retrain", "titanic-survival")
    assert settings.runs_dir == settings.state_dir / "titanic" / "runs"
    assert settings.prediction_log_path == settings.state_dir / "titanic" / "predictions.sqlite"
    assert settings.resolved_reports_dir == settings.state_dir / "titanic" / "reports"


def test_another_dataset_gets_its_own_folders_experiment_and_model(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LIFEBOAT_DATASET", "adult")
    settings = get_settings()
    assert settings.raw_data == Path("data/adult/raw/train.csv")
    assert settings.incoming_dir == Path("data/adult/incoming")
    assert (settings.experiment_name, settings.model_name) == ("adult-retrain", "adult")
    assert settings.runs_dir == settings.state_dir / "adult" / "runs"


def test_explicit_paths_and_names_win_over_the_dataset_defaults(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LIFEBOAT_DATASET", "adult")
    settings_env.setenv("LIFEBOAT_RAW_DATA", "/srv/census.csv")
    settings_env.setenv("LIFEBOAT_MODEL_NAME", "census-income")
    settings = get_settings()
    assert settings.raw_data == Path("/srv/census.csv")
    assert settings.model_name == "census-income"
    assert settings.incoming_dir == Path("data/adult/incoming")


@pytest.mark.parametrize("name", ["Titanic", "my dataset", "../etc", "1st", ""])
def test_a_dataset_name_must_be_a_plain_lowercase_identifier(name: str) -> None:
    with pytest.raises(ValidationError, match="dataset"):
        Settings(dataset=name)


def test_for_dataset_keeps_shared_values_and_drops_the_datasets_own(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("LIFEBOAT_DATASET", raising=False)
    titanic = Settings(state_dir=Path("/srv/state"), seed=7, reports_dir=Path("/srv/reports"))
    adult = titanic.for_dataset("adult")
    assert (adult.dataset, adult.state_dir, adult.seed) == ("adult", Path("/srv/state"), 7)
    assert adult.resolved_reports_dir == Path("/srv/state/adult/reports")
    assert adult.model_name == "adult"
    assert titanic.for_dataset("titanic") is titanic
    assert {"adult", "titanic"} <= set(titanic.known_datasets())


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize("token", ["short-token", "changeme", "  token  "])
def test_a_short_or_placeholder_feedback_token_is_refused(
    settings_env: pytest.MonkeyPatch, environment: str, token: str
) -> None:
    settings_env.setenv("LIFEBOAT_ENVIRONMENT", environment)
    settings_env.setenv("LIFEBOAT_RELOAD_TOKEN", "0123456789abcdef-reload")
    settings_env.setenv("LIFEBOAT_FEEDBACK_TOKEN", token)
    with pytest.raises(
        ValidationError, match="LIFEBOAT_FEEDBACK_TOKEN must be set to a random value of at least 16"
    ):
        Settings()


def test_the_feedback_token_is_optional_even_in_production(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LIFEBOAT_ENVIRONMENT", "production")
    settings_env.setenv("LIFEBOAT_RELOAD_TOKEN", "0123456789abcdef-reload")
    settings_env.setenv("LIFEBOAT_FEEDBACK_TOKEN", " \n")
    assert Settings().feedback_token is None  # blank = unset: the feedback endpoint answers 503
    settings_env.setenv("LIFEBOAT_FEEDBACK_TOKEN", "0123456789abcdef-feedback\n")
    settings = Settings()
    assert settings.feedback_token is not None
    assert settings.feedback_token.get_secret_value() == "0123456789abcdef-feedback"
    assert "0123456789abcdef-feedback" not in repr(settings)
