"""Orchestration: the retraining steps the DAGs run, the Airflow REST client, alerts, the UI pages."""
