"""``video-emotions eval``: its figures against ones computed here, face-set loading (FER+ votes
too), the metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import FER2013, FERPLUS, require_shared
from video_emotions.cli import app
from video_emotions.domain import EMOTIONS
from video_emotions.errors import InputError, ModelUnavailableError
from video_emotions.evaluation.faces import load_faces
from video_emotions.evaluation.metrics import classification_metrics, probability_metrics, wilson_interval
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


def calibration_gap_long_way(values: list[float], outcomes: list[bool], bins: int = 15) -> float:
    """Bin by bin: the bin's share of the items times |mean value - share of outcomes that hold|."""
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [i for i, value in enumerate(values) if low < value <= high or (b == 0 and value == 0)]
        if members:
            mean_value = sum(values[i] for i in members) / len(members)
            share = sum(outcomes[i] for i in members) / len(members)
            total += len(members) / len(values) * abs(mean_value - share)
    return total


def expected_figures(probabilities: np.ndarray, labels: np.ndarray, votes: np.ndarray | None = None) -> dict:
    """Accuracy, precision, recall, macro-F1, confusion and calibration the long way, one class and
    one face at a time; the fit to the votes when there are votes."""
    predicted = probabilities.argmax(axis=1)
    recall, precision, f1 = {}, {}, []
    for index, emotion in enumerate(EMOTIONS):
        true, hit = labels == index, (labels == index) & (predicted == index)
        recall[emotion] = hit.sum() / true.sum() if true.any() else None
        precision[emotion] = hit.sum() / (predicted == index).sum() if (predicted == index).any() else None
        if true.any() or (predicted == index).any():
            f1.append(2 * hit.sum() / (true.sum() + (predicted == index).sum()))
    confusion = [[int(np.sum((labels == t) & (predicted == p))) for p in range(7)] for t in range(7)]
    rows = probabilities.tolist()
    figures = {
        "accuracy": float(np.mean(predicted == labels)),
        "per_class_recall": recall,
        "per_class_precision": precision,
        "macro_f1": float(np.mean(f1)),
        "confusion": confusion,
        "ece": calibration_gap_long_way([max(row) for row in rows], list(predicted == labels)),
        "per_class_ece": {
            emotion: calibration_gap_long_way([row[index] for row in rows], list(labels == index))
            for index, emotion in enumerate(EMOTIONS)
        },
        "vote_cross_entropy": None,
        "majority_probability": None,
    }
    if votes is not None:
        entropies = [
            -sum(v * math.log(max(p, 1e-7)) for v, p in zip(face_votes, row, strict=True))
            for face_votes, row in zip(votes.tolist(), rows, strict=True)
        ]
        figures["vote_cross_entropy"] = sum(entropies) / len(entropies)
        figures["majority_probability"] = sum(
            row[label] for row, label in zip(rows, labels, strict=True)
        ) / len(rows)
    return figures


def assert_figures(result: dict, expected: dict) -> None:
    for key in ("accuracy", "macro_f1", "ece", "vote_cross_entropy", "majority_probability"):
        assert result[key] == pytest.approx(expected[key], abs=1e-6), key
    assert result["confusion"] == expected["confusion"]
    for key in ("per_class_recall", "per_class_precision", "per_class_ece"):
        assert result[key] == pytest.approx(expected[key], abs=1e-6), key
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
    assert_figures(result, expected_figures(single, labels))

    result = run_eval(str(small_set), "--model", "mini-xception+flip")
    assert result["flip_average"]
    assert_figures(result, expected_figures(flipped, labels))


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
    assert metrics.per_class_precision == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 1.0})
    assert metrics.per_class_f1 == pytest.approx({"a": 0.5, "b": 0.8, "c": 2 / 3})
    assert metrics.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics.accuracy_ci95 == pytest.approx(wilson_interval(4, 6))


def test_metrics_with_absent_classes() -> None:
    # d never occurs: no recall, no precision, no F1, left out of the mean; c is predicted but never
    # true: precision and F1 0.
    metrics = classification_metrics([0, 1, 1], [0, 1, 2], ("a", "b", "c", "d"))
    assert metrics.per_class_recall == {"a": 1.0, "b": 0.5, "c": None, "d": None}
    assert metrics.per_class_precision == {"a": 1.0, "b": 1.0, "c": 0.0, "d": None}
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


