"""Square face crops, and the resize they (and the detector) use."""

from __future__ import annotations

import numpy as np
import pytest

from video_emotions.domain import Face
from video_emotions.vision.crop import crop_face, crop_faces
from video_emotions.vision.imaging import resize


def square_on_grey(box: tuple[int, int, int, int], shape: tuple[int, int] = (360, 640)) -> np.ndarray:
    """A mid-grey frame with a white rectangle (x, y, width, height)."""
    image = np.full((*shape, 3), 100, dtype=np.uint8)
    x, y, width, height = box
    image[y : y + height, x : x + width] = 255
    return image


def test_crop_size_and_dtype() -> None:
    image = square_on_grey((300, 100, 80, 100))
    face = Face(x=300, y=100, width=80, height=100, score=0.9)

    gray = crop_face(image, face, margin=0.2, size=64)
    colour = crop_face(image, face, margin=0.2, size=48, grayscale=False)

    assert gray.shape == (64, 64) and gray.dtype == np.uint8
    assert colour.shape == (48, 48, 3) and colour.dtype == np.uint8


def test_face_is_centred_and_margin_sets_its_share() -> None:
    # A 100-px face with margin 1.0 makes a 200-px square: the face fills its middle half.
    image = square_on_grey((300, 100, 100, 100))
    face = Face(x=300, y=100, width=100, height=100, score=0.9)

    crop = crop_face(image, face, margin=1.0, size=64)

    rows, cols = np.nonzero(crop > 200)
    assert rows.mean() == pytest.approx(31.5, abs=0.5)
    assert cols.mean() == pytest.approx(31.5, abs=0.5)
    assert (crop > 200).sum() == pytest.approx(32 * 32, rel=0.1)
    assert crop[0, 0] == crop[-1, -1] == 100


def test_crop_side_follows_the_longer_side_of_the_box() -> None:
    image = square_on_grey((300, 100, 60, 120))
    face = Face(x=300, y=100, width=60, height=120, score=0.9)

    crop = crop_face(image, face, margin=0.0, size=120)

    # The square is 120 px: all of the face's height, half of the width.
    assert (crop[:, 60] > 200).all()
    assert (crop[60, 30:90] > 200).all()
    assert (crop[60, :25] == 100).all() and (crop[60, 95:] == 100).all()


def test_crop_past_the_border_repeats_the_edge_pixels() -> None:
    image = np.full((200, 300, 3), 100, dtype=np.uint8)
    image[:, 0] = 250
    # The 120-px square starts 40 px left of the frame.
    face = Face(x=-40, y=40, width=120, height=120, score=0.9)

    crop = crop_face(image, face, margin=0.0, size=60)

    assert crop.shape == (60, 60)
    # 40 of 120 px are outside: the left third repeats column 0, the rest is the frame's grey.
    assert (crop[:, :19] == 250).all()
    assert (crop[:, 22:] == 100).all()


def test_crop_entirely_outside_the_frame_is_refused() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="outside"):
        crop_face(image, Face(x=500, y=500, width=20, height=20, score=0.9), margin=0.2, size=48)


@pytest.mark.parametrize(("rgb", "luma"), [((255, 0, 0), 76), ((0, 255, 0), 150), ((0, 0, 255), 29)])
def test_grayscale_uses_bt601_weights_like_opencv(rgb: tuple[int, int, int], luma: int) -> None:
    image = np.empty((50, 50, 3), dtype=np.uint8)
    image[:] = rgb

    crop = crop_face(image, Face(x=10, y=10, width=30, height=30, score=0.9), margin=0.0, size=16)

    assert (crop == luma).all()


def test_grayscale_rounds_like_opencv_on_every_pixel() -> None:
    """Mixed colours: OpenCV's COLOR_RGB2GRAY, (4899 R + 9617 G + 1868 B + 8192) >> 14, pixel by pixel."""
    image = np.random.default_rng(7).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    expected = [
        [(4899 * int(r) + 9617 * int(g) + 1868 * int(b) + 8192) >> 14 for r, g, b in row] for row in image
    ]

    # A crop of the whole image at its own size: the gray pixels, not resized.
    crop = crop_face(image, Face(x=0, y=0, width=40, height=40, score=0.9), margin=0.0, size=40)

    assert crop.tolist() == expected


