"""The minimal FastAPI endpoint of the serving benchmark: the same servable behind one route.

    uvicorn benchmarks.peers.serving_fastapi:app --workers 2     (SERVABLE_DIR=serving/ctr/1)

No batching, no validation beyond the servable's own, no metrics: what a team writes in an afternoon.
Inference runs in FastAPI's thread pool (a plain ``def`` route), off the event loop.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException

from sluice.registry.servable import InvalidRequest, Servable

servable = Servable.load(os.environ["SERVABLE_DIR"])
app = FastAPI()


@app.post("/predict")
def predict(body: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"predictions": servable.predict_rows(body["instances"])}
    except (InvalidRequest, KeyError) as exc:
        raise HTTPException(400, str(exc)) from None