def test_calibration_on_a_hand_made_list() -> None:
    # Face 1: 0.9 on its label a (right); face 2: 0.65 on a, its label b (wrong).
    probabilities = np.array([[0.9, 0.1], [0.65, 0.35]])
    metrics = probability_metrics([0, 1], probabilities, ("a", "b"), votes=np.array([[0.8, 0.2], [0.5, 0.5]]))
    # Top label: the two faces in bins of their own, |0.9 - 1| and |0.65 - 0|, half each.
    assert metrics.ece == pytest.approx(0.5 * 0.1 + 0.5 * 0.65)
    # Class a: 0.9 against 1 and 0.65 against 0; class b: 0.1 against 0 and 0.35 against 1.
    assert metrics.per_class_ece == pytest.approx({"a": 0.5 * 0.1 + 0.5 * 0.65, "b": 0.5 * 0.1 + 0.5 * 0.65})
    face_1 = -(0.8 * math.log(0.9) + 0.2 * math.log(0.1))
    face_2 = -(0.5 * math.log(0.65) + 0.5 * math.log(0.35))
    assert metrics.vote_cross_entropy == pytest.approx((face_1 + face_2) / 2)
    assert metrics.majority_probability == pytest.approx((0.9 + 0.35) / 2)
    # Without votes: no fit to them.
    plain = probability_metrics([0, 1], probabilities, ("a", "b"))
    assert plain.vote_cross_entropy is None and plain.majority_probability is None
    assert plain.ece == metrics.ece


def test_calibration_against_the_long_way() -> None:
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(200, 7)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities[:5, 2] = 0.0  # a zero where faces have votes: floored at 1e-7, not -inf
    labels = rng.integers(0, 7, size=200)
    counts = rng.integers(0, 4, size=(200, 7))
    counts[np.arange(200), labels] += 5
    votes = counts / counts.sum(axis=1, keepdims=True)

    metrics = probability_metrics(labels, probabilities, EMOTIONS, votes=votes)
    expected = expected_figures(probabilities, labels, votes)
    assert metrics.ece == pytest.approx(expected["ece"])
    assert metrics.per_class_ece == pytest.approx(expected["per_class_ece"])
    assert metrics.vote_cross_entropy == pytest.approx(expected["vote_cross_entropy"])
    assert metrics.majority_probability == pytest.approx(expected["majority_probability"])
    # A perfectly confident, always right classifier is perfectly calibrated.
    assert probability_metrics(labels, np.eye(7)[labels], EMOTIONS).ece == 0.0
    with pytest.raises(ValueError, match="probabilities"):
        probability_metrics(labels, probabilities[:, :6], EMOTIONS)


#: Vote columns in an order of their own, spelt in other ways: mapped by name.
VOTE_CLASSES = [
    "NF",
    "Anger",
    "contempt",
    "Happiness",
    "neutral",
    "unknown",
    "sadness",
    "Surprised",
    "fear",
    "disgust",
]


def votes_row(**counts: int) -> list[int]:
    return [counts.get(name.lower(), 0) for name in VOTE_CLASSES]


def test_votes_set_on_the_majority_protocol(tmp_path: Path) -> None:
    rows = [
        votes_row(happiness=6, neutral=3, contempt=1),  # happy; contempt's vote dropped
        votes_row(anger=4, disgust=4, neutral=2),  # tied: left out
        votes_row(contempt=5, neutral=4, anger=1),  # top contempt: left out
        votes_row(nf=7, neutral=3),  # not a face: left out
        votes_row(unknown=6, sadness=4),  # unknown: left out
        votes_row(neutral=5, contempt=5),  # tied with contempt: left out
        votes_row(neutral=8, sadness=1, unknown=1),  # neutral
    ]
    images = np.arange(7 * 48 * 48).astype(np.uint8).reshape(7, 48, 48)
    path = tmp_path / "plus.npz"
    np.savez(path, images=images, votes=np.array(rows, np.uint8), vote_classes=np.array(VOTE_CLASSES))

    faces = load_faces(path)
    assert len(faces) == 2 and faces.left_out == 5
    assert [EMOTIONS[label] for label in faces.labels] == ["happy", "neutral"]
    assert np.array_equal(faces.images, images[[0, 6]])
    happy, neutral = np.zeros(7), np.zeros(7)
    happy[EMOTIONS.index("happy")], happy[EMOTIONS.index("neutral")] = 6 / 9, 3 / 9
    neutral[EMOTIONS.index("neutral")], neutral[EMOTIONS.index("sad")] = 8 / 9, 1 / 9
    assert faces.votes == pytest.approx(np.stack([happy, neutral]))

    # Without vote_classes the columns are FER+'s own order: neutral, happiness, surprise, ...
    ferplus_order = [[0, 0, 0, 0, 0, 0, 6, 2, 1, 1], [3, 3, 0, 0, 0, 0, 0, 0, 0, 4]]
    np.savez(path, images=images[:2], votes=np.array(ferplus_order, np.uint8))
    faces = load_faces(path)
    assert [EMOTIONS[label] for label in faces.labels] == ["fear"] and faces.left_out == 1
    np.savez(
        path,
        images=images[:1],
        votes=np.array([votes_row(neutral=3)]),
        vote_classes=np.array(VOTE_CLASSES[:-1]),
    )
    with pytest.raises(InputError, match="votes must be"):
        load_faces(path)
    other = ["neutral", "happy", "calm", "sad", "angry", "disgust", "fear", "contempt", "unknown", "NF"]
    np.savez(path, images=images[:1], votes=np.zeros((1, 10), np.uint8), vote_classes=np.array(other))
    with pytest.raises(InputError, match="do not name each of"):
        load_faces(path)


