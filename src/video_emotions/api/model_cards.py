"""``GET /v1/models/{name}/card``: what the engine a name runs is, and its measured error rates."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from video_emotions.api import schemas
from video_emotions.context import ServiceContext
from video_emotions.errors import InputError, ModelUnavailableError, NotFoundError
from video_emotions.vision.cards import engine_card

router = APIRouter(prefix="/v1/models", tags=["models"])


def card_document(ctx: ServiceContext, name: str) -> dict[str, Any]:
    """The card of the engine ``name`` runs now (an alias, an app name or an engine); NotFoundError for
    a name nobody knows."""
    try:
        resolved = ctx.models.resolve(name)
    except InputError as exc:
        raise NotFoundError(f"no model {name!r}: use one of {', '.join(ctx.models.names())}") from exc
    try:
        route = ctx.models.route(name)  # yolo asks its endpoint whether it answers
        engine, note = route.engine, route.note
    except ModelUnavailableError as exc:  # VE_STRICT_MODELS: refused here; the card is still its own
        engine, note = ("yolo_local" if resolved == "yolo" else resolved), str(exc)
    settings = ctx.settings
    card = engine_card(engine, classifier=settings.classifier, deepface_detector=settings.deepface_detector)
    return {"name": name, "engine": engine, "note": note, **card.document()}


@router.get("/{name}/card", responses={200: {"model": schemas.ModelCard}, **schemas.errors(401, 404, 422)})
async def model_card(request: Request, name: str) -> dict[str, Any]:
    """A model card: what the engine ``name`` runs is, the words its numbers need ("facial-expression
    estimates, not feelings"), and its measured figures with their dates and sources (an engine
    without figures of ours says so)."""
    ctx: ServiceContext = request.app.state.ctx
    return await run_in_threadpool(card_document, ctx, name)
