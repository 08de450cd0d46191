"""The benchmark interviews: built once by ``../shared/bench/make_bench_video.sh``, cached under ~/.cache.

``footage="moving"`` builds the same interviews with ``make_moving_video.sh`` (beside this file),
whose picture moves all along where the shared script's repeats one frame two thirds of the time.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import imageio_ffmpeg

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VE_SHARED_DIR", REPO.parent / "shared"))
CACHE = Path.home() / ".cache" / "video-emotions" / "bench"
MOVING_SCRIPT = Path(__file__).resolve().parent / "make_moving_video.sh"
Footage = Literal["shared", "moving"]
FOOTAGE: tuple[Footage, ...] = ("shared", "moving")
#: A frame coded in fewer bytes than this repeats the picture before it: x264 codes a repeated
#: 720p or 1080p picture in about 35 bytes, a frame of footage that moves in hundreds or more.
REPEATED_FRAME_BYTES = 100


@dataclass(frozen=True)
class BenchVideo:
    """An interview of ``minutes`` at ``width`` x ``height``, and its candidate segments (a JSON file)."""

    minutes: int
    width: int
    height: int

    @property
    def name(self) -> str:
        return f"{self.minutes}min_{self.height}p"


def build_video(
    video: BenchVideo, *, shared: Path = SHARED, out: Path = CACHE, footage: Footage = "shared"
) -> tuple[Path, Path]:
    """The video and its segments file, built by the shared script (or, for ``moving`` footage,
    :data:`MOVING_SCRIPT`, cached in ``out/moving``) unless already there."""
    script = shared / "bench" / "make_bench_video.sh"
    if not script.is_file():
        raise SystemExit(f"{script} is missing: the benchmarks need ../shared beside the project")
    env = dict(os.environ, FFMPEG=imageio_ffmpeg.get_ffmpeg_exe())
    args = [str(video.minutes), str(video.width), str(video.height)]
    if footage == "moving":
        out = out / "moving"
        command = ["bash", str(MOVING_SCRIPT), str(shared), str(out), *args]
    else:
        command = ["bash", str(script), str(out), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"building the {video.name} interview failed:\n{done.stderr}")
    path = Path(done.stdout.strip().splitlines()[-1])
    return path, out / f"interview_{video.minutes}min_segments.json"


def repeated_frame_share(path: Path) -> float:
    """The share of the video's frames that repeat the picture before them, read from the sizes of
    its packets (nothing is decoded). Such frames decode far faster than frames of an interview
    that moves, so where the share is high, decoding figures (the floor, the seed) are low."""
    with av.open(str(path)) as container:
        sizes = [packet.size for packet in container.demux(container.streams.video[0]) if packet.size]
    return sum(size < REPEATED_FRAME_BYTES for size in sizes) / max(1, len(sizes))
