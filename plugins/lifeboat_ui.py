"""lifeboat's pages in the Airflow UI: "Monitoring" and "Models" (the logic is in
:mod:`lifeboat.orchestration.ui`).

The FastAPI app is mounted by the api-server under ``/lifeboat``; the two external views put it in the UI's
"Browse" menu and show it in an iframe (``url_route``). Their ``href`` has no leading slash, so it resolves
against the UI's base URL (``[api] base_url``). Every route checks Airflow's own login and permissions.
Importing this module builds the app but reads no file and opens no connection.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from lifeboat.orchestration.ui import create_ui_app

URL_PREFIX = "/lifeboat"


class LifeboatUIPlugin(AirflowPlugin):
    """Monitoring (drift and live performance) and model registry pages of lifeboat, inside the Airflow UI."""

    name = "lifeboat"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_ui_app(), "url_prefix": URL_PREFIX, "name": "lifeboat"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Monitoring",
            "href": f"{URL_PREFIX.lstrip('/')}/monitoring",
            "url_route": "lifeboat-monitoring",
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "Models",
            "href": f"{URL_PREFIX.lstrip('/')}/models",
            "url_route": "lifeboat-models",
            "destination": "nav",
            "category": "browse",
        },
    ]
