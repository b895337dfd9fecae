"""Save and restore MLflow's process-wide tracking and registry URIs around a block.

``mlflow.set_tracking_uri`` / ``mlflow.set_registry_uri`` change module globals *and* the
``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` variables that every subprocess inherits. A test that sets
them and does not put them back sends later tests (and the services they start) to a store that no longer
exists, so every place the tests set them goes through :func:`mlflow_uris_restored`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

#: The variables MLflow reads (and its setters write) for the two URIs.
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _globals() -> tuple[object, object]:
    """MLflow's two URI globals (None, None when MLflow was never imported: then they are unset)."""
    if "mlflow" not in sys.modules:
        return None, None
    # Private module globals: the public getters resolve defaults; setting those back would not restore.
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri, registry_utils._registry_uri


@contextmanager
def mlflow_uris_restored() -> Iterator[None]:
    """Run the block, then put MLflow's URI globals and variables back exactly as they were."""
    saved_env = {name: os.environ.get(name) for name in URI_VARIABLES}
    saved_tracking, saved_registry = _globals()
    try:
        yield
    finally:
        if "mlflow" in sys.modules:
            from mlflow.tracking._model_registry import utils as registry_utils
            from mlflow.tracking._tracking_service import utils as tracking_utils

            tracking_utils._tracking_uri = saved_tracking
            registry_utils._registry_uri = saved_registry
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
