"""``yolo_cloud``: face crops sent to a prediction endpoint that speaks Vertex AI's JSON.

Request ``{"instances": [{"image": "<base64 JPEG>"}, ...]}``, answer
``{"predictions": [{"<label>": p, ...}, ...]}``, one prediction per instance, labels mapped to
ours by :mod:`.labels`. A prediction ``{"No face detected": 0.0}`` (what our own
``POST /v1/predict`` answers for an image without a face) or ``{}`` means no face.

BlazeFace finds and crops the faces here; they go out as 224x224 JPEGs, up to
``VE_REMOTE_BATCH`` per request. Each request has ``VE_REMOTE_TIMEOUT`` seconds; a connection
error or a 5xx answer is tried again up to ``VE_REMOTE_RETRIES`` times, waiting 0.5 s, 1 s, 2 s...
between tries. A timeout is not tried again: it has already cost the whole timeout.

Authentication: ``VE_REMOTE_TOKEN`` as a bearer token; without one, for a Vertex AI URL
(``*aiplatform.googleapis.com``), Google's application default credentials when google-auth
is installed (the ``[vertex]`` extra).
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from PIL import Image

from video_emotions.config import Settings
from video_emotions.domain import NO_FACE_KEY
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.blazeface import BlazeFaceDetector
from video_emotions.vision.imaging import resize
from video_emotions.vision.labels import emotions_from_mapping
from video_emotions.vision.yolo import FaceImageEngine

#: Side of the face crops sent (ultralytics' classification input size).
CROP_SIZE = 224
JPEG_QUALITY = 90
#: First wait before a retry; doubled for each further one.
BACKOFF_S = 0.5


class RemoteError(ModelUnavailableError):
    """The endpoint did not give a usable answer (after the retries allowed)."""


def public_url(url: str) -> str:
    """The URL without credentials or query, fit for logs and records."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


@dataclass(frozen=True)
class RemoteModel:
    """What the endpoint says it serves (Vertex's ``model``/``modelVersionId``; our own service
    answers with its model file and sha256), or its URL when it says nothing."""

    model_file: str
    model_sha256: str

    @classmethod
    def from_answer(cls, url: str, answer: dict[str, Any]) -> RemoteModel:
        model = str(answer.get("model") or public_url(url))
        version = str(answer.get("modelVersionId") or "")
        if len(version) == 64 and all(c in "0123456789abcdef" for c in version):
            return cls(model, version)
        return cls(f"{model}@{version}" if version else model, "")


def _google_credentials() -> Any:
    """Google's application default credentials, or None without google-auth (the [vertex] extra)."""
    try:
        import google.auth
    except ImportError:
        return None
    return google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])[0]


class RemoteClient:
    """Posts instances to the endpoint with a timeout and bounded retries. Thread-safe; close it
    (or use it in a ``with``) when done."""

    def __init__(self, url: str, *, token: str | None, timeout: float, retries: int) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self._token = token
        self._vertex = httpx.URL(url).host.endswith("aiplatform.googleapis.com")
        self._google: Any = None
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteClient:
        if not settings.remote_url:
            raise ModelUnavailableError("yolo_cloud needs VE_REMOTE_URL (a Vertex-style prediction endpoint)")
        return cls(
            settings.remote_url,
            token=settings.remote_token,
            timeout=settings.remote_timeout,
            retries=settings.remote_retries,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        if not self._vertex:
            return {}
        with self._lock:
            if self._google is None:
                self._google = _google_credentials()
                if self._google is None:
                    return {}  # the endpoint's 401 then says what is missing
            if not self._google.valid:
                from google.auth.transport.requests import Request

                self._google.refresh(Request())
            return {"Authorization": f"Bearer {self._google.token}"}

    def post(self, instances: list[dict[str, str]]) -> httpx.Response:
        """One request, tried again on a connection error or a 5xx; RemoteError when none succeeds."""
        where = public_url(self.url)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = self._http.post(self.url, json={"instances": instances}, headers=self._headers())
            except httpx.TimeoutException as exc:
                raise RemoteError(
                    f"{where} timed out after {self.timeout:g} s ({type(exc).__name__})"
                ) from exc
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 500:
                return response
            problem = f"HTTP {response.status_code}"
        raise RemoteError(f"{where}: {problem} ({self.retries + 1} tries)")

    def probe(self) -> RemoteModel:
        """Check that the endpoint answers (a request without instances); RemoteError when not.

        A 4xx other than 401/403/404 still means an endpoint is there (Vertex refuses an empty request).
        """
        response = self.post([])
        if response.status_code in (401, 403, 404):
            hint = " (check VE_REMOTE_TOKEN)" if response.status_code != 404 else ""
            raise RemoteError(f"{public_url(self.url)}: HTTP {response.status_code}{hint}")
        try:
            answer = response.json() if response.is_success else {}
        except ValueError:
            answer = {}
        return RemoteModel.from_answer(self.url, answer if isinstance(answer, dict) else {})

    def predict(self, images: Sequence[bytes]) -> list[dict[str, float]]:
        """One prediction dict per JPEG image, in order, from one request."""
        instances = [{"image": base64.b64encode(image).decode("ascii")} for image in images]
        response = self.post(instances)
        where = public_url(self.url)
        if not response.is_success:
            raise RemoteError(f"{where}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            predictions = response.json()["predictions"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteError(f"{where}: the answer has no 'predictions' list") from exc
        if not isinstance(predictions, list) or len(predictions) != len(images):
            raise RemoteError(f"{where}: {len(images)} instances sent, predictions {predictions!r:.200}")
        return predictions


def jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


class RemoteEngine(FaceImageEngine):
    """``yolo_cloud``: BlazeFace here, the expression there."""

    name = "yolo_cloud"

    def __init__(
        self,
        client: RemoteClient,
        model: RemoteModel,
        detector: BlazeFaceDetector | None,
        *,
        crop_margin: float,
        batch: int,
    ) -> None:
        super().__init__(detector, crop_margin=crop_margin, crop_size=CROP_SIZE)
        self.client = client
        self.batch = batch
        self.model_file = model.model_file
        self.model_sha256 = model.model_sha256

    def classify(self, images: Sequence[np.ndarray]) -> list[dict[str, float] | None]:
        if self.detector is None:  # whole frames: no larger than the model will look at
            images = [_shrink(image, CROP_SIZE) for image in images]
        encoded = [jpeg(image) for image in images]
        out: list[dict[str, float] | None] = []
        for start in range(0, len(encoded), self.batch):
            for prediction in self.client.predict(encoded[start : start + self.batch]):
                out.append(self._parse(prediction))
        return out

    def _parse(self, prediction: object) -> dict[str, float] | None:
        if not isinstance(prediction, dict):
            raise RemoteError(f"{public_url(self.client.url)}: prediction {prediction!r:.200} is no object")
        if not prediction or NO_FACE_KEY in prediction:
            return None
        try:
            return emotions_from_mapping(prediction, source=public_url(self.client.url))
        except (ValueError, TypeError) as exc:
            raise RemoteError(str(exc)) from exc


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` with its shorter side brought down to ``side`` (never enlarged)."""
    height, width = image.shape[:2]
    scale = side / min(height, width)
    if scale >= 1:
        return image
    return resize(image, max(1, round(width * scale)), max(1, round(height * scale)))
