"""The one settings object of lifeboat.

Every value can be set by an environment variable with the prefix ``LIFEBOAT_`` (for example
``LIFEBOAT_MODEL_NAME``) or in a ``.env`` file. Read it through :func:`get_settings`; tests override values
with ``get_settings.cache_clear()`` after changing the environment. Nothing here touches the disk.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Values that look like a secret but are known to every reader of the docs: production refuses them.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "token", "admin", "dev-token", "password"}
)
MIN_SECRET_LENGTH = 16
#: Smallest cross-validation sample (``cv_sample_rows``) other than 0 (= never sample): below it the folds are
#: too small for model selection to mean anything.
MIN_CV_SAMPLE_ROWS = 100
#: Default of ``cv_sample_rows`` (docs/benchmarks.md, "Retraining scale", explains the choice).
DEFAULT_CV_SAMPLE_ROWS = 50_000


#: The dataset of a fresh checkout, and what a dataset's name may be (a folder, a DAG id prefix, a URL part).
DEFAULT_DATASET = "titanic"
DATASET_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
#: Settings that belong to one dataset: another dataset (``Settings.for_dataset``) never inherits them.
DATASET_DERIVED_FIELDS = frozenset(
    {
        "dataset_spec",
        "raw_data",
        "unlabelled_data",
        "incoming_dir",
        "reports_dir",
        "experiment_name",
        "model_name",
    }
)
#: Registered model names that predate the dataset platform and are kept (the MLflow history lives there).
LEGACY_MODEL_NAMES = {"titanic": "titanic-survival"}


def _derived_defaults(dataset: str, data_root: Any) -> dict[str, Any]:
    """The per-dataset defaults: data paths under ``data_root/<dataset>``, experiment and model names."""
    folder = Path(data_root or "data") / dataset
    return {
        "dataset_spec": folder / "dataset.yaml",
        "raw_data": folder / "raw" / "train.csv",
        "unlabelled_data": folder / "raw" / "test.csv",
        "incoming_dir": folder / "incoming",
        "experiment_name": f"{dataset}-retrain",
        "model_name": LEGACY_MODEL_NAMES.get(dataset, dataset),
    }


class SettingsError(ValueError):
    """A setting is missing or unacceptable for the chosen environment."""


class Settings(BaseSettings):
    """All configuration of lifeboat; see the README's settings table for each field."""

    # Validation errors never echo the input: it holds the reload token (seen in crash logs otherwise).
    model_config = SettingsConfigDict(
        env_prefix="LIFEBOAT_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "production"] = "development"

    # The dataset every command works on (data/<dataset>/, .lifeboat/<dataset>/); --dataset overrides it.
    dataset: str = Field(DEFAULT_DATASET, pattern=DATASET_NAME_PATTERN)

    # Paths (relative paths are resolved against the current working directory). The data paths default to
    # the dataset's folders (see _dataset_defaults): data/<dataset>/raw/train.csv, .../raw/test.csv and
    # data/<dataset>/incoming.
    state_dir: Path = Path(".lifeboat")
    data_root: Path = Path("data")
    dataset_spec: Path = Path(f"data/{DEFAULT_DATASET}/dataset.yaml")
    raw_data: Path = Path(f"data/{DEFAULT_DATASET}/raw/train.csv")
    unlabelled_data: Path = Path(f"data/{DEFAULT_DATASET}/raw/test.csv")
    incoming_dir: Path = Path(f"data/{DEFAULT_DATASET}/incoming")
    reports_dir: Path | None = None

    # MLflow (defaults per dataset: experiment <dataset>-retrain, model <dataset>; Titanic keeps its names)
    mlflow_tracking_uri: str | None = None
    mlflow_ui_url: str | None = None
    experiment_name: str = f"{DEFAULT_DATASET}-retrain"
    model_name: str = LEGACY_MODEL_NAMES[DEFAULT_DATASET]

    # Data split and training
    seed: int = 42
    holdout_percent: int = Field(20, ge=5, le=50)
    cv_folds: int = Field(5, ge=2, le=10)
    model_families: list[Literal["lr", "rf", "gbt"]] = Field(default=["lr", "rf", "gbt"])
    # Model selection (CV over families and grids) runs on a stratified, seeded sample of at most this many
    # train rows; the chosen configuration is then fitted on ALL train rows. 0 = cross-validate on all rows.
    cv_sample_rows: int = Field(DEFAULT_CV_SAMPLE_ROWS, ge=0)
    spark_master: str = "local[*]"
    spark_driver_memory: str = "2g"

    # Promotion gate (DESIGN.md "The promotion gate")
    gate_min_roc_auc: float = 0.80
    gate_min_accuracy: float = 0.75
    gate_min_improvement: float = 0.005
    gate_primary_metric: Literal["roc_auc", "pr_auc", "accuracy", "f1"] = "roc_auc"
    gate_guard_accuracy_tolerance: float = 0.02
    gate_guard_recall_tolerance: float = 0.05
    gate_guard_brier_tolerance: float = 0.01
    parity_tolerance: float = 1e-5

    # Serving
    serving_host: str = "127.0.0.1"
    serving_port: int = 8000
    serving_workers: int = Field(1, ge=1, le=64)
    serving_url: str = "http://127.0.0.1:8000"
    reload_token: SecretStr | None = None
    # Token of POST /v1/datasets/{dataset}/feedback (ground-truth labels); unset disables the endpoint.
    feedback_token: SecretStr | None = None
    feedback_max_labels: int = Field(10_000, ge=1)
    registry_poll_seconds: float = Field(30.0, ge=0)
    max_batch_rows: int = Field(1000, ge=1)
    # Batches one server worker parses and scores at once; more wait their turn (bounded memory).
    serving_batch_concurrency: int = Field(2, ge=1, le=64)
    max_body_bytes: int = Field(2_000_000, ge=1024)
    prediction_log_max_rows: int = Field(100_000, ge=100)
    # Live performance (lifeboat monitor, the DAG's monitor_performance task, the server's live gauges): the
    # newest labelled predictions of the champion that are measured.
    monitor_window_rows: int = Field(5000, ge=1)
    # Stored labels start a retraining run (serving/label_events.py): an event on the dataset's incoming asset
    # through Airflow's REST API, as a user with Airflow's "op" role. No URL: no events (the nightly run
    # measures the labels). Events are at most one per dataset per interval.
    airflow_events_url: str | None = None
    airflow_events_user: str = "lifeboat-feedback"
    airflow_events_password: SecretStr | None = None
    label_event_interval_seconds: float = Field(60.0, ge=0)
    # Datasets whose champions one server hosts, comma-separated (empty = every known dataset); the default
    # dataset (``dataset``) is always served.
    serving_datasets: str = ""

    # Drift monitoring (lifeboat/monitoring/drift.py explains the defaults: they were calibrated on 300-row
    # batches)
    drift_min_rows: int = Field(300, ge=1)
    drift_share_threshold: float = Field(0.1, gt=0, le=1)
    drift_num_method: str = "wasserstein"
    drift_cat_method: str = "jensenshannon"
    drift_num_threshold: float = Field(0.2, gt=0)
    drift_cat_threshold: float = Field(0.075, gt=0)
    drift_sample_rows: int = Field(50_000, ge=0)
    drift_window_rows: int = Field(5_000, ge=1)
    drift_window_hours: float = Field(168.0, gt=0)
    drift_policy: Literal["retrain_on_drift", "report_only", "always"] = "retrain_on_drift"

    # Orchestration (the Airflow DAGs) and alerts
    retrain_schedule: str = "0 2 * * *"
    task_retries: int = Field(2, ge=0, le=10)
    task_retry_delay_seconds: float = Field(60.0, ge=0)
    task_timeout_minutes: float = Field(20.0, gt=0)
    spark_task_timeout_minutes: float = Field(90.0, gt=0)
    reload_wait_seconds: float = Field(60.0, gt=0)
    # A Slack-style webhook URL is a credential: kept secret, never logged.
    alert_webhook_url: SecretStr | None = None
    alert_emails: list[str] = Field(default_factory=list)
    alert_email_from: str = "lifeboat@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25

    # The embedded stack (`make run`): ports on loopback
    airflow_port: int = 8080
    mlflow_port: int = 5000

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, values: Any) -> Any:
        """Fill the per-dataset defaults (data paths, experiment, model name) from ``dataset``."""
        if not isinstance(values, dict):
            return values
        dataset = str(values.get("dataset") or DEFAULT_DATASET)
        for key, value in _derived_defaults(dataset, values.get("data_root")).items():
            values.setdefault(key, value)
        return values

    @field_validator("cv_sample_rows")
    @classmethod
    def _cv_sample_large_enough(cls, value: int) -> int:
        if 0 < value < MIN_CV_SAMPLE_ROWS:
            raise ValueError(
                f"must be 0 (cross-validate on every train row) or at least {MIN_CV_SAMPLE_ROWS}, got {value}"
            )
        return value

    @field_validator("airflow_events_url")
    @classmethod
    def _http_events_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _events_need_a_password(self) -> Settings:
        if self.airflow_events_url is not None and not (
            self.airflow_events_password and self.airflow_events_password.get_secret_value()
        ):
            raise ValueError(
                "LIFEBOAT_AIRFLOW_EVENTS_URL is set but LIFEBOAT_AIRFLOW_EVENTS_PASSWORD is not: the server "
                f"cannot log in to Airflow as {self.airflow_events_user!r}"
            )
        return self

    @field_validator("alert_webhook_url")
    @classmethod
    def _http_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")  # pydantic hides the input (secret)
        return value

    @field_validator("reload_token", "feedback_token")
    @classmethod
    def _strip_token(cls, value: SecretStr | None) -> SecretStr | None:
        """Surrounding whitespace (a newline from ``echo > file``) is not part of the token: the server
        compares the same stripped value it validated. Empty means unset (the endpoint is disabled)."""
        if value is None:
            return None
        stripped = value.get_secret_value().strip()
        return SecretStr(stripped) if stripped else None

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        production = self.environment == "production"
        # In every environment: a short token is guessable (the embedded stack's loopback port is open to
        # every local user), so development refuses it too; only production requires a reload token.
        for variable, secret, endpoint, required in (
            ("LIFEBOAT_RELOAD_TOKEN", self.reload_token, "/admin/reload", production),
            ("LIFEBOAT_FEEDBACK_TOKEN", self.feedback_token, "the feedback endpoint", False),
        ):
            token = secret.get_secret_value() if secret else ""
            weak = token.lower() in PLACEHOLDER_SECRETS or len(token) < MIN_SECRET_LENGTH
            if weak and (token or required):
                raise SettingsError(
                    f"{variable} must be set to a random value of at least {MIN_SECRET_LENGTH} characters"
                    + (
                        " in production (placeholders are refused)"
                        if required
                        else " (placeholders are refused)"
                    )
                    + ("" if required else f"; leave it unset to disable {endpoint}")
                )
        return self

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: the setting, else ``MLFLOW_TRACKING_URI``, else SQLite in state_dir."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        from_env = os.environ.get("MLFLOW_TRACKING_URI")
        if from_env:
            return from_env
        return f"sqlite:///{(self.state_dir / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        """Where a local (server-less) MLflow store keeps artifacts."""
        return (self.state_dir / "mlartifacts").resolve()

    def for_dataset(self, dataset: str) -> Settings:
        """These settings for another dataset: the same values, except those derived from the dataset."""
        if dataset == self.dataset:
            return self
        kept = self.model_dump(include=self.model_fields_set - DATASET_DERIVED_FIELDS - {"dataset"})
        # The derived values are passed explicitly: a LIFEBOAT_MODEL_NAME (etc.) in the environment names the
        # default dataset's model, never another dataset's.
        derived = {"reports_dir": None, **_derived_defaults(dataset, self.data_root)}
        return type(self)(**kept, **derived, dataset=dataset)

    def known_datasets(self) -> list[str]:
        """The datasets under ``data_root``: every folder holding a ``dataset.yaml``, sorted."""
        return sorted(p.parent.name for p in self.data_root.glob("*/dataset.yaml"))

    def served_datasets(self) -> list[str]:
        """The datasets the prediction server hosts: the default dataset first, then ``serving_datasets``
        (empty: every known dataset) in order, each once."""
        wanted = [d.strip() for d in self.serving_datasets.split(",") if d.strip()]
        chosen = wanted if wanted else self.known_datasets()
        bad = [d for d in chosen if not re.fullmatch(DATASET_NAME_PATTERN, d)]
        if bad:
            raise SettingsError(
                f"LIFEBOAT_SERVING_DATASETS: {', '.join(map(repr, bad))} is not a dataset name"
            )
        return list(dict.fromkeys([self.dataset, *chosen]))

    @property
    def dataset_state_dir(self) -> Path:
        """The dataset's own state: ``<state_dir>/<dataset>/`` (runs, drift reports, prediction log)."""
        return self.state_dir / self.dataset

    @property
    def runs_dir(self) -> Path:
        """Where each retraining run writes its outputs (one folder per run id)."""
        return self.dataset_state_dir / "runs"

    @property
    def prediction_log_path(self) -> Path:
        """The SQLite file that logs every scored row for drift monitoring."""
        return self.dataset_state_dir / "predictions.sqlite"

    @property
    def resolved_reports_dir(self) -> Path:
        """Where drift reports (HTML + JSON) are written."""
        return self.reports_dir if self.reports_dir is not None else self.dataset_state_dir / "reports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached; call ``get_settings.cache_clear()`` to re-read)."""
    return Settings()


@lru_cache(maxsize=64)
def settings_for(dataset: str) -> Settings:
    """The settings of one named dataset, whatever ``LIFEBOAT_DATASET`` says (the per-dataset DAGs use it).

    Every other value comes from the environment as in :func:`get_settings`; cached per dataset
    (``settings_for.cache_clear()`` re-reads).
    """
    return Settings(dataset=dataset)
