"""The model registry: which ``model_type`` names exist, whether each can run here, and loading them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from video_emotions.config import Settings
from video_emotions.errors import InputError, ModelUnavailableError
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.engine import DetectorClassifierEngine, EmotionEngine
from video_emotions.vision.modelfiles import BLAZEFACE_FULL_RANGE, ModelCache, file_sha256


@dataclass(frozen=True)
class ModelStatus:
    name: str
    description: str
    available: bool
    reason: str | None = None


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
    from video_emotions.evaluation.classifiers import load_classifier

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
    load: Callable[[Settings], EmotionEngine] | None
    identify: Callable[[Settings], EngineIdentity] | None = None


def _not_yet(needs: str) -> Callable[[Settings], str | None]:
    return lambda _settings: needs


MODELS: dict[str, ModelEntry] = {
    "default": ModelEntry(
        "BlazeFace full-range face detector + expression classifier (VE_CLASSIFIER, default mini-Xception; "
        "offline, CPU)",
        lambda _settings: None,
        _load_default,
        _identify_default,
    ),
    "deepface": ModelEntry(
        "the DeepFace library's emotion model",
        _not_yet(
            "needs the [deepface] extra and DeepFace's emotion weights, not supported yet; "
            "map it to our engine with VE_MODEL_ALIASES=deepface=default"
        ),
        None,
    ),
    "yolo_local": ModelEntry(
        "an ultralytics YOLO classification model file (VE_YOLO_MODEL_PATH)",
        _not_yet("needs VE_YOLO_MODEL_PATH (.onnx, or .pt with the [yolo] extra), not supported yet"),
        None,
    ),
    "yolo_cloud": ModelEntry(
        "a remote prediction endpoint speaking Vertex AI's JSON (VE_REMOTE_URL)",
        _not_yet("needs VE_REMOTE_URL (a Vertex-style prediction endpoint), not supported yet"),
        None,
    ),
    "yolo": ModelEntry(
        "what the Interviewz app sends: yolo_cloud when it answers, else yolo_local",
        _not_yet(
            "needs VE_REMOTE_URL or VE_YOLO_MODEL_PATH, not supported yet; "
            "map it to our engine with VE_MODEL_ALIASES=yolo=default"
        ),
        None,
    ),
}


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


class ModelRegistry:
    """Resolves request names (with the operator's aliases) to engines and loads them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.aliases = parse_aliases(settings.model_aliases)
        self._identities: dict[str, EngineIdentity] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(set(MODELS) | set(self.aliases))

    def resolve(self, model_type: str | None) -> str:
        """The engine name that serves ``model_type``; InputError for a name nobody knows."""
        requested = (model_type or self.settings.default_model).strip()
        name = self.aliases.get(requested, requested)
        if name not in MODELS:
            raise InputError(f"unknown model_type {requested!r}: use one of {', '.join(self.names())}")
        return name

    def check(self, model_type: str | None) -> str:
        """Resolve, and raise ModelUnavailableError naming what is missing when it cannot run here."""
        name = self.resolve(model_type)
        reason = MODELS[name].unavailable(self.settings)
        if reason is not None:
            raise ModelUnavailableError(f"model_type {name!r} is not available: {reason}")
        return name

    def load(self, model_type: str | None) -> EmotionEngine:
        name = self.check(model_type)
        loader = MODELS[name].load
        assert loader is not None, f"available model {name} has no loader"
        return loader(self.settings)

    def identity(self, model_type: str | None) -> EngineIdentity:
        """The identity of the engine serving ``model_type``, worked out once per process."""
        name = self.check(model_type)
        with self._lock:
            if name not in self._identities:
                identify = MODELS[name].identify
                assert identify is not None, f"available model {name} has no identity"
                self._identities[name] = identify(self.settings)
            return self._identities[name]

    def statuses(self) -> list[ModelStatus]:
        out = []
        for name in sorted(MODELS):
            entry = MODELS[name]
            reason = entry.unavailable(self.settings)
            if reason is None and name == "default":
                note = _default_status(self.settings)
                description = entry.description + (f" ({note})" if note else "")
            else:
                description = entry.description
            out.append(ModelStatus(name, description, reason is None, reason))
        return out