def test_ferplus_validation_keeps_the_documented_faces() -> None:
    faces = load_faces(require_shared(FERPLUS / "valid.npz"))
    assert len(faces) == 3370 and faces.left_out == 3579 - 3370
    assert faces.votes is not None and faces.votes.sum(axis=1) == pytest.approx(np.ones(3370))


@pytest.fixture(scope="module")
def small_ferplus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 FER+ validation faces, in the shared layout."""
    with np.load(require_shared(FERPLUS / "valid.npz")) as data:
        arrays = {name: data[name][:60] for name in ("images", "votes")} | {
            "vote_classes": data["vote_classes"]
        }
    path = tmp_path_factory.mktemp("ferplus") / "small_ferplus.npz"
    np.savez(path, **arrays)
    return path


def test_eval_of_two_sets_side_by_side(
    small_set: Path, small_ferplus: Path, mini_xception: EmotionClassifier
) -> None:
    document = run_eval(str(small_set), str(small_ferplus), "--model", "mini-xception")
    assert list(document["datasets"]) == ["small.npz", "small_ferplus.npz"]
    fer2013, ferplus = document["datasets"]["small.npz"], document["datasets"]["small_ferplus.npz"]
    assert (fer2013["faces"], fer2013["left_out"]) == (40, 0)

    # FER+'s majority, the long way: the one top vote, and one of our seven.
    with np.load(small_ferplus) as data:
        images, votes, classes = data["images"], data["votes"], list(data["vote_classes"])
    kept, labels = [], []
    for index, row in enumerate(votes.tolist()):
        top = max(row)
        ours = normalise_label(classes[row.index(top)])
        if row.count(top) == 1 and ours is not None:
            kept.append(index)
            labels.append(EMOTIONS.index(ours))
    assert (ferplus["faces"], ferplus["left_out"]) == (len(kept), 60 - len(kept))
    columns = [[normalise_label(name) for name in classes].index(emotion) for emotion in EMOTIONS]
    ours_votes = votes[kept][:, columns].astype(float)
    ours_votes /= ours_votes.sum(axis=1, keepdims=True)

    probabilities = mini_xception.classify(resize_like_cv2(images[kept], 64))
    result = ferplus["models"]["mini-xception"]
    assert result["count"] == len(kept) and result["dataset"] == "small_ferplus.npz"
    assert_figures(result, expected_figures(probabilities, np.array(labels), ours_votes))
    # Without votes no fit to them; speed is timed once per classifier.
    plain = fer2013["models"]["mini-xception"]
    assert plain["vote_cross_entropy"] is None and plain["majority_probability"] is None
    assert plain["ms_per_face_b1"] == result["ms_per_face_b1"]

    done = CliRunner().invoke(
        app, ["eval", str(small_set), str(small_ferplus), "--model", "mini-xception"], env={"COLUMNS": "200"}
    )
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    (entropy,) = [line for line in lines if "vote cross-entropy" in line]
    assert "-" in entropy and f"{result['vote_cross_entropy']:.3f}" in entropy
    assert any("precision neutral" in line for line in lines) and any("ECE neutral" in line for line in lines)
    assert "mini-xception on small_ferplus.npz: confusion" in done.stdout
    assert f"{60 - len(kept)} faces left out" in done.output
