"""The floor of the serving benchmark: a FastAPI app that parses a JSON body and returns a constant.

``uvicorn --factory benchmarks.trivial_app:create_app`` (run from the repository root). It does everything a
JSON prediction endpoint cannot avoid (HTTP parsing, routing, reading and decoding the body, encoding a small
JSON answer) and nothing else, so "our server reaches X % of it" says how much the model adds.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request

#: The answer of every request: the shape of a lifeboat prediction.
CONSTANT_ANSWER: dict[str, Any] = {
    "survived": 0,
    "probability_survive": 0.5,
    "drift_alerts": "No drift detected",
    "model_version": "0",
}


def create_app() -> FastAPI:
    """One POST endpoint, ``/predict``: parse the JSON body, answer a constant dict."""
    app = FastAPI(title="trivial floor", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        json.loads(await request.body())
        return CONSTANT_ANSWER

    return app
