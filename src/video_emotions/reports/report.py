"""One standalone HTML file per interview: plotly.js, timeline.js and the data inlined, no URL to fetch.

A recruiter can open it offline or attach it to a message: nothing in it loads anything from
anywhere (plotly.js comes from the ``plotly`` package's bundled ``plotly.min.js``, not a CDN).
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from video_emotions.context import ServiceContext
from video_emotions.domain import EMOTIONS
from video_emotions.errors import NotFoundError
from video_emotions.jobs.records import interview_document
from video_emotions.reports.colors import EMOTION_COLORS, colors_script

#: The words every view of these numbers carries.
WORDING = "facial-expression estimates — what a face shows, not what a person feels"


def interview_emotions(ctx: ServiceContext, interview_id: int) -> dict[str, Any]:
    """The interview's stored results as ``GET /v1/interviews/{id}/emotions?frames=true`` gives them.

    Raises :class:`NotFoundError` for an interview that does not exist or has no results yet.
    """
    document = interview_document(ctx.db, interview_id, frames=True)
    if document is None:
        raise NotFoundError(f"interview {interview_id} does not exist")
    if not document["segments"]:
        raise NotFoundError(
            f"interview {interview_id} has not been analysed yet: run POST /analyse_video "
            "(or POST /v1/analyses) on it first"
        )
    return document


def plotly_js() -> str:
    """plotly.js as the ``plotly`` package bundles it (``plotly/package_data/plotly.min.js``)."""
    return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_text(encoding="utf-8")


def timeline_js() -> str:
    """Our ``api/static/timeline.js``, which draws the chart (and the web page's)."""
    return resources.files("video_emotions.api").joinpath("static", "timeline.js").read_text(encoding="utf-8")


def _script_json(document: Any) -> str:
    """JSON that cannot end or open anything inside a ``<script>`` element."""
    text = json.dumps(document, ensure_ascii=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inline_script(code: str) -> str:
    if "</script" in code.lower() or "<!--" in code:
        raise ValueError("a script to inline holds </script or <!--")
    return code


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _table_rows(document: dict[str, Any]) -> str:
    rows = []
    for segment in document["segments"]:
        summary = segment["summary"]
        mean = summary.get("mean") or {}
        cells = [
            str(segment["result_id"]),
            f"{segment['start_ms'] / 1000:.3f}",
            f"{segment['end_ms'] / 1000:.3f}",
            str(summary["frames"]),
            _share(summary["usable_share"]),
            summary["dominant"] or "no face",
            _share(summary.get("neutral_share")),
            " ".join(filter(None, [summary.get("leading_expression"), _share(summary.get("leading_share"))])),
            *(_percent(mean.get(label)) for label in EMOTIONS),
        ]
        tds = "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
        rows.append(f'<tr data-segment-id="{int(segment["result_id"])}">{tds}</tr>')
    return "\n".join(rows)


def _distinct(document: dict[str, Any], key: str) -> str:
    values = dict.fromkeys(str(s[key]) for s in document["segments"] if s.get(key) is not None)
    return ", ".join(values) or "unknown"


_TEMPLATE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Interview $interview_id: facial-expression estimates</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 84rem; padding: 0 1rem; }
body { color: #222; }
h1 { font-size: 1.4rem; margin-bottom: 0.3rem; }
.wording { font-size: 1.05rem; font-weight: 600; margin: 0.2rem 0 0.6rem; }
.caution { color: #555; font-size: 0.9rem; max-width: 60rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; font-size: 0.9rem; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
#timeline { width: 100%; height: 420px; }
#sample { font-size: 0.9rem; min-height: 1.5rem; color: #333; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin-top: 0.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.45rem; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; vertical-align: middle; }
.warnings { color: #8a4b00; }
</style>
</head>
<body>
<h1>Interview $interview_id (session $session_id)</h1>
<p class="wording">$wording_capital</p>
<p class="caution">A model reads the expression on the candidate's face in sampled frames; its
estimates have real error rates and must not be read as a measure of a person's emotions,
honesty or suitability. Emotion recognition in hiring is restricted or forbidden in some
jurisdictions (the EU AI Act prohibits it in the workplace).</p>
<dl class="meta">
<dt>engine</dt><dd id="engine">$engine</dd>
<dt>model file</dt><dd id="model-file">$model_file</dd>
<dt>model sha256</dt><dd id="model-sha256">$model_sha256</dd>
<dt>job</dt><dd id="job-id">$job_id</dd>
<dt>report written</dt><dd>$written</dd>
</dl>
$warnings
<h2>Timeline</h2>
<div id="timeline"></div>
<p id="sample">Click a sample on the chart to see its estimates here.</p>
<h2>Segments</h2>
<div class="table-wrap">
<table id="segments">
<thead><tr><th>segment</th><th>start (s)</th><th>end (s)</th><th>samples</th><th>with a face</th>
<th>dominant</th><th>neutral share</th><th>leading</th>$emotion_headers</tr></thead>
<tbody>
$rows
</tbody>
</table>
</div>
<p class="caution">The seven columns: the segment's mean expression estimates in percent, over its
samples with a face.</p>
<script>
$plotly
</script>
<script>
$colors
</script>
<script>
$timeline
</script>
<script type="application/json" id="ve-data">$data</script>
<script>
(function () {
  "use strict";
  var emotions = JSON.parse(document.getElementById("ve-data").textContent);
  window.VE_DATA = emotions;
  var out = document.getElementById("sample");
  function describe(sample) {
    var head = "segment " + sample.segment_id + ", sample " + sample.index;
    head += " at " + sample.time.toFixed(3) + " s: ";
    if (!sample.emotions) return head + "no face";
    var parts = VideoEmotionsTimeline.EMOTIONS.map(function (label) {
      return label + " " + (sample.emotions[label] || 0).toFixed(1) + " %";
    });
    var box = sample.box ? ", face box " + sample.box.join(" ") + ", detector score " + sample.score : "";
    return head + parts.join(", ") + box;
  }
  window.VE_CHART = VideoEmotionsTimeline.draw(document.getElementById("timeline"), emotions, {
    colors: window.VE_COLORS,
    onSample: function (sample) {
      out.textContent = describe(sample);
    },
  });
})();
</script>
</body>
</html>
"""
)


def render_report(document: dict[str, Any], *, written: datetime | None = None) -> str:
    """The standalone HTML of an emotions document (as :func:`interview_emotions` gives it)."""
    warnings = document.get("warnings") or []
    warning_html = ""
    if warnings:
        items = "".join(f"<li>{html.escape(json.dumps(w, default=str))}</li>" for w in warnings)
        warning_html = f'<div class="warnings"><h2>Not covered</h2><ul>{items}</ul></div>'
    headers = "".join(
        f'<th><span class="swatch" style="background:{EMOTION_COLORS[label]}"></span>{label}</th>'
        for label in EMOTIONS
    )
    return _TEMPLATE.substitute(
        interview_id=int(document["interview_id"]),
        session_id=html.escape(str(document.get("session_id"))),
        wording_capital=html.escape(WORDING[0].upper() + WORDING[1:] + "."),
        engine=html.escape(_distinct(document, "engine")),
        model_file=html.escape(_distinct(document, "model_file")),
        model_sha256=html.escape(_distinct(document, "model_sha256")),
        job_id=html.escape(_distinct(document, "job_id")),
        written=(written or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC"),
        warnings=warning_html,
        emotion_headers=headers,
        rows=_table_rows(document),
        plotly=_inline_script(plotly_js()),
        colors=_inline_script(colors_script()),
        timeline=_inline_script(timeline_js()),
        data=_script_json(document),
    )


def write_report(ctx: ServiceContext, interview_id: int, out: Path) -> Path:
    """Write the report of the interview's stored results to ``out``; returns ``out``."""
    out.write_text(render_report(interview_emotions(ctx, interview_id)), encoding="utf-8")
    return out
