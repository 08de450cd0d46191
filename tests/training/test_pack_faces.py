"""Packing a face set to travel to a GPU machine: smaller, and unpacked to the very same arrays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import REPO
from tests.media import face_frame
from video_emotions.evaluation.faces import load_faces
from video_emotions.vision.imaging import resize


def pack_faces(source: Path, target: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "training" / "pack_faces.py"), str(source), str(target)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_pack_then_unpack_gives_the_same_faces(tmp_path: Path) -> None:
    gray = face_frame(96, 96).mean(axis=2).astype(np.uint8)
    images = np.stack([np.roll(resize(gray, 48, 48), shift, axis=1) for shift in range(40)])
    labels = np.arange(40) % 7
    np.savez_compressed(tmp_path / "faces.npz", images=images, labels=labels)

    packed = pack_faces(tmp_path / "faces.npz", tmp_path / "faces.npz.xz")
    assert packed.returncode == 0, packed.stderr
    assert (tmp_path / "faces.npz.xz").stat().st_size < (tmp_path / "faces.npz").stat().st_size
    unpacked = pack_faces(tmp_path / "faces.npz.xz", tmp_path / "again.npz")
    assert unpacked.returncode == 0, unpacked.stderr

    faces = load_faces(tmp_path / "again.npz")
    np.testing.assert_array_equal(faces.images, images)
    np.testing.assert_array_equal(faces.labels, labels)
    assert not list(tmp_path.glob("*.part"))