def test_crop_faces_batches_single_crops() -> None:
    images = [square_on_grey((300, 100, 80, 100)), square_on_grey((50, 200, 60, 60))]
    faces = [
        Face(x=300, y=100, width=80, height=100, score=0.9),
        Face(x=50, y=200, width=60, height=60, score=0.8),
    ]

    batch = crop_faces(images, faces, margin=0.3, size=48)

    assert batch.shape == (2, 48, 48) and batch.dtype == np.uint8
    for image, face, crop in zip(images, faces, batch, strict=True):
        np.testing.assert_array_equal(crop, crop_face(image, face, margin=0.3, size=48))
    assert crop_faces([], [], margin=0.3, size=48).shape == (0, 48, 48)
    assert crop_faces(images, faces, margin=0.3, size=32, grayscale=False).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="faces"):
        crop_faces(images, faces[:1], margin=0.3, size=48)


def test_resize_averages_areas_on_a_downscale() -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)

    shrunk = resize(image, 6, 4)

    expected = image.reshape(4, 2, 6, 2, 3).mean(axis=(1, 3))
    assert shrunk.shape == (4, 6, 3)
    assert np.abs(shrunk - expected).max() <= 1


def test_resize_reads_strided_views_and_gray_images() -> None:
    image = np.random.default_rng(1).integers(0, 256, (90, 120), dtype=np.uint8)

    view = image[::3, 10:100]

    np.testing.assert_array_equal(resize(view, 45, 15), resize(view.copy(), 45, 15))
    assert resize(view, 200, 60).shape == (60, 200)
    assert np.unique(resize(np.full((7, 5), 42, dtype=np.uint8), 64, 64)).tolist() == [42]


def eyes_on_grey(tilt_degrees: float) -> tuple[np.ndarray, Face]:
    """Two dark 9-px 'eyes' 80 px apart around (150, 150), their line turned by ``tilt_degrees``."""
    image = np.full((300, 300, 3), 200, dtype=np.uint8)
    tilt = np.radians(tilt_degrees)
    offset = 40 * np.array([np.cos(tilt), np.sin(tilt)])
    eyes = (150 - offset, 150 + offset)
    for x, y in eyes:
        image[round(y) - 4 : round(y) + 5, round(x) - 4 : round(x) + 5] = 0
    keypoints = tuple((float(x), float(y)) for x, y in eyes)
    return image, Face(x=90, y=90, width=120, height=120, score=0.9, keypoints=keypoints)


def test_aligned_crop_levels_the_eyes() -> None:
    image, face = eyes_on_grey(25)

    plain = crop_face(image, face, margin=0.0, size=120)
    aligned = crop_face(image, face, margin=0.0, size=120, align=True)

    rows, cols = np.nonzero(plain < 100)
    assert rows[cols > 60].mean() - rows[cols < 60].mean() == pytest.approx(
        80 * np.sin(np.radians(25)), abs=1
    )
    rows, cols = np.nonzero(aligned < 100)
    for side, centre in ((cols < 60, 59.5 - 40), (cols > 60, 59.5 + 40)):
        assert rows[side].mean() == pytest.approx(59.5, abs=0.7)
        assert cols[side].mean() == pytest.approx(centre, abs=1.5)
    assert aligned.shape == (120, 120) and (aligned[:5] == 200).all()
    assert crop_face(image, face, margin=0.2, size=48, grayscale=False, align=True).shape == (48, 48, 3)


def test_alignment_leaves_level_eyes_and_faces_without_keypoints_alone() -> None:
    image, face = eyes_on_grey(0)
    np.testing.assert_array_equal(
        crop_face(image, face, margin=0.3, size=64, align=True), crop_face(image, face, margin=0.3, size=64)
    )
    tilted, face = eyes_on_grey(30)
    bare = Face(x=face.x, y=face.y, width=face.width, height=face.height, score=face.score)
    np.testing.assert_array_equal(
        crop_face(tilted, bare, margin=0.3, size=64, align=True), crop_face(tilted, bare, margin=0.3, size=64)
    )
