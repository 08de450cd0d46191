import numpy as np
import pytest

from video_emotions.domain import EMOTIONS
from video_emotions.vision.labels import emotions_from_mapping, label_columns, normalise_label, to_emotions


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("anger", "angry"),
        ("Happiness", "happy"),
        ("sadness", "sad"),
        ("surprised", "surprise"),
        (" Neutral ", "neutral"),
        ("FEARFUL", "fear"),
        ("disgusted", "disgust"),
        ("contempt", None),
        ("cat", None),
    ],
)
def test_names_are_normalised_to_our_seven(name: str, label: str | None) -> None:
    assert normalise_label(name) == label


def test_columns_follow_our_order_whatever_the_models() -> None:
    names = ["neutral", "happiness", "anger", "surprised", "sadness", "fear", "disgust"]
    columns = label_columns(names, source="m")
    assert [normalise_label(names[c]) for c in columns] == list(EMOTIONS)


def test_contempt_is_dropped_and_the_rest_rescaled() -> None:
    names = ["anger", "contempt", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    scores = np.array([[0.1, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]])
    probabilities = to_emotions(scores, label_columns(names, source="m"))
    assert probabilities.shape == (1, 7)
    np.testing.assert_allclose(probabilities, np.full((1, 7), 1 / 7), rtol=1e-6)


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["cat", "dog", "angry", "disgust", "fear", "happy", "sad"], "cannot map ['cat', 'dog']"),
        (["angry", "disgust", "fear", "happy", "sad", "surprise"], "no class for ['neutral']"),
        (
            ["angry", "anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
            "cannot map ['anger']",
        ),
    ],
)
def test_names_that_do_not_map_are_refused_with_the_list(names: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=r"model\.onnx: classes") as refused:
        label_columns(names, source="model.onnx")
    assert problem in str(refused.value) and str(names) in str(refused.value)


def test_a_mapping_answer_becomes_probabilities() -> None:
    percentages = {"sad": 10.0, "angry": 20.0, "surprise": 10.0, "fear": 10.0, "happy": 30.0}
    percentages |= {"disgust": 10.0, "neutral": 10.0}
    probabilities = emotions_from_mapping(percentages, source="DeepFace")
    assert list(probabilities) == list(EMOTIONS)
    assert probabilities["happy"] == pytest.approx(0.3) and sum(probabilities.values()) == pytest.approx(1)
