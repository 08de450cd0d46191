"""The model registry: which ``model_type`` names exist, whether each can run here, and loading them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from video_emotions.config import Settings
from video_emotions.errors import InputError, ModelUnavailableError
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.classifier_registry import load_classifier
from video_emotions.vision.engine import DetectorClassifierEngine, EmotionEngine
from video_emotions.vision.modelfiles import BLAZEFACE_FULL_RANGE, ModelCache, file_sha256

if TYPE_CHECKING:
    from video_emotions.vision.blazeface import BlazeFaceDetector


@dataclass(frozen=True)
class ModelStatus:
    """One model as ``GET /v1/models`` shows it.

    ``reason``: why it is not available. ``served_by``: the engine a request for it runs now, with
    ``note`` saying why when that is another one (``yolo``, ``yolo_cloud`` falling back, or the
    default serving an engine that cannot run here); None when such a request is refused
    (``VE_STRICT_MODELS``).
    """

    name: str
    description: str
    available: bool
    reason: str | None = None
    served_by: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class EngineIdentity:
    """What produced a result: the engine, its model file and sha256, and the settings that matter."""

    engine: str
    model_file: str
    model_sha256: str
    details: dict[str, Any] = field(default_factory=dict)


def _detector_file(settings: Settings) -> Path:
    return ModelCache(settings.model_dir).fetch(BLAZEFACE_FULL_RANGE)


def _default_classifier(settings: Settings) -> EmotionClassifier:
    """The classifier ``VE_CLASSIFIER`` names (as ``video-emotions eval`` takes it), on one thread."""
    try:
        return load_classifier(settings.classifier, settings).classifier
    except InputError as exc:
        raise ModelUnavailableError(f"VE_CLASSIFIER: {exc}") from exc


def _load_default(settings: Settings) -> EmotionEngine:
    from video_emotions.vision.blazeface import BlazeFaceDetector

    detector = BlazeFaceDetector(_detector_file(settings), threshold=settings.detector_threshold, threads=1)
    return DetectorClassifierEngine(
        "default",
        detector,
        _default_classifier(settings),
        crop_margin=settings.crop_margin,
        align_faces=settings.align_faces,
    )


def _identify_default(settings: Settings) -> EngineIdentity:
    detector_file = _detector_file(settings)
    classifier = _default_classifier(settings)
    return EngineIdentity(
        engine="default",
        model_file=f"{detector_file.name}+{classifier.path.name}",
        model_sha256=classifier.sha256,
        details={
            "detector_sha256": file_sha256(detector_file),
            "classifier": settings.classifier,
            "crop_margin": settings.crop_margin,
            "detector_threshold": settings.detector_threshold,
            "align_faces": settings.align_faces,
            # Not the engine's, but it decides each segment's summary.
            "aggregation": settings.aggregation,
        },
    )


def _default_status(settings: Settings) -> str | None:
    cache = ModelCache(settings.model_dir)
    if not cache.path(BLAZEFACE_FULL_RANGE).is_file():
        return (
            f"model files not pulled into {cache.root}: run `video-emotions models pull` "
            "(they are downloaded on first use otherwise)"
        )
    return None


@dataclass(frozen=True)
class ModelEntry:
    description: str
    #: Why the model cannot run here, or None when it can (a missing download is not fatal).
    unavailable: Callable[[Settings], str | None]
    #: None for ``yolo``, which is routed to another entry (:meth:`ModelRegistry.route`).
    load: Callable[[Settings], EmotionEngine] | None
    identify: Callable[[Settings], EngineIdentity] | None = None


def _face_detector(settings: Settings) -> BlazeFaceDetector | None:
    """BlazeFace for the engines that crop the face themselves; None with VE_YOLO_CROP_FACE=false."""
    if not settings.yolo_crop_face:
        return None
    from video_emotions.vision.blazeface import BlazeFaceDetector

    return BlazeFaceDetector(_detector_file(settings), threshold=settings.detector_threshold, threads=1)


def _crop_details(settings: Settings) -> dict[str, Any]:
    details: dict[str, Any] = {"crop_face": settings.yolo_crop_face, "aggregation": settings.aggregation}
    if settings.yolo_crop_face:
        details.update(
            detector_sha256=file_sha256(_detector_file(settings)),
            crop_margin=settings.crop_margin,
            detector_threshold=settings.detector_threshold,
        )
    return details


def _deepface_unavailable(settings: Settings) -> str | None:
    from video_emotions.vision.deepface_engine import unavailable

    return unavailable(settings)


def _load_deepface(settings: Settings) -> EmotionEngine:
    from video_emotions.vision.deepface_engine import DeepFaceEngine

    return DeepFaceEngine(settings)


def _identify_deepface(settings: Settings) -> EngineIdentity:
    from video_emotions.vision.deepface_engine import weights_path

    weights = weights_path()
    return EngineIdentity(
        engine="deepface",
        model_file=weights.name,
        model_sha256=file_sha256(weights),
        details={"detector_backend": settings.deepface_detector, "aggregation": settings.aggregation},
    )


@lru_cache(maxsize=8)
def _yolo_file_problem(path: Path, _mtime_ns: int) -> str | None:
    """Why a model file cannot serve as yolo_local (not a YOLO classifier, classes we cannot map);
    worked out once per file version."""
    from video_emotions.vision.labels import label_columns
    from video_emotions.vision.yolo import open_yolo_classifier

    try:
        label_columns(open_yolo_classifier(path).names, source=str(path))
    except (ModelUnavailableError, ValueError) as exc:
        return str(exc)
    return None


def _yolo_local_unavailable(settings: Settings) -> str | None:
    from importlib.util import find_spec

    from video_emotions.vision.yolo import YOLO_EXTRA

    path = settings.yolo_model_path
    if path is None:
        return (
            "needs VE_YOLO_MODEL_PATH (an ultralytics YOLO classification model: .onnx, "
            "or .pt with the [yolo] extra)"
        )
    if not path.is_file():
        return f"VE_YOLO_MODEL_PATH {path} does not exist"
    if path.suffix.lower() == ".pt" and find_spec("ultralytics") is None:
        return (
            f"{path.name} is a .pt file: it needs {YOLO_EXTRA}, or export it once to .onnx with "
            "`video-emotions models export-yolo`"
        )
    return _yolo_file_problem(path.resolve(), path.stat().st_mtime_ns)


def _load_yolo_local(settings: Settings) -> EmotionEngine:
    from video_emotions.vision.yolo import YoloEngine, open_yolo_classifier

    assert settings.yolo_model_path is not None, "checked by _yolo_local_unavailable"
    return YoloEngine(
        open_yolo_classifier(settings.yolo_model_path),
        _face_detector(settings),
        crop_margin=settings.crop_margin,
    )


def _identify_yolo_local(settings: Settings) -> EngineIdentity:
    assert settings.yolo_model_path is not None, "checked by _yolo_local_unavailable"
    path = settings.yolo_model_path
    return EngineIdentity("yolo_local", path.name, file_sha256(path), _crop_details(settings))


@lru_cache(maxsize=8)
def _remote_url_refused(url: str, allow: str, _period: int) -> str | None:
    """Why the service may not send to ``url`` (see :mod:`video_emotions.outbound`), or None; asked
    again in each PROBE_TTL_S period, as a DNS answer may change. A host that does not resolve is
    no refusal: the probe then finds the endpoint unreachable, and yolo falls back to yolo_local."""
    from video_emotions.outbound import UnresolvedHostError, check_outbound_url

    try:
        check_outbound_url(url, allow, what="VE_REMOTE_URL")
    except UnresolvedHostError:
        return None
    except InputError as exc:
        return str(exc)
    return None


def _yolo_cloud_unavailable(settings: Settings) -> str | None:
    if not settings.remote_url:
        return "needs VE_REMOTE_URL (a Vertex-style prediction endpoint)"
    period = int(time.monotonic() // PROBE_TTL_S)
    return _remote_url_refused(settings.remote_url, settings.outbound_allow, period)


def _load_yolo_cloud(settings: Settings) -> EmotionEngine:
    from video_emotions.vision.remote import RemoteClient, RemoteEngine

    client = RemoteClient.from_settings(settings)
    return RemoteEngine(
        client,
        client.probe(),
        _face_detector(settings),
        crop_margin=settings.crop_margin,
        batch=settings.remote_batch,
    )


def _identify_yolo_cloud(settings: Settings) -> EngineIdentity:
    from video_emotions.vision.remote import RemoteClient, public_url

    with RemoteClient.from_settings(settings) as client:
        model = client.probe()
    details = {"url": public_url(client.url), **_crop_details(settings)}
    return EngineIdentity("yolo_cloud", model.model_file, model.model_sha256, details)


#: The names the Interviewz app sends, which an operator may serve with our engine instead.
APP_NAMES = ("deepface", "yolo")
_ALIAS_HINT = "; or serve it with our engine: VE_MODEL_ALIASES={name}=default"

MODELS: dict[str, ModelEntry] = {
    "default": ModelEntry(
        "BlazeFace full-range face detector + expression classifier (VE_CLASSIFIER, default mini-Xception; "
        "offline, CPU)",
        lambda _settings: None,
        _load_default,
        _identify_default,
    ),
    "deepface": ModelEntry(
        "the DeepFace library's emotion model (the [deepface] extra, VE_DEEPFACE_DETECTOR)",
        _deepface_unavailable,
        _load_deepface,
        _identify_deepface,
    ),
    "yolo_local": ModelEntry(
        "an ultralytics YOLO classification model file (VE_YOLO_MODEL_PATH) on BlazeFace's face crop",
        _yolo_local_unavailable,
        _load_yolo_local,
        _identify_yolo_local,
    ),
    "yolo_cloud": ModelEntry(
        "a remote prediction endpoint speaking Vertex AI's JSON (VE_REMOTE_URL); falls back to yolo_local "
        "when it does not answer",
        _yolo_cloud_unavailable,
        _load_yolo_cloud,
        _identify_yolo_cloud,
    ),
    "yolo": ModelEntry(
        "what the Interviewz app sends: yolo_cloud when it answers, else yolo_local",
        lambda _settings: None,
        None,
    ),
}

#: How long the yolo_cloud endpoint's answer (or silence) is trusted before it is asked again.
PROBE_TTL_S = 10.0


def parse_aliases(text: str) -> dict[str, str]:
    """``"deepface=default, yolo=default"`` → ``{"deepface": "default", "yolo": "default"}``."""
    aliases: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or target.strip() not in MODELS:
            raise InputError(
                f"VE_MODEL_ALIASES entry {item!r} is not NAME=ENGINE with ENGINE one of {sorted(MODELS)}"
            )
        aliases[name.strip()] = target.strip()
    return aliases


@dataclass(frozen=True)
class Route:
    """The engine that serves a request now, and why it is not the one the request named."""

    engine: str
    note: str | None = None


class ModelRegistry:
    """Resolves request names (with the operator's aliases) to engines and loads them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.aliases = parse_aliases(settings.model_aliases)
        self._identities: dict[str, EngineIdentity] = {}
        self._lock = threading.Lock()
        #: The last probe of the yolo_cloud endpoint: when, and why it did not answer (None: it did).
        self._probe: tuple[float, str | None] | None = None
        self._probe_lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(set(MODELS) | set(self.aliases))

    def resolve(self, model_type: str | None) -> str:
        """The registry name that serves ``model_type``; InputError for a name nobody knows."""
        requested = (model_type or self.settings.default_model).strip()
        name = self.aliases.get(requested, requested)
        if name not in MODELS:
            raise InputError(f"unknown model_type {requested!r}: use one of {', '.join(self.names())}")
        return name

    def route(self, model_type: str | None, *, fallback: bool = True) -> Route:
        """The engine that serves ``model_type`` now, with the reason when it is another one (an
        alias; ``yolo``; ``yolo_cloud`` falling back; the default serving an engine that cannot run
        here, unless ``VE_STRICT_MODELS`` or ``fallback=False``); else ModelUnavailableError naming
        what is missing."""
        requested = (model_type or self.settings.default_model).strip()
        name = self.resolve(model_type)
        outcome = self._route(name)
        if isinstance(outcome, str):
            served = self._fallback(name, outcome) if fallback else None
            if served is None:
                raise ModelUnavailableError(f"model_type {name!r} is not available: {outcome}")
            outcome = served
        notes = []
        if name != requested:
            notes.append(f"model_type {requested!r} is served by engine {name!r} (VE_MODEL_ALIASES)")
        if outcome.note:
            notes.append(outcome.note)
        return Route(outcome.engine, "; ".join(notes) or None)

    def _route(self, name: str) -> Route | str:
        """The route for a registry name, or why it cannot run here."""
        hint = _ALIAS_HINT.format(name=name) if name in APP_NAMES and self.settings.strict_models else ""
        if name not in ("yolo", "yolo_cloud"):
            reason = MODELS[name].unavailable(self.settings)
            return Route(name) if reason is None else reason + hint
        setting = _yolo_cloud_unavailable(self.settings)  # VE_REMOTE_URL missing or refused
        cloud = setting or self._cloud_silence()
        if cloud is None:
            if name == "yolo":
                return Route(
                    "yolo_cloud", "model_type 'yolo' is served by yolo_cloud (VE_REMOTE_URL answers)"
                )
            return Route("yolo_cloud")
        if name == "yolo_cloud" and setting is not None:
            return cloud
        local = _yolo_local_unavailable(self.settings)
        if local is not None:
            return f"yolo_cloud: {cloud}; yolo_local: {local}{hint}"
        if setting is None:
            return Route("yolo_local", f"yolo_cloud unreachable ({cloud}): fell back to yolo_local")
        if self.settings.remote_url:
            return Route("yolo_local", f"model_type 'yolo' is served by yolo_local (yolo_cloud: {setting})")
        return Route("yolo_local", "model_type 'yolo' is served by yolo_local (VE_REMOTE_URL is not set)")

    def _fallback(self, name: str, reason: str) -> Route | None:
        """The default engine for a name whose engine cannot run here (the app's requests get an
        answer out of the box); None with VE_STRICT_MODELS, where such a request is refused."""
        if self.settings.strict_models:
            return None
        return Route("default", f"{name} unavailable: {reason}; served by default")

    def _cloud_silence(self) -> str | None:
        """Why the yolo_cloud endpoint does not answer now (None: it does); asked once per PROBE_TTL_S."""
        from video_emotions.vision.remote import RemoteClient, RemoteError

        with self._probe_lock:
            if self._probe is not None and time.monotonic() - self._probe[0] < PROBE_TTL_S:
                return self._probe[1]
        try:
            with RemoteClient.from_settings(self.settings) as client:
                client.probe()
            silence = None
        except RemoteError as exc:
            silence = str(exc)
        with self._probe_lock:
            self._probe = (time.monotonic(), silence)
        return silence

    def check(self, model_type: str | None, *, fallback: bool = True) -> str:
        """The engine that serves ``model_type`` now (see :meth:`route`)."""
        return self.route(model_type, fallback=fallback).engine

    def load(self, model_type: str | None) -> EmotionEngine:
        """Load the engine ``model_type`` names: exactly that engine when it names one (so an engine
        name that :meth:`check` gave loads that engine, never a fallback), else the one it routes to
        but never the default in its place (a caller that serves with the default asks :meth:`route`
        first, as the service and ``analyse`` do; ``eval-clips`` does not)."""
        name = self.resolve(model_type)
        if MODELS[name].load is None:
            name = self.check(model_type, fallback=False)
        reason = MODELS[name].unavailable(self.settings)
        if reason is not None:
            raise ModelUnavailableError(f"model_type {name!r} is not available: {reason}")
        loader = MODELS[name].load
        assert loader is not None, f"engine {name} has no loader"
        return loader(self.settings)

    def identity(self, model_type: str | None) -> EngineIdentity:
        """The identity of the engine serving ``model_type``, worked out once per process and engine."""
        name = self.check(model_type)
        with self._lock:
            if name not in self._identities:
                identify = MODELS[name].identify
                assert identify is not None, f"engine {name} has no identity"
                self._identities[name] = identify(self.settings)
            return self._identities[name]

    def statuses(self) -> list[ModelStatus]:
        out = []
        for name in sorted(MODELS):
            entry = MODELS[name]
            outcome = self._route(name)
            description = entry.description
            if name == "default":
                note = _default_status(self.settings)
                description += f" ({note})" if note else ""
            if isinstance(outcome, str):
                served = self._fallback(name, outcome)
                out.append(
                    ModelStatus(
                        name,
                        description,
                        False,
                        reason=outcome,
                        served_by=served and served.engine,
                        note=served and served.note,
                    )
                )
            else:
                out.append(ModelStatus(name, description, True, served_by=outcome.engine, note=outcome.note))
        return out
