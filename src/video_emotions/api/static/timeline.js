/*
 * timeline.js: the expression timeline of one interview, drawn with plotly.js. Plain JS, no build step.
 *
 * Expects the global `Plotly` (plotly.js, loaded before this file). Defines the global
 * `VideoEmotionsTimeline` with:
 *
 *   VideoEmotionsTimeline.draw(element, emotions, options) -> Promise (Plotly.newPlot's)
 *     element   a DOM element (or its id) to draw into.
 *     emotions  the JSON of GET /v1/interviews/{id}/emotions?frames=true: `segments`, each with
 *               `result_id` (or `id`), `start_ms`, `end_ms`, `summary` and `frames` (each `index`,
 *               `time` in s, `faces`, `box`, `score`, `emotions`: percentages, or null when no face).
 *     options   {colors: {angry: "#...", ...}, onSample: function (sample) {}, noFaceColor: "#...",
 *               layout: {...}}, all optional.
 *               `colors` defaults to window.VE_COLORS (the service's colours, from Python: colors_script()),
 *               `noFaceColor` to window.VE_NO_FACE_COLOR, else black; `layout` is
 *               merged over the default layout.
 *   It draws the seven expression estimates over the video's time as a stacked area (x = time in s,
 *   y = percent; one trace per expression in EMOTIONS order), the candidate segments shaded, the
 *   samples without a face as markers (x) at 0 % (hover "no face"; a trace only when there are any),
 *   and on a click on a sample calls onSample({segment_id, index, time, emotions, box, score, faces}).
 *
 *   VideoEmotionsTimeline.summaryRows(emotions) -> [{segment_id, start_ms, end_ms, frames,
 *     frames_with_face, face_share, dominant, neutral_share, leading_expression, leading_share,
 *     mean: {angry: percent or null, ...} in EMOTIONS order}], one per segment, for tables.
 *
 *   VideoEmotionsTimeline.samples(emotions) -> every sampled frame, in time order, as onSample gets it.
 *   VideoEmotionsTimeline.EMOTIONS -> the seven labels in the service's order.
 *
 * These are facial-expression estimates: what a face shows, not what a person feels.
 */
