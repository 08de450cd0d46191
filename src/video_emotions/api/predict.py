"""``POST /v1/predict``: Vertex AI's prediction JSON, answered by a local engine.

So one machine (a GPU one, say) can be the ``yolo_cloud`` endpoint of many services. Each instance
is an image (``{"image": "<base64 JPEG or PNG>"}``); the engine named by ``model_type`` (default
``VE_DEFAULT_MODEL``, aliases apply) estimates it as it would a video frame: its prediction is our
seven probabilities (summing to 1) for the largest face, or ``{"No face detected": 0.0}``, the
legacy marker, when the engine finds none. The answer also says which engine and model file
answered, as Vertex does (``deployedModelId``, ``model``, ``modelVersionId``: the file's sha256).

Inference runs in a pool of ``VE_WORKERS`` threads, each with its own engine, off the event loop:
requests beyond that wait in line, and the engines in memory stay that many.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from video_emotions.api import schemas
from video_emotions.context import ServiceContext
from video_emotions.domain import NO_FACE_KEY
from video_emotions.errors import InputError
from video_emotions.jobs.runner import engine_for

router = APIRouter()
_pool_lock = threading.Lock()


class Instance(BaseModel):
    image: str


class PredictRequest(BaseModel):
    instances: list[Instance]
    #: Vertex requests may carry parameters; none are used.
    parameters: dict[str, Any] | None = None


def _decode(index: int, text: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(base64.b64decode(text, validate=True))) as image:
            return np.asarray(image.convert("RGB"))
    # ValueError: binascii.Error, or a string with other than ASCII characters in it.
    except (ValueError, UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise InputError(f"instances[{index}].image is not a base64-encoded image: {exc}") from exc


def _predict(ctx: ServiceContext, engine_name: str, instances: list[Instance]) -> dict[str, Any]:
    images = [_decode(i, instance.image) for i, instance in enumerate(instances)]
    engine = engine_for(ctx, engine_name)
    estimates = engine.estimate(images) if images else []
    return {
        "predictions": [
            {NO_FACE_KEY: 0.0} if e.probabilities is None else e.probabilities for e in estimates
        ],
        "deployedModelId": engine.name,
        "model": engine.model_file,
        "modelVersionId": engine.model_sha256,
    }


def _pool(app: FastAPI, workers: int) -> ThreadPoolExecutor:
    with _pool_lock:
        if getattr(app.state, "predict_pool", None) is None:
            app.state.predict_pool = ThreadPoolExecutor(workers, thread_name_prefix="predict")
        return app.state.predict_pool


@router.post(
    "/v1/predict",
    responses={
        200: {"model": schemas.PredictResponse},
        **schemas.errors(
            400,
            401,
            422,
            503,
            checked="unknown or unavailable model_type, yolo_cloud, an instance that is no image.",
        ),
    },
)
async def predict(request: Request, body: PredictRequest, model_type: str | None = None) -> dict[str, Any]:
    """Vertex AI's ``:predict`` with a local engine; see the module text for the answer's shape."""
    ctx: ServiceContext = request.app.state.ctx
    # No fallback to the default here: the instances this endpoint serves ask for a model by name.
    engine_name = await run_in_threadpool(ctx.models.check, model_type, fallback=False)
    if engine_name == "yolo_cloud":
        raise InputError("/v1/predict serves local models only; yolo_cloud would send the images on")
    future = _pool(request.app, ctx.settings.workers).submit(_predict, ctx, engine_name, body.instances)
    return await asyncio.wrap_future(future)
