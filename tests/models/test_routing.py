"""How ``yolo`` and ``yolo_cloud`` pick the engine that runs, and what they say about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.endpoints import LOOPBACK, FlakyEndpoint, closed_port_url, predict_url
from tests.service import RunningService
from video_emotions.config import Settings
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.registry import ModelRegistry, Route


def test_yolo_without_an_endpoint_is_yolo_local(tiny_yolo: Path) -> None:
    registry = ModelRegistry(Settings(yolo_model_path=tiny_yolo))
    assert registry.route("yolo") == Route(
        "yolo_local", "model_type 'yolo' is served by yolo_local (VE_REMOTE_URL is not set)"
    )
    assert registry.route("yolo_cloud") == Route(
        "default",
        "yolo_cloud unavailable: needs VE_REMOTE_URL (a Vertex-style prediction endpoint); served by default",
    )
    strict = ModelRegistry(Settings(yolo_model_path=tiny_yolo, strict_models=True))
    with pytest.raises(ModelUnavailableError, match="'yolo_cloud' is not available: needs VE_REMOTE_URL"):
        strict.check("yolo_cloud")


def test_an_engine_name_loads_that_engine_never_a_fallback(tiny_yolo: Path) -> None:
    registry = ModelRegistry(
        Settings(
            remote_url=closed_port_url(), remote_retries=0, yolo_model_path=tiny_yolo, outbound_allow=LOOPBACK
        )
    )
    assert registry.check("yolo_cloud") == "yolo_local"
    assert registry.load("yolo").name == "yolo_local"  # the router is routed
    with pytest.raises(ModelUnavailableError, match="ConnectError"):
        registry.load("yolo_cloud")  # what the runner caches under "yolo_cloud" is yolo_cloud or nothing


def test_an_alias_to_yolo_says_both_steps(predictor: RunningService, tiny_yolo: Path) -> None:
    settings = Settings(
        model_aliases="fast=yolo",
        remote_url=predict_url(predictor),
        yolo_model_path=tiny_yolo,
        outbound_allow=LOOPBACK,
    )
    assert ModelRegistry(settings).route("fast") == Route(
        "yolo_cloud",
        "model_type 'fast' is served by engine 'yolo' (VE_MODEL_ALIASES); "
        "model_type 'yolo' is served by yolo_cloud (VE_REMOTE_URL answers)",
    )


def test_the_endpoint_is_asked_once_for_a_burst_of_requests(
    predictor: RunningService, tiny_yolo: Path
) -> None:
    with FlakyEndpoint(predict_url(predictor), failures=0) as endpoint:
        registry = ModelRegistry(
            Settings(remote_url=endpoint.url, yolo_model_path=tiny_yolo, outbound_allow=LOOPBACK)
        )
        assert {registry.check("yolo") for _ in range(5)} == {"yolo_cloud"}
        registry.statuses()
        assert endpoint.calls == 1
