import pytest

from video_emotions.config import Settings
from video_emotions.errors import InputError, ModelUnavailableError
from video_emotions.vision.registry import ModelRegistry, parse_aliases


def test_aliases_map_app_names_to_engines() -> None:
    registry = ModelRegistry(Settings(model_aliases="deepface=default, yolo=default"))
    assert registry.resolve("deepface") == "default"
    assert registry.resolve("yolo") == "default"
    assert registry.check("deepface") == "default"
    assert registry.resolve(None) == "default"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(InputError, match="unknown model_type 'resnet': use one of deepface, default, yolo"):
        ModelRegistry(Settings()).resolve("resnet")


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("deepface", "[deepface] extra"),
        ("yolo_local", "VE_YOLO_MODEL_PATH"),
        ("yolo_cloud", "VE_REMOTE_URL"),
        ("yolo", "VE_MODEL_ALIASES"),
    ],
)
def test_models_that_cannot_run_here_say_what_they_need(name: str, needs: str) -> None:
    registry = ModelRegistry(Settings())
    with pytest.raises(ModelUnavailableError, match=needs.replace("[", r"\[").replace("]", r"\]")):
        registry.check(name)
    status = {s.name: s for s in registry.statuses()}[name]
    assert status.available is False and needs in status.reason


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
