"""The MLflow registry: the serving artifact, holdout metrics, the gate, promotion and rollback."""