(function (root) {
  "use strict";

  var EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  var NO_FACE_COLOR = "#000000";
  // Between two segments the area drops to 0 this many seconds after the last sample and before the next.
  var GAP_EDGE_S = 0.001;

  function segmentId(segment) {
    return segment.result_id !== undefined ? segment.result_id : segment.id;
  }

  function samples(emotions) {
    var out = [];
    ((emotions && emotions.segments) || []).forEach(function (segment) {
      (segment.frames || []).forEach(function (frame) {
        out.push({
          segment_id: segmentId(segment),
          index: frame.index,
          time: frame.time,
          emotions: frame.emotions || null,
          box: frame.box || null,
          score: frame.score === undefined ? null : frame.score,
          faces: frame.faces === undefined ? null : frame.faces,
        });
      });
    });
    out.sort(function (a, b) {
      return a.time - b.time;
    });
    return out;
  }

  function round(value, digits) {
    var scale = Math.pow(10, digits);
    return Math.round(value * scale) / scale;
  }

  function summaryRows(emotions) {
    return ((emotions && emotions.segments) || []).map(function (segment) {
      var summary = segment.summary || {};
      var frames = segment.frames || [];
      var withFace = frames.filter(function (f) {
        return f.emotions;
      });
      var total = summary.frames !== undefined ? summary.frames : frames.length;
      var faced = summary.frames_with_face !== undefined ? summary.frames_with_face : withFace.length;
      var mean = {};
      EMOTIONS.forEach(function (label) {
        var value = null;
        if (summary.mean) {
          value = summary.mean[label] === undefined ? null : summary.mean[label];
        } else if (withFace.length) {
          value = round(
            withFace.reduce(function (sum, f) {
              return sum + (f.emotions[label] || 0);
            }, 0) / withFace.length,
            3
          );
        }
        mean[label] = value;
      });
      var dominant = summary.dominant !== undefined ? summary.dominant : null;
      if (dominant === null && !summary.mean && withFace.length) {
        dominant = EMOTIONS.reduce(function (best, label) {
          return best === null || mean[label] > mean[best] ? label : best;
        }, null);
      }
      return {
        segment_id: segmentId(segment),
        start_ms: segment.start_ms,
        end_ms: segment.end_ms,
        frames: total,
        frames_with_face: faced,
        face_share: summary.usable_share !== undefined ? summary.usable_share : total ? round(faced / total, 4) : 0,
        dominant: dominant,
        neutral_share: summary.neutral_share === undefined ? null : summary.neutral_share,
        leading_expression: summary.leading_expression === undefined ? null : summary.leading_expression,
        leading_share: summary.leading_share === undefined ? null : summary.leading_share,
        mean: mean,
      };
    });
  }

  function merge(target, source) {
    Object.keys(source || {}).forEach(function (key) {
      var value = source[key];
      if (value && typeof value === "object" && !Array.isArray(value) && target[key] && typeof target[key] === "object") {
        merge(target[key], value);
      } else {
        target[key] = value;
      }
    });
    return target;
  }

  // The x positions of the stacked area: every sample, with points at 0 around the gaps between segments.
  function areaPoints(all) {
    var points = [];
    all.forEach(function (sample, position) {
      var previous = all[position - 1];
      if (previous && previous.segment_id !== sample.segment_id) {
        points.push({ x: previous.time + GAP_EDGE_S, sample: null });
        points.push({ x: sample.time - GAP_EDGE_S, sample: null });
      }
      points.push({ x: sample.time, sample: position });
    });
    return points;
  }

  function draw(element, emotions, options) {
    options = options || {};
    var colors = options.colors || root.VE_COLORS || {};
    var gd = typeof element === "string" ? document.getElementById(element) : element;
    var all = samples(emotions);
    var points = areaPoints(all);
    var x = points.map(function (p) {
      return p.x;
    });
    var customdata = points.map(function (p) {
      return p.sample;
    });
    var traces = EMOTIONS.map(function (label) {
      var color = colors[label];
      return {
        type: "scatter",
        mode: "lines",
        name: label,
        x: x,
        y: points.map(function (p) {
          var emotions = p.sample === null ? null : all[p.sample].emotions;
          return emotions ? emotions[label] || 0 : 0;
        }),
        customdata: customdata,
        stackgroup: "expressions",
        line: { width: 0.5, color: color, shape: "linear" },
        fillcolor: color,
        hovertemplate: label + " %{y:.1f} %<extra>%{x:.3f} s</extra>",
      };
    });
    var noFace = [];
    all.forEach(function (sample, position) {
      if (!sample.emotions) noFace.push(position);
    });
    if (noFace.length) {
      traces.push({
        type: "scatter",
        mode: "markers",
        name: "no face",
        x: noFace.map(function (p) {
          return all[p].time;
        }),
        y: noFace.map(function () {
          return 0;
        }),
        customdata: noFace,
        marker: { color: options.noFaceColor || root.VE_NO_FACE_COLOR || NO_FACE_COLOR, symbol: "x", size: 9 },
        hovertemplate: "no face<extra>%{x:.3f} s</extra>",
        cliponaxis: false,
      });
    }
    var segments = (emotions && emotions.segments) || [];
    var shapes = segments.map(function (segment) {
      return {
        type: "rect",
        xref: "x",
        yref: "paper",
        x0: segment.start_ms / 1000,
        x1: segment.end_ms / 1000,
        y0: 0,
        y1: 1,
        fillcolor: "rgba(0, 0, 0, 0.06)",
        line: { width: 0 },
        layer: "below",
      };
    });
    var annotations = segments.map(function (segment) {
      return {
        xref: "x",
        yref: "paper",
        x: (segment.start_ms + segment.end_ms) / 2000,
        y: 1,
        yanchor: "bottom",
        text: "segment " + segmentId(segment),
        showarrow: false,
        font: { size: 11, color: "#444" },
      };
    });
    if (!all.length) {
      annotations.push({
        xref: "paper",
        yref: "paper",
        x: 0.5,
        y: 0.5,
        text: "no sampled frames (ask for ?frames=true)",
        showarrow: false,
      });
    }
    var layout = merge(
      {
        margin: { l: 60, r: 20, t: 40, b: 50 },
        xaxis: { title: { text: "time (s)" }, zeroline: false },
        // Up to 108: the band above 100 shows the segments' shading over the stacked areas.
        yaxis: {
          title: { text: "expression estimate (%)" },
          range: [0, 108],
          tickvals: [0, 20, 40, 60, 80, 100],
          fixedrange: true,
        },
        hovermode: "closest",
        legend: { orientation: "h", y: -0.2, traceorder: "normal" },
        shapes: shapes,
        annotations: annotations,
      },
      options.layout
    );
    // Nothing that leads off the page: no plotly logo, no "edit in Chart Studio" link.
    var config = {
      responsive: true,
      displaylogo: false,
      showLink: false,
      showSendToCloud: false,
      showEditInChartStudio: false,
    };
    return root.Plotly.newPlot(gd, traces, layout, config).then(function (plot) {
      if (plot.removeAllListeners) plot.removeAllListeners("plotly_click");
      plot.on("plotly_click", function (event) {
        if (!options.onSample || !event || !event.points || !event.points.length) return;
        var position = event.points[0].customdata;
        if (position === null || position === undefined || !all[position]) return;
        options.onSample(all[position]);
      });
      return plot;
    });
  }

  root.VideoEmotionsTimeline = { EMOTIONS: EMOTIONS, draw: draw, summaryRows: summaryRows, samples: samples };
})(typeof window !== "undefined" ? window : this);
