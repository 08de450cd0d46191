import re

import pytest

from video_emotions.config import Settings
from video_emotions.errors import InputError, ModelUnavailableError
from video_emotions.vision.registry import ModelRegistry, Route, parse_aliases


def test_aliases_map_app_names_to_engines() -> None:
    registry = ModelRegistry(Settings(model_aliases="deepface=default, yolo=default"))
    assert registry.resolve("deepface") == "default"
    assert registry.resolve("yolo") == "default"
    assert registry.check("deepface") == "default"
    assert registry.resolve(None) == "default"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(InputError, match="unknown model_type 'resnet': use one of deepface, default, yolo"):
        ModelRegistry(Settings()).resolve("resnet")


NEEDS = [
    ("deepface", "[deepface] extra"),
    ("yolo_local", "VE_YOLO_MODEL_PATH"),
    ("yolo_cloud", "VE_REMOTE_URL"),
    ("yolo", "VE_YOLO_MODEL_PATH"),
]


@pytest.mark.parametrize(("name", "needs"), NEEDS)
def test_models_that_cannot_run_here_are_served_by_the_default_and_say_why(name: str, needs: str) -> None:
    registry = ModelRegistry(Settings())
    route = registry.route(name)
    assert route.engine == "default"
    assert route.note.startswith(f"{name} unavailable: ") and route.note.endswith("; served by default")
    assert needs in route.note
    # What it runs, and so what decides whether stored results answer it, is the default's.
    assert registry.identity(name) == registry.identity("default")
    status = {s.name: s for s in registry.statuses()}[name]
    assert status.available is False and needs in status.reason
    assert (status.served_by, status.note) == ("default", route.note)


@pytest.mark.parametrize(("name", "needs"), NEEDS)
def test_strict_models_refuse_what_cannot_run_here_and_say_what_it_needs(name: str, needs: str) -> None:
    registry = ModelRegistry(Settings(strict_models=True))
    with pytest.raises(ModelUnavailableError, match=re.escape(needs)) as refused:
        registry.check(name)
    if name in ("deepface", "yolo"):  # the app's names: how to serve them anyway
        assert f"VE_MODEL_ALIASES={name}=default" in str(refused.value)
    status = {s.name: s for s in registry.statuses()}[name]
    assert status.available is False and needs in status.reason
    assert (status.served_by, status.note) == (None, None)


def test_aliases_win_over_the_fallback_strict_or_not() -> None:
    for strict in (False, True):
        registry = ModelRegistry(Settings(model_aliases="deepface=default", strict_models=strict))
        assert registry.route("deepface") == Route(
            "default", "model_type 'deepface' is served by engine 'default' (VE_MODEL_ALIASES)"
        )
    # An alias to an engine that cannot run here: said in both steps.
    route = ModelRegistry(Settings(model_aliases="deepface=yolo_local")).route("deepface")
    assert route.engine == "default"
    assert route.note.startswith(
        "model_type 'deepface' is served by engine 'yolo_local' (VE_MODEL_ALIASES); "
    )
    assert "; yolo_local unavailable: needs VE_YOLO_MODEL_PATH" in route.note


def test_bad_alias_settings_are_refused() -> None:
    with pytest.raises(InputError, match="NAME=ENGINE"):
        parse_aliases("deepface")
    with pytest.raises(InputError, match="NAME=ENGINE"):
        parse_aliases("deepface=resnet")


def test_the_default_engine_runs_what_the_pipeline_settings_name() -> None:
    settings = Settings(classifier="mini-xception+flip", align_faces=True, aggregation="log_mean")
    registry = ModelRegistry(settings)
    engine = registry.load("default")
    assert engine.classifier.flip_average and engine.align_faces
    details = registry.identity("default").details
    assert details["classifier"] == "mini-xception+flip" and details["aggregation"] == "log_mean"
    with pytest.raises(ModelUnavailableError, match="VE_CLASSIFIER: unknown classifier 'nope'"):
        ModelRegistry(Settings(classifier="nope")).load("default")
