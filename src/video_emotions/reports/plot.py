"""The expression timeline as a PNG: matplotlib on its Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_emotions.domain import EMOTIONS, NO_FACE_KEY, SegmentResult
from video_emotions.reports.colors import EMOTION_COLORS, NO_FACE_COLOR
from video_emotions.results import frame_details

#: The default title: what the numbers are, and what they are not.
TITLE = "Facial-expression estimates over time: what a face shows, not what a person feels"
_FRAME_KEY = re.compile(r"frame_(\d+)_(\d+(?:\.\d+)?)_seconds")


@dataclass(frozen=True)
class TimelineSegment:
    """One segment as the plot needs it: bounds in s and its samples (time, percentages or None)."""

    id: int
    start: float
    end: float
    samples: list[tuple[float, dict[str, float] | None]]


def _legacy_samples(legacy: Mapping[str, Mapping[str, float]]) -> list[tuple[float, dict[str, float] | None]]:
    samples = []
    for key, values in legacy.items():
        match = _FRAME_KEY.fullmatch(key)
        if match is None:
            continue
        samples.append((float(match.group(2)), None if NO_FACE_KEY in values else dict(values)))
    return sorted(samples, key=lambda sample: sample[0])


def timeline_segments(source: Sequence[SegmentResult] | Mapping[str, Any]) -> list[TimelineSegment]:
    """The segments of ``source``: analysis results, or an emotions document (that of
    ``GET /v1/interviews/{id}/emotions?frames=true``, or ``video-emotions analyse``'s JSON, whose
    samples come from the legacy ``video_emotions`` keys)."""
    if isinstance(source, Mapping):
        segments = []
        for item in source.get("segments") or []:
            if item.get("frames") is not None:
                samples = [(float(f["time"]), f.get("emotions")) for f in item["frames"]]
            else:
                samples = _legacy_samples(item.get("video_emotions") or {})
            segments.append(
                TimelineSegment(
                    id=item.get("result_id", item.get("id")),
                    start=float(item["start_ms"]) / 1000.0,
                    end=float(item["end_ms"]) / 1000.0,
                    samples=samples,
                )
            )
        return segments
    return [
        TimelineSegment(
            id=r.segment.id,
            start=r.segment.start,
            end=r.segment.end,
            samples=[(float(f["time"]), f["emotions"]) for f in frame_details(r)],
        )
        for r in source
    ]


def plot_timeline(
    source: Sequence[SegmentResult] | Mapping[str, Any],
    path: Path | str,
    *,
    title: str = TITLE,
    size: tuple[float, float] = (10.0, 4.5),
    dpi: int = 100,
) -> Path:
    """Write ``source``'s timeline to the PNG ``path`` (``size`` inches at ``dpi``: 1000 x 450 pixels
    by default): per segment the seven percentages stacked over time, the segments shaded, the samples
    without a face marked at 0, a legend. Returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    segments = timeline_segments(source)
    figure = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    no_face_times: list[float] = []
    for segment in segments:
        axes.axvspan(segment.start, segment.end, color="#000000", alpha=0.07, linewidth=0, zorder=0)
        axes.text(
            (segment.start + segment.end) / 2,
            102,
            f"segment {segment.id}",
            ha="center",
            va="bottom",
            fontsize=8,
            color="#444444",
        )
        times = [time for time, _ in segment.samples]
        if len(times) >= 2:
            values = [
                [(emotions or {}).get(label, 0.0) for _, emotions in segment.samples] for label in EMOTIONS
            ]
            axes.stackplot(
                times, values, colors=[EMOTION_COLORS[label] for label in EMOTIONS], linewidth=0, zorder=2
            )
        no_face_times += [time for time, emotions in segment.samples if emotions is None]
    if no_face_times:
        axes.scatter(
            no_face_times,
            [0.0] * len(no_face_times),
            marker="x",
            color=NO_FACE_COLOR,
            zorder=3,
            clip_on=False,
        )
    axes.set_ylim(0, 110)  # the band above 100 shows the segments' shading over the stacked areas
    axes.set_yticks(range(0, 101, 20))
    if segments:
        first = min(min([s.start, *(t for t, _ in s.samples)]) for s in segments)
        last = max(max([s.end, *(t for t, _ in s.samples)]) for s in segments)
        axes.set_xlim(first, last if last > first else first + 1)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("expression estimate (%)")
    axes.set_title(title, fontsize=11)
    handles: list[Any] = [Patch(color=EMOTION_COLORS[label], label=label) for label in EMOTIONS]
    handles.append(Line2D([], [], marker="x", color=NO_FACE_COLOR, linestyle="", label="no face"))
    handles.append(Patch(color="#000000", alpha=0.07, label="candidate segment"))
    axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    path = Path(path)
    figure.savefig(path, format="png")
    return path
