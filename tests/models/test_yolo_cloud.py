"""yolo_cloud against a second instance of our own service (``POST /v1/predict``), and ``yolo``.

The endpoints: our service on a loopback port (the default engine), a socket that never answers,
a server that fails with 503 before it forwards, and a port where nothing listens.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.media import face_video
from tests.models.endpoints import (
    LOOPBACK,
    FlakyEndpoint,
    closed_port_url,
    predict_requests,
    predict_url,
    silent_endpoint,
)
from tests.service import RunningService, run_service
from video_emotions.config import Settings
from video_emotions.domain import EMOTIONS, NO_FACE_KEY, Segment
from video_emotions.vision.registry import ModelRegistry
from video_emotions.vision.remote import RemoteClient, RemoteError, jpeg


def client(url: str, *, timeout: float = 10.0, retries: int = 2) -> RemoteClient:
    return RemoteClient(url, token=None, timeout=timeout, retries=retries)


def default_sha256(service: RunningService) -> str:
    return service.ctx.models.identity("default").model_sha256


def models(service: RunningService) -> dict[str, dict[str, object]]:
    answer = httpx.get(f"{service.url}/v1/models", timeout=30).json()
    return {model["name"]: model for model in answer["models"]}


def test_predict_answers_vertex_json_with_a_local_engine(
    predictor: RunningService, frames: list[np.ndarray]
) -> None:
    instances = [{"image": base64.b64encode(jpeg(frame)).decode()} for frame in frames[:2]]
    answer = httpx.post(predict_url(predictor), json={"instances": instances}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    face, blank = body["predictions"]
    assert set(face) == set(EMOTIONS) and sum(face.values()) == pytest.approx(1, abs=1e-5)
    assert blank == {NO_FACE_KEY: 0.0}
    assert body["deployedModelId"] == "default" and body["modelVersionId"] == default_sha256(predictor)

    empty = httpx.post(predict_url(predictor), json={"instances": []}, timeout=60).json()
    assert empty["predictions"] == [] and empty["deployedModelId"] == "default"


@pytest.mark.parametrize(
    ("model_type", "body", "message"),
    [
        (
            "default",
            {"instances": [{"image": "bm90IGFuIGltYWdl"}]},
            "instances[0].image is not a base64-encoded",
        ),
        ("default", {"instances": [{"picture": "x"}]}, "instances.0.image: Field required"),
        ("resnet", {"instances": []}, "unknown model_type 'resnet'"),
        ("yolo_local", {"instances": []}, "needs VE_YOLO_MODEL_PATH"),
    ],
)
def test_bad_predict_requests_get_a_422_that_says_why(
    predictor: RunningService, model_type: str, body: dict[str, object], message: str
) -> None:
    answer = httpx.post(predict_url(predictor, model_type), json=body, timeout=60)
    assert answer.status_code == 422 and message in answer.json()["detail"], answer.text


def test_faces_go_out_in_batches(predictor: RunningService, frames: list[np.ndarray]) -> None:
    settings = Settings(remote_url=predict_url(predictor), remote_batch=4, outbound_allow=LOOPBACK)
    engine = ModelRegistry(settings).load("yolo_cloud")
    assert (engine.name, engine.model_sha256) == ("yolo_cloud", default_sha256(predictor))
    before = predict_requests(predictor)
    estimates = engine.estimate([frames[0]] * 3 + [frames[1]] + [frames[2]] * 2)
    assert predict_requests(predictor) - before == 2  # five faces, four per request; none for no face
    assert [e.probabilities is None for e in estimates] == [False, False, False, True, False, False]
    assert estimates[0].probabilities == estimates[1].probabilities
    assert set(estimates[0].probabilities) == set(EMOTIONS)

    before = predict_requests(predictor)
    one_request = ModelRegistry(Settings(remote_url=predict_url(predictor), outbound_allow=LOOPBACK)).load(
        "yolo_cloud"
    )
    one_request.estimate([frames[0]] * 5 + [frames[2]] * 5)
    assert predict_requests(predictor) - before == 2  # the probe at load, then ten faces in one request


def test_an_endpoint_that_never_answers_times_out_without_retrying(tmp_path: Path, tiny_yolo: Path) -> None:
    with silent_endpoint() as url:
        started = time.monotonic()
        with pytest.raises(RemoteError, match="timed out"):
            client(url, timeout=0.5, retries=2).predict([b"jpeg"])
        assert time.monotonic() - started < 1.5  # one try: a timeout has already cost its time
        route = ModelRegistry(
            Settings(remote_url=url, remote_timeout=0.5, yolo_model_path=tiny_yolo, outbound_allow=LOOPBACK)
        ).route("yolo")
    assert route.engine == "yolo_local"
    assert "yolo_cloud unreachable (" in route.note and "timed out" in route.note
    assert route.note.endswith("fell back to yolo_local")


def test_a_5xx_is_tried_again_with_backoff(predictor: RunningService, frames: list[np.ndarray]) -> None:
    image = jpeg(frames[0][40:200, 220:380])
    with FlakyEndpoint(predict_url(predictor), failures=1) as flaky:
        (prediction,) = client(flaky.url, retries=2).predict([image])
        assert flaky.calls == 2 and set(prediction) == set(EMOTIONS)
    with FlakyEndpoint(predict_url(predictor), failures=10) as failing:
        started = time.monotonic()
        with pytest.raises(RemoteError, match=r"HTTP 503 \(3 tries\)"):
            client(failing.url, retries=2).predict([image])
        assert failing.calls == 3 and time.monotonic() - started >= 1.5  # waited 0.5 s, then 1 s


def ingest(service: RunningService, interview: int, video: Path) -> None:
    service.ctx.db.ingest(session_id=9, interview_id=interview, segments=[Segment(0, 0.0, 2.0)])
    service.ctx.blobs.put(f"9/{interview}/raw/raw.mp4", video)


def analyse(service: RunningService, interview: int, model_type: str) -> httpx.Response:
    params = {"session_id": 9, "interview_id": interview, "model_type": model_type}
    return httpx.post(f"{service.url}/analyse_video", params=params, timeout=120)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_video(tmp_path_factory.mktemp("video") / "face.mp4", 2.5)


def test_yolo_runs_on_the_endpoint_when_it_answers(
    tmp_path: Path, predictor: RunningService, tiny_yolo: Path, video: Path
) -> None:
    with run_service(
        tmp_path,
        VE_REMOTE_URL=predict_url(predictor),
        VE_YOLO_MODEL_PATH=str(tiny_yolo),
        VE_OUTBOUND_ALLOW=LOOPBACK,
    ) as caller:
        listed = models(caller)
        assert listed["yolo"]["available"] and listed["yolo"]["served_by"] == "yolo_cloud"
        assert listed["yolo_cloud"]["served_by"] == "yolo_cloud" and listed["yolo_cloud"]["note"] is None
        before = predict_requests(predictor)
        ingest(caller, 1, video)
        answer = analyse(caller, 1, "yolo")
        assert answer.status_code == 200, answer.text
        (job,) = caller.ctx.db.jobs_for_interview(1)
        assert (job.engine, job.model_sha256) == ("yolo_cloud", default_sha256(predictor))
        assert predict_requests(predictor) > before
        log = caller.ctx.blobs.get(job.log_key).decode()
        assert "model_type 'yolo' is served by yolo_cloud" in log and "engine yolo_cloud" in log
        (row,) = caller.ctx.db.results_rows(1)
        assert all(set(frame) == set(EMOTIONS) for frame in row["video_emotions"].values())


def test_a_closed_port_falls_back_to_yolo_local_and_says_so(
    tmp_path: Path, tiny_yolo: Path, video: Path
) -> None:
    url = closed_port_url()
    with run_service(
        tmp_path, VE_REMOTE_URL=url, VE_YOLO_MODEL_PATH=str(tiny_yolo), VE_OUTBOUND_ALLOW=LOOPBACK
    ) as caller:
        listed = models(caller)
        for name in ("yolo", "yolo_cloud"):
            assert listed[name]["available"] and listed[name]["served_by"] == "yolo_local"
            assert "yolo_cloud unreachable" in listed[name]["note"]
        for interview, model_type in ((1, "yolo_cloud"), (2, "yolo")):
            ingest(caller, interview, video)
            answer = analyse(caller, interview, model_type)
            assert answer.status_code == 200, answer.text
            (job,) = caller.ctx.db.jobs_for_interview(interview)
            assert (job.model_type, job.engine, job.model_file) == (model_type, "yolo_local", "tiny.onnx")
            log = caller.ctx.blobs.get(job.log_key).decode()
            assert f"yolo_cloud unreachable ({url}: ConnectError" in log
            assert "fell back to yolo_local" in log and "engine yolo_local, model file tiny.onnx" in log


def test_models_say_what_each_needs_when_nothing_is_configured(predictor: RunningService) -> None:
    listed = models(predictor)
    assert listed["default"]["available"] and listed["default"]["served_by"] == "default"
    assert not listed["yolo_local"]["available"] and "VE_YOLO_MODEL_PATH" in listed["yolo_local"]["reason"]
    assert not listed["yolo_cloud"]["available"] and "VE_REMOTE_URL" in listed["yolo_cloud"]["reason"]
    # What cannot run here is served by the default, and says so.
    assert not listed["yolo"]["available"] and listed["yolo"]["served_by"] == "default"
    assert "VE_REMOTE_URL" in listed["yolo"]["note"] and "VE_YOLO_MODEL_PATH" in listed["yolo"]["note"]
