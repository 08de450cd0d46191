"""The benchmark interviews: built once by ``../shared/bench/make_bench_video.sh``, cached under ~/.cache."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VE_SHARED_DIR", REPO.parent / "shared"))
CACHE = Path.home() / ".cache" / "video-emotions" / "bench"


@dataclass(frozen=True)
class BenchVideo:
    """An interview of ``minutes`` at ``width`` x ``height``, and its candidate segments (a JSON file)."""

    minutes: int
    width: int
    height: int

    @property
    def name(self) -> str:
        return f"{self.minutes}min_{self.height}p"


def build_video(video: BenchVideo, *, shared: Path = SHARED, out: Path = CACHE) -> tuple[Path, Path]:
    """The video and its segments file, built by the shared script unless already in ``out``."""
    script = shared / "bench" / "make_bench_video.sh"
    if not script.is_file():
        raise SystemExit(f"{script} is missing: the benchmarks need ../shared beside the project")
    env = dict(os.environ, FFMPEG=imageio_ffmpeg.get_ffmpeg_exe())
    args = [str(video.minutes), str(video.width), str(video.height)]
    done = subprocess.run(
        ["bash", str(script), str(out), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"building the {video.name} interview failed:\n{done.stderr}")
    path = Path(done.stdout.strip().splitlines()[-1])
    return path, out / f"interview_{video.minutes}min_segments.json"
