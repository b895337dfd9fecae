"""lifeboat: an Airflow-scheduled retraining platform (DVC, Spark, MLflow, Evidently, FastAPI)."""

__version__ = "0.1.0"
