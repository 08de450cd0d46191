"""MediaPipe's BlazeFace full-range face detector on LiteRT, pre- and post-processing in numpy.

This reproduces MediaPipe's ``face_detection_full_range`` graph: the frame is letterboxed
into the 192x192 input (aspect ratio kept, black padding, values in [-1, 1]); each of the
2304 SSD anchors (one layer of stride 4, a 48x48 grid, one fixed-size anchor per cell centred
at offset 0.5) gives a box, six keypoints and a score; scores above the threshold go through
MediaPipe's weighted non-maximum suppression (IoU > 0.3); the letterbox is then undone.
One difference: the frame is shrunk with an area filter (over every second or third row of a
large frame) where MediaPipe samples bilinearly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from video_emotions.domain import Face
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.imaging import resize
from video_emotions.vision.modelfiles import file_sha256

INPUT_SIZE = 192
NUM_KEYPOINTS = 6
_GRID = INPUT_SIZE // 4
_NUM_ANCHORS = _GRID * _GRID
_NUM_COORDS = 4 + 2 * NUM_KEYPOINTS
_SCORE_CLIP = 100.0
_SUPPRESSION_IOU = 0.3


def _anchor_centres() -> np.ndarray:
    """(2304, 2) anchor centres (x, y) in [0, 1], row by row as the model outputs them."""
    centres = (np.arange(_GRID, dtype=np.float32) + 0.5) / _GRID
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (xmin, ymin, xmax, ymax) box with each row of ``boxes``."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _weighted_nms(
    scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """MediaPipe's WEIGHTED suppression: each cluster becomes the score-weighted mean of its members.

    The best remaining detection and every other one overlapping it by IoU > 0.3 form a cluster;
    the cluster keeps the best score and averages boxes (corners) and keypoints by score.
    """
    order = np.argsort(-scores, kind="stable")
    scores, boxes, keypoints = scores[order], boxes[order], keypoints[order]
    remaining = np.arange(len(scores))
    merged = []
    while remaining.size:
        cluster_mask = _iou(boxes[remaining[0]], boxes[remaining]) > _SUPPRESSION_IOU
        cluster_mask[0] = True
        cluster = remaining[cluster_mask]
        weights = scores[cluster]
        total = weights.sum()
        box = (boxes[cluster] * weights[:, None]).sum(axis=0) / total
        points = (keypoints[cluster] * weights[:, None, None]).sum(axis=0) / total
        merged.append((float(scores[remaining[0]]), box, points))
        remaining = remaining[~cluster_mask]
    return merged


def letterbox_resize(image: np.ndarray) -> np.ndarray:
    """Shrink an RGB ``uint8`` (H, W, 3) frame to fit 192x192, aspect ratio kept: the letterbox's content."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    scale = min(INPUT_SIZE / width, INPUT_SIZE / height)
    inner_w = min(INPUT_SIZE, max(1, round(width * scale)))
    inner_h = min(INPUT_SIZE, max(1, round(height * scale)))
    # On a large frame, keep every step-th row only: each output row still averages two or
    # more of the kept rows (MediaPipe's bilinear sampling reads two), detections on the test
    # frames do not change, and the resize of a 720p frame takes a third of the time.
    step = max(1, int(height / inner_h / 2))
    return resize(image[::step], inner_w, inner_h)


class BlazeFaceDetector:
    """Finds faces in RGB frames with BlazeFace full-range.

    One instance holds one LiteRT interpreter and an input buffer, which are not thread-safe:
    use an instance from one thread at a time (one detector per worker thread).
    ``threads`` is LiteRT's thread count for one inference (``None``: LiteRT's default).
    """

    def __init__(self, model_path: Path, *, threshold: float = 0.5, threads: int | None = None) -> None:
        self.path = Path(model_path)
        self.sha256 = file_sha256(self.path)
        self.threshold = threshold
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        except ValueError as exc:
            raise ModelUnavailableError(f"{self.path} is not a LiteRT model: {exc}") from exc
        self._interpreter.allocate_tensors()
        (self._input,) = self._interpreter.get_input_details()
        if tuple(self._input["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise ModelUnavailableError(
                f"{self.path}: input {self._input['shape']} is not BlazeFace full-range's 1x192x192x3"
            )
        # Tell regressors from scores by shape rather than trusting the output order.
        outputs = {int(d["shape"][-1]): d["index"] for d in self._interpreter.get_output_details()}
        shapes = sorted(tuple(d["shape"]) for d in self._interpreter.get_output_details())
        if shapes != [(1, _NUM_ANCHORS, 1), (1, _NUM_ANCHORS, _NUM_COORDS)]:
            raise ModelUnavailableError(
                f"{self.path}: outputs {shapes} are not BlazeFace full-range's "
                f"(1, {_NUM_ANCHORS}, {_NUM_COORDS}) and (1, {_NUM_ANCHORS}, 1)"
            )
        self._regressors = outputs[_NUM_COORDS]
        self._classificators = outputs[1]
        self._anchors = _anchor_centres()
        self._tensor = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB ``uint8`` (H, W, 3) frame, in its pixel coordinates, largest first.

        Boxes and keypoints are not clipped: a face at the border may reach past the frame.
        """
        shrunk = letterbox_resize(image)
        height, width = image.shape[:2]
        inner_h, inner_w = shrunk.shape[:2]
        left = (INPUT_SIZE - inner_w) // 2
        top = (INPUT_SIZE - inner_h) // 2
        self._tensor.fill(-1.0)
        inner = self._tensor[0, top : top + inner_h, left : left + inner_w]
        np.multiply(shrunk, np.float32(2.0 / 255.0), out=inner)
        inner -= 1.0
        self._interpreter.set_tensor(self._input["index"], self._tensor)
        self._interpreter.invoke()

        logits = self._interpreter.get_tensor(self._classificators)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -_SCORE_CLIP, _SCORE_CLIP)))
        keep = np.flatnonzero(scores >= self.threshold)
        if keep.size == 0:
            return []
        raw = self._interpreter.get_tensor(self._regressors)[0, keep] / INPUT_SIZE
        anchors = self._anchors[keep]
        centres = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        keypoints = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :]

        # From the 192x192 input's [0, 1] coordinates back to frame pixels.
        offset = np.array([left, top], dtype=np.float64)
        to_frame = np.array([width / inner_w, height / inner_h])
        faces = []
        for score, box, points in _weighted_nms(scores[keep], boxes, keypoints):
            (x0, y0), (x1, y1) = (box.reshape(2, 2) * INPUT_SIZE - offset) * to_frame
            frame_points = (points * INPUT_SIZE - offset) * to_frame
            faces.append(
                Face(
                    x=float(x0),
                    y=float(y0),
                    width=float(x1 - x0),
                    height=float(y1 - y0),
                    score=score,
                    keypoints=tuple((float(px), float(py)) for px, py in frame_points),
                )
            )
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces
