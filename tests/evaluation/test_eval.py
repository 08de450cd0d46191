"""``video-emotions eval``: its figures against ones computed here, face-set loading, the metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import FER2013, require_shared
from video_emotions.cli import app
from video_emotions.domain import EMOTIONS
from video_emotions.errors import InputError, ModelUnavailableError
from video_emotions.evaluation.faces import load_faces
from video_emotions.evaluation.metrics import classification_metrics, wilson_interval
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.imaging import resize_like_cv2
from video_emotions.vision.labels import normalise_label
from video_emotions.vision.mini_xception import ensure_mini_xception_onnx
from video_emotions.vision.modelfiles import ModelCache


@pytest.fixture(scope="module")
def mini_xception(model_cache: ModelCache) -> EmotionClassifier:
    try:
        return EmotionClassifier(ensure_mini_xception_onnx(model_cache), threads=1)
    except ModelUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 PublicTest faces as an .npz of the shared layout."""
    with np.load(require_shared(FER2013 / "public_test.npz")) as data:
        images, labels = data["images"][:40], data["labels"][:40]
    path = tmp_path_factory.mktemp("faces") / "small.npz"
    np.savez(path, images=images, labels=labels)
    return path


def run_eval(*args: str) -> dict:
    done = CliRunner().invoke(app, ["eval", *args, "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def expected_figures(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, recall, macro-F1 and confusion the long way, one class at a time."""
    recall, f1 = {}, []
    for index, emotion in enumerate(EMOTIONS):
        true, hit = labels == index, (labels == index) & (predicted == index)
        recall[emotion] = hit.sum() / true.sum() if true.any() else None
        if true.any() or (predicted == index).any():
            f1.append(2 * hit.sum() / (true.sum() + (predicted == index).sum()))
    confusion = [[int(np.sum((labels == t) & (predicted == p))) for p in range(7)] for t in range(7)]
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "per_class_recall": recall,
        "macro_f1": float(np.mean(f1)),
        "confusion": confusion,
    }


def assert_figures(result: dict, expected: dict) -> None:
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert result["confusion"] == expected["confusion"]
    assert result["per_class_recall"] == pytest.approx(expected["per_class_recall"])
    low, high = result["accuracy_ci95"]
    assert low < result["accuracy"] < high
    assert result["ms_per_face_b1"] > 0 and result["ms_per_face_b32"] > 0


def test_eval_json_matches_the_classifiers_own_predictions(
    small_set: Path, mini_xception: EmotionClassifier
) -> None:
    with np.load(small_set) as data:
        images, labels = data["images"], data["labels"]
    crops = resize_like_cv2(images, 64)
    single = mini_xception.classify(crops)
    flipped = (single + mini_xception.classify(np.ascontiguousarray(crops[:, :, ::-1]))) / 2

    result = run_eval(str(small_set), "--model", "mini-xception")
    assert result["model"] == "mini-xception" and result["count"] == 40 and not result["flip_average"]
    assert result["model_sha256"] == mini_xception.sha256
    assert_figures(result, expected_figures(single.argmax(axis=1), labels))

    result = run_eval(str(small_set), "--model", "mini-xception+flip")
    assert result["flip_average"]
    assert_figures(result, expected_figures(flipped.argmax(axis=1), labels))


def test_eval_of_several_classifiers_reports_each_by_name(
    small_set: Path, mini_xception: EmotionClassifier
) -> None:
    document = run_eval(str(small_set))
    assert document["faces"] == 40
    assert {"mini-xception", "mini-xception+flip"} <= set(document["models"])
    onnx_file = str(mini_xception.path)
    # The same file named by its path: its input size read from the file, the same figures.
    document = run_eval(str(small_set), "--model", "mini-xception+flip", "--model", onnx_file + "+flip")
    by_name, by_file = document["models"]["mini-xception+flip"], document["models"][onnx_file + "+flip"]
    assert by_file["input_size"] == 64 and by_file["flip_average"]
    assert by_file["confusion"] == by_name["confusion"]


def test_eval_table_and_errors(small_set: Path, mini_xception: EmotionClassifier, tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["eval", str(small_set), "--model", "mini-xception"])
    assert done.exit_code == 0, done.output
    assert "accuracy [95% CI]" in done.stdout and "confusion" in done.stdout
    done = CliRunner().invoke(app, ["eval", str(small_set), "--model", "nope"])
    assert done.exit_code == 2 and "unknown classifier 'nope'" in done.output
    done = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.npz")])
    assert done.exit_code == 2 and "not an .npz face set" in done.output


def write_image(path: Path, size: int, mode: str = "L", value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), (value,) * len(mode)).save(path)


def test_folder_of_class_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "Anger" / "a.png", 48, value=10)
    write_image(tmp_path / "happiness" / "b.png", 48, value=20)
    write_image(tmp_path / "happiness" / "c.jpg", 96, mode="RGB", value=200)
    write_image(tmp_path / "Surprised" / "d.png", 48)
    write_image(tmp_path / "contempt" / "e.png", 48)
    (tmp_path / "happiness" / "notes.txt").write_text("not an image")

    faces = load_faces(tmp_path)
    assert faces.images.shape == (4, 48, 48) and faces.images.dtype == np.uint8
    assert [EMOTIONS[label] for label in faces.labels] == ["angry", "happy", "happy", "surprise"]
    assert faces.images[0].max() == 10 and abs(int(faces.images[2].mean()) - 200) <= 1
    assert faces.skipped == ("contempt",)


def test_folder_names_and_bad_sets(tmp_path: Path) -> None:
    assert normalise_label(" Sadness ") == "sad"
    assert normalise_label("fearful") == "fear"
    assert normalise_label("disgusted") == "disgust"
    assert normalise_label("contempt") is None
    (tmp_path / "empty" / "calm").mkdir(parents=True)
    with pytest.raises(InputError, match="no images"):
        load_faces(tmp_path / "empty")
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 48, 48), np.uint8), labels=np.array([0, 7]))
    with pytest.raises(InputError, match="labels"):
        load_faces(tmp_path / "bad.npz")


def test_metrics_on_a_hand_made_list() -> None:
    metrics = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ("a", "b", "c"))
    assert metrics.count == 6 and metrics.correct == 4
    assert metrics.accuracy == pytest.approx(4 / 6)
    assert metrics.confusion == ((1, 1, 0), (0, 2, 0), (1, 0, 1))
    assert metrics.per_class_recall == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.5})
    # precision a 1/2, b 2/3, c 1/1: F1 0.5, 0.8, 2/3.
    assert metrics.per_class_f1 == pytest.approx({"a": 0.5, "b": 0.8, "c": 2 / 3})
    assert metrics.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics.accuracy_ci95 == pytest.approx(wilson_interval(4, 6))


def test_metrics_with_absent_classes() -> None:
    # d never occurs: no recall, no F1, left out of the mean; c is predicted but never true: F1 0.
    metrics = classification_metrics([0, 1, 1], [0, 1, 2], ("a", "b", "c", "d"))
    assert metrics.per_class_recall == {"a": 1.0, "b": 0.5, "c": None, "d": None}
    assert metrics.per_class_f1 == pytest.approx({"a": 1.0, "b": 2 / 3, "c": 0.0, "d": None})
    assert metrics.macro_f1 == pytest.approx((1 + 2 / 3 + 0) / 3)
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        classification_metrics([0, 1], [0, 1, 1], ("a", "b"))
    with pytest.raises(ValueError, match=r"0\.\.1"):
        classification_metrics([0, 2], [0, 1], ("a", "b"))


def test_wilson_interval() -> None:
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # the textbook example
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
