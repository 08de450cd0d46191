/*
 * app.js: the web page of the video emotions service. Plain JS, no framework, no build step.
 *
 * Every API call goes through api(): it sends the key kept in sessionStorage as the X-API-Key
 * header and, when the service answers 401, shows the key prompt and tries again once a key is
 * entered. Images and downloads are fetched the same way and shown through blob: URLs, so a key
 * never goes into a URL.
 *
 * What the page shows are facial-expression estimates: what a face shows, not what a person feels.
 */
(function () {
  "use strict";

  var KEY_STORAGE = "video-emotions-api-key";
  var PAGE_SIZE = 8;
  var POLL_MS = 1000;
  var ACTIVE = { queued: true, running: true };
  var STATE_WORDS = {
    not_analysed: "not analysed",
    queued: "queued",
    running: "running",
    succeeded: "done",
    failed: "failed",
    cancelled: "cancelled",
  };

  var page = { offset: 0, total: 0, items: [], selected: null, emotions: null, models: null };
  var jobs = {}; // job id -> the newest job document polled
  var pollTimer = null;
  var polling = false;
  var frameUrl = null;

  function $(id) {
    return document.getElementById(id);
  }

  function element(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (name === "text") node.textContent = attributes[name];
      else if (name === "className") node.className = attributes[name];
      else node.setAttribute(name, attributes[name]);
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function percent(value, digits) {
    return value === null || value === undefined ? "" : Number(value).toFixed(digits === undefined ? 1 : digits);
  }

  function share(value) {
    return value === null || value === undefined ? "" : Math.round(value * 100) + " %";
  }

  function seconds(ms) {
    return (ms / 1000).toFixed(3);
  }

  // ---- keys and the API -------------------------------------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch (error) {
      return null;
    }
  }

  var keyWaiting = null;
  var keyEntered = null;

  // Shows the key prompt; resolves once a key is entered (one prompt for every call that waits).
  function askForKey(refused) {
    if (!keyWaiting) {
      keyWaiting = new Promise(function (resolve) {
        keyEntered = resolve;
      });
    }
    $("key-reason").textContent = refused
      ? "The service did not accept that key (401): enter another one."
      : "The service answered 401: it needs an API key. The key stays in this tab only (sessionStorage) " +
        "and is sent as the X-API-Key header, never in a URL.";
    $("key-prompt").hidden = false;
    $("key-input").focus();
    return keyWaiting;
  }

  function keySubmitted(event) {
    event.preventDefault();
    var key = $("key-input").value.trim();
    if (!key) return;
    try {
      sessionStorage.setItem(KEY_STORAGE, key);
    } catch (error) {
      // Storage refused (a private window's quota): the key lives in this page only.
      window.__veKey = key;
    }
    $("key-input").value = "";
    $("key-prompt").hidden = true;
    var resolve = keyEntered;
    keyWaiting = keyEntered = null;
    if (resolve) resolve();
  }

  function currentKey() {
    return storedKey() || window.__veKey || null;
  }

  // fetch() with the key as X-API-Key; on 401 asks for a key and tries again.
  function api(path, options) {
    options = options || {};
    var key = currentKey();
    var headers = new Headers(options.headers || {});
    if (key) headers.set("X-API-Key", key);
    var request = Object.assign({}, options, { headers: headers, credentials: "same-origin" });
    return fetch(path, request).then(function (response) {
      if (response.status !== 401) return response;
      return askForKey(Boolean(key)).then(function () {
        return api(path, options);
      });
    });
  }

  function problem(response) {
    return response
      .json()
      .catch(function () {
        return {};
      })
      .then(function (body) {
        var detail = body && body.detail ? body.detail : response.statusText;
        return new Error(response.status + ": " + (typeof detail === "string" ? detail : JSON.stringify(detail)));
      });
  }

  function apiJson(path, options) {
    return api(path, options).then(function (response) {
      if (!response.ok) return problem(response).then(Promise.reject.bind(Promise));
      return response.json();
    });
  }

  // A file fetched with the key, then saved through a blob: URL.
  function download(path, fallbackName) {
    return api(path).then(function (response) {
      if (!response.ok) return problem(response).then(Promise.reject.bind(Promise));
      var disposition = response.headers.get("content-disposition") || "";
      var match = /filename="?([^";]+)"?/i.exec(disposition);
      return response.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        var link = element("a", { href: url, download: match ? match[1] : fallbackName });
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () {
          URL.revokeObjectURL(url);
        }, 10000);
      });
    });
  }

  // ---- models ---------------------------------------------------------------------------------------

  function loadModels() {
    return apiJson("/v1/models").then(function (body) {
      page.models = body;
      var select = $("model-select");
      select.textContent = "";
      (body.models || []).forEach(function (model) {
        var label = model.name;
        if (!model.available) {
          label += model.served_by ? " (served by " + model.served_by + ")" : " (unavailable)";
        }
        var option = element("option", { value: model.name, text: label });
        if (!model.available && !model.served_by) option.disabled = true;
        if (model.name === body.default) option.selected = true;
        option.title = model.description || model.reason || "";
        select.appendChild(option);
      });
    });
  }

  // ---- the list of interviews -------------------------------------------------------------------

  function stateOf(item) {
    var job = item.job_id ? jobs[item.job_id] : null;
    if (job) return { state: job.state, progress: job.progress, error: job.error, job: job };
    return { state: item.state, progress: item.progress, error: item.error, job: null };
  }

  function errorText(error) {
    if (!error) return "";
    if (typeof error === "string") return error;
    return error.message || error.kind || JSON.stringify(error);
  }

  function stateBadge(current) {
    var word = STATE_WORDS[current.state] || current.state;
    return element("span", { className: "badge state-" + current.state, text: word });
  }

  function progressBar(current) {
    var bar = element("progress", { className: "progress", max: "1", "aria-label": "Analysis progress" });
    bar.value = current.progress || 0;
    return bar;
  }

  function renderList() {
    var list = $("interview-list");
    list.textContent = "";
    if (!page.items.length) {
      list.appendChild(element("li", { className: "muted", text: "No interviews yet." }));
    }
    page.items.forEach(function (item) {
      var current = stateOf(item);
      var button = element("button", { type: "button", className: "interview-button" });
      button.appendChild(element("span", { className: "interview-name", text: "Interview " + item.interview_id }));
      button.appendChild(element("span", { className: "muted small", text: "session " + item.session_id }));
      button.appendChild(stateBadge(current));
      if (ACTIVE[current.state]) button.appendChild(progressBar(current));
      if (current.state === "failed" && current.error) {
        button.appendChild(element("span", { className: "error small reason", text: errorText(current.error) }));
      }
      button.addEventListener("click", function () {
        select(item.interview_id);
      });
      var li = element("li", { "data-interview-id": String(item.interview_id), "data-state": current.state });
      if (page.selected === item.interview_id) li.className = "selected";
      if (page.selected === item.interview_id) button.setAttribute("aria-current", "true");
      li.appendChild(button);
      list.appendChild(li);
    });
    $("list-total").textContent = page.total ? "(" + page.total + ")" : "";
    var last = Math.min(page.offset + page.items.length, page.total);
    $("page-info").textContent = page.total ? page.offset + 1 + "–" + last + " of " + page.total : "";
    $("prev-page").disabled = page.offset === 0;
    $("next-page").disabled = page.offset + page.items.length >= page.total;
  }

  function loadList() {
    return apiJson("/v1/interviews?limit=" + PAGE_SIZE + "&offset=" + page.offset).then(function (body) {
      page.items = body.items || [];
      page.total = body.total || 0;
      page.items.forEach(function (item) {
        if (item.interview_id === page.selected) page.detailItem = item;
      });
      renderList();
      if (page.selected !== null) renderDetailState();
      schedulePolling();
    });
  }

  function selectedItem() {
    for (var i = 0; i < page.items.length; i++) {
      if (page.items[i].interview_id === page.selected) return page.items[i];
    }
    return page.detailItem && page.detailItem.interview_id === page.selected ? page.detailItem : null;
  }

  // ---- polling the jobs that run --------------------------------------------------------------------

  function activeJobs() {
    var ids = {};
    var items = page.items.slice();
    if (page.detailItem) items.push(page.detailItem);
    items.forEach(function (item) {
      if (item.job_id && ACTIVE[stateOf(item).state]) ids[item.job_id] = true;
    });
    return Object.keys(ids);
  }

  function schedulePolling() {
    if (activeJobs().length && !pollTimer) pollTimer = setInterval(poll, POLL_MS);
    if (!activeJobs().length && pollTimer) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }

  function poll() {
    if (polling) return;
    polling = true;
    var ids = activeJobs();
    var ended = false;
    Promise.all(
      ids.map(function (id) {
        return apiJson("/v1/analyses/" + encodeURIComponent(id)).then(function (job) {
          jobs[id] = job;
          if (!ACTIVE[job.state]) ended = true;
          if (!ACTIVE[job.state] && id === page.uploadedJob) {
            page.uploadedJob = null;
            var failed = job.state === "failed";
            var reason = failed ? ": " + errorText(job.error) : ".";
            setStatus("Interview " + job.interview_id + ": analysis " + STATE_WORDS[job.state] + reason, failed);
          }
        });
      })
    )
      .catch(function (error) {
        showError(error);
      })
      .then(function () {
        polling = false;
        renderList();
        renderDetailState();
        if (ended) {
          loadList().then(function () {
            var item = selectedItem();
            if (item && !ACTIVE[stateOf(item).state]) loadResults(item);
          });
        }
        schedulePolling();
      });
  }

  // ---- one interview ------------------------------------------------------------------------------

  function select(interviewId) {
    page.selected = interviewId;
    page.emotions = null;
    page.detailItem = selectedItem();
    renderList();
    $("detail-empty").hidden = true;
    $("detail-body").hidden = false;
    $("results").hidden = true;
    var item = selectedItem();
    $("detail-title").textContent =
      "Interview " + interviewId + (item ? " (session " + item.session_id + ")" : "");
    renderDetailState();
    loadJob(item).catch(showError);
    if (item && !ACTIVE[stateOf(item).state] && stateOf(item).state !== "not_analysed") loadResults(item);
  }

  function renderDetailState() {
    var item = selectedItem();
    if (!item) return;
    var current = stateOf(item);
    var line = $("detail-state");
    line.textContent = "";
    line.appendChild(document.createTextNode("State: "));
    line.appendChild(stateBadge(current));
    var job = current.job;
    if (ACTIVE[current.state] && job && job.samples) {
      line.appendChild(
        document.createTextNode(" " + job.samples.done + " of " + job.samples.expected + " samples analysed")
      );
    }
    var active = Boolean(ACTIVE[current.state]);
    $("detail-progress").hidden = !active;
    $("progress-bar").value = current.progress || 0;
    $("progress-text").textContent = Math.round((current.progress || 0) * 100) + " %";
    var failed = current.state === "failed" && current.error;
    $("detail-error").hidden = !failed;
    $("detail-error").textContent = failed ? "Failed: " + errorText(current.error) : "";
    var warnings = (job && job.warnings) || [];
    var list = $("detail-warnings");
    list.textContent = "";
    warnings.forEach(function (warning) {
      list.appendChild(element("li", { text: warningText(warning) }));
    });
    list.hidden = !warnings.length;
  }

  function warningText(warning) {
    if (typeof warning === "string") return warning;
    var where = warning.segment !== undefined ? "segment " + warning.segment + ": " : "";
    return where + (warning.message || JSON.stringify(warning));
  }

  // The newest job of an interview, for its warnings, samples and engine (the list has their count).
  function loadJob(item) {
    if (!item || !item.job_id || jobs[item.job_id]) return Promise.resolve();
    return apiJson("/v1/analyses/" + encodeURIComponent(item.job_id)).then(function (job) {
      jobs[job.id] = job;
      renderDetailState();
      schedulePolling();
    });
  }

  function loadResults(item) {
    var id = item.interview_id;
    return apiJson("/v1/interviews/" + id + "/emotions?frames=true")
      .then(function (emotions) {
        if (page.selected !== id) return;
        page.emotions = emotions;
        if (!emotions.segments || !emotions.segments.length) {
          $("results").hidden = true;
          return;
        }
        $("results").hidden = false;
        renderSegments(emotions);
        resetSample();
        var engine = emotions.segments[0].engine;
        loadCard(engine);
        return drawChart(emotions);
      })
      .catch(showError);
  }

  function drawChart(emotions) {
    var segments = emotions.segments;
    var end = 0;
    segments.forEach(function (segment) {
      end = Math.max(end, segment.end_ms / 1000);
      (segment.frames || []).forEach(function (frame) {
        end = Math.max(end, frame.time);
      });
    });
    return window.VideoEmotionsTimeline.draw($("chart"), emotions, {
      colors: window.VE_COLORS,
      onSample: showSample,
      // A top margin that keeps the segments' names clear of plotly's mode bar.
      layout: { height: 420, margin: { t: 56, b: 110 }, xaxis: { range: [0, end] }, legend: { y: -0.28 } },
    });
  }

  function swatch(label) {
    var colors = window.VE_COLORS || {};
    var mark = element("span", { className: "swatch", "aria-hidden": "true" });
    mark.style.background = colors[label] || "#999";
    return mark;
  }

  function renderSegments(emotions) {
    var rows = window.VideoEmotionsTimeline.summaryRows(emotions);
    var labels = window.VideoEmotionsTimeline.EMOTIONS;
    var head = $("segment-table").tHead;
    head.textContent = "";
    var headRow = element("tr");
    ["Segment", "From (s)", "To (s)", "Samples", "With a face", "Dominant"].forEach(function (title) {
      headRow.appendChild(element("th", { scope: "col", text: title }));
    });
    labels.forEach(function (label) {
      var title = "mean estimate of " + label + " (%)";
      headRow.appendChild(element("th", { scope: "col", title: title }, [swatch(label), label]));
    });
    head.appendChild(headRow);
    var body = $("segment-table").tBodies[0];
    body.textContent = "";
    rows.forEach(function (row) {
      var tr = element("tr", { "data-segment-id": String(row.segment_id) });
      tr.appendChild(element("th", { scope: "row", text: String(row.segment_id) }));
      tr.appendChild(element("td", { text: seconds(row.start_ms) }));
      tr.appendChild(element("td", { text: seconds(row.end_ms) }));
      tr.appendChild(element("td", { text: String(row.frames) }));
      tr.appendChild(element("td", { text: share(row.face_share) }));
      tr.appendChild(
        element("td", { className: "dominant" }, row.dominant ? [swatch(row.dominant), row.dominant] : ["no face"])
      );
      labels.forEach(function (label) {
        tr.appendChild(element("td", { text: percent(row.mean[label]) }));
      });
      body.appendChild(tr);
    });
  }

  function resetSample() {
    $("sample-empty").hidden = false;
    $("sample-body").hidden = true;
    if (frameUrl) URL.revokeObjectURL(frameUrl);
    frameUrl = null;
    $("sample-frame").removeAttribute("src");
  }

  function showSample(sample) {
    var id = page.selected;
    $("sample-empty").hidden = true;
    $("sample-body").hidden = false;
    var caption = "Segment " + sample.segment_id + ", sample " + sample.index + " at " + sample.time.toFixed(3) + " s";
    if (!sample.emotions) caption += ": no face found";
    else if (sample.score !== null) caption += ", face found (detector score " + sample.score.toFixed(2) + ")";
    $("sample-caption").textContent = caption;
    var body = $("sample-table").tBodies[0];
    body.textContent = "";
    var values = sample.emotions || {};
    Object.keys(values)
      .sort(function (a, b) {
        return values[b] - values[a];
      })
      .forEach(function (label) {
        var tr = element("tr", { "data-expression": label });
        tr.appendChild(element("th", { scope: "row" }, [swatch(label), label]));
        tr.appendChild(element("td", { text: percent(values[label], 1) }));
        body.appendChild(tr);
      });
    $("sample-table").hidden = !sample.emotions;
    var image = $("sample-frame");
    image.removeAttribute("src");
    api("/v1/interviews/" + id + "/frames/" + sample.time.toFixed(3) + ".jpg")
      .then(function (response) {
        if (!response.ok) return problem(response).then(Promise.reject.bind(Promise));
        return response.blob();
      })
      .then(function (blob) {
        if (page.selected !== id) return;
        if (frameUrl) URL.revokeObjectURL(frameUrl);
        frameUrl = URL.createObjectURL(blob);
        image.src = frameUrl;
      })
      .catch(showError);
  }

  function loadCard(engine) {
    var target = $("card-body");
    target.textContent = "";
    target.appendChild(element("p", { className: "muted", text: "Loading the card of " + engine + "…" }));
    return apiJson("/v1/models/" + encodeURIComponent(engine) + "/card")
      .then(function (card) {
        renderCard(card, engine);
      })
      .catch(function (error) {
        target.textContent = "";
        target.appendChild(element("p", { className: "error", text: "No card for " + engine + ": " + error.message }));
      });
  }

  // An error rate where a figure is a share of right answers (accuracy, recall, precision); a
  // calibration error is one already. A share of samples with a face is neither: no error rate.
  function errorRate(figure) {
    if (figure.value === null || figure.value === undefined) return "";
    if (/calibration error/.test(figure.metric)) return percent(figure.value * 100);
    if (/accuracy|recall|precision/.test(figure.metric)) return percent((1 - figure.value) * 100);
    return "";
  }

  function cardFiguresTable(figures) {
    var table = element("table", { className: "numbers figures", id: "card-figures" });
    table.appendChild(element("caption", { text: "Measured figures (%): error rate = 100 − the share right" }));
    var head = element("tr");
    ["Yardstick and measure", "Value", "Error rate", "95 % interval", "Measured"].forEach(function (title) {
      head.appendChild(element("th", { scope: "col", text: title }));
    });
    table.appendChild(element("thead", {}, [head]));
    var body = element("tbody");
    figures.forEach(function (figure) {
      if (figure.by_class) return;
      var tr = element("tr");
      var name = figure.yardstick + ", " + figure.metric;
      tr.appendChild(element("th", { scope: "row", text: name, title: figure.sample || "" }));
      tr.appendChild(element("td", { text: figure.value === null ? "" : percent(figure.value * 100) }));
      tr.appendChild(element("td", { className: "error-rate", text: errorRate(figure) }));
      var interval = figure.interval ? percent(figure.interval[0] * 100) + "–" + percent(figure.interval[1] * 100) : "";
      tr.appendChild(element("td", { text: interval }));
      tr.appendChild(element("td", { text: figure.measured || "", title: figure.source || "" }));
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function cardClassTable(figures) {
    var labels = window.VideoEmotionsTimeline.EMOTIONS;
    var table = element("table", { className: "numbers figures" });
    var head = element("tr", {}, [element("th", { scope: "col", text: "Per class (%)" })]);
    labels.forEach(function (label) {
      head.appendChild(element("th", { scope: "col" }, [swatch(label), label]));
    });
    table.appendChild(element("thead", {}, [head]));
    var body = element("tbody");
    figures.forEach(function (figure) {
      if (!figure.by_class) return;
      var tr = element("tr", {}, [element("th", { scope: "row", text: figure.yardstick + ", " + figure.metric })]);
      labels.forEach(function (label) {
        var value = figure.by_class[label];
        tr.appendChild(element("td", { text: value === undefined ? "" : percent(value * 100, 0) }));
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function renderCard(card, engine) {
    var target = $("card-body");
    target.textContent = "";
    var title = element("p", {}, [element("strong", { text: card.title || engine })]);
    title.appendChild(document.createTextNode(" (engine " + (card.engine || engine) + ")"));
    target.appendChild(title);
    if (card.wording) {
      target.appendChild(element("p", { className: "card-wording", text: "These are " + card.wording + "." }));
    }
    if (card.note) target.appendChild(element("p", { className: "muted small", text: card.note }));
    var figures = card.figures || [];
    if (figures.length) {
      target.appendChild(cardFiguresTable(figures));
      if (figures.some(function (f) { return f.by_class; })) {
        var details = element("details", {}, [element("summary", { text: "Per-class recall and precision" })]);
        details.appendChild(cardClassTable(figures));
        target.appendChild(details);
      }
    } else {
      var why = card.not_measured || "not measured";
      target.appendChild(element("p", { className: "error", text: "No measured error rates: " + why }));
    }
    var limits = card.limits || [];
    if (limits.length) {
      var more = element("details", {}, [element("summary", { text: "What the figures say to watch for" })]);
      if (card.what) more.appendChild(element("p", { className: "small", text: card.what }));
      more.appendChild(
        element(
          "ul",
          { className: "small" },
          limits.map(function (limit) {
            return element("li", { text: limit });
          })
        )
      );
      target.appendChild(more);
    }
  }

  // ---- upload ---------------------------------------------------------------------------------------

  function setStatus(text, isError) {
    var status = $("upload-status");
    status.textContent = text;
    status.className = "status" + (isError ? " error" : "");
  }

  function uploadSubmitted(event) {
    event.preventDefault();
    var video = $("video-input").files[0];
    if (!video) return;
    var form = new FormData();
    form.append("video", video, video.name);
    var segments = $("segments-input").files[0];
    if (segments) form.append("segments", segments, segments.name);
    var button = $("upload-button");
    button.disabled = true;
    setStatus("Uploading " + video.name + "…");
    var uploaded = null;
    var uploadWarning = "";
    apiJson("/v1/interviews", { method: "POST", body: form })
      .then(function (item) {
        uploaded = item;
        setStatus("Uploaded as interview " + item.interview_id + "; starting the analysis…");
        if (item.warning) uploadWarning = "Warning: " + item.warning;
        var request = { session_id: item.session_id, interview_id: item.interview_id };
        var model = $("model-select").value;
        if (model) request.model_type = model;
        var interval = parseFloat($("interval-input").value);
        if (!isNaN(interval)) request.interval = interval;
        return apiJson("/v1/analyses", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(request),
        });
      })
      .then(function (job) {
        jobs[job.id] = job;
        if (ACTIVE[job.state]) page.uploadedJob = job.id;
        var word = STATE_WORDS[job.state] || job.state;
        var text = "Interview " + uploaded.interview_id + ": analysis " + word + ".";
        setStatus(uploadWarning ? text + " " + uploadWarning : text);
        page.offset = 0;
        page.selected = uploaded.interview_id;
        return loadList().then(function () {
          select(uploaded.interview_id);
        });
      })
      .catch(function (error) {
        setStatus(error.message, true);
        if (uploaded) loadList().catch(showError);
      })
      .then(function () {
        button.disabled = false;
      });
  }

  function showError(error) {
    if (window.console) console.error(error);
    setStatus(error && error.message ? error.message : String(error), true);
  }

  // ---- start ----------------------------------------------------------------------------------------

  function start() {
    $("key-form").addEventListener("submit", keySubmitted);
    $("upload-form").addEventListener("submit", uploadSubmitted);
    $("prev-page").addEventListener("click", function () {
      page.offset = Math.max(0, page.offset - PAGE_SIZE);
      loadList().catch(showError);
    });
    $("next-page").addEventListener("click", function () {
      page.offset += PAGE_SIZE;
      loadList().catch(showError);
    });
    $("download-json").addEventListener("click", function () {
      var path = "/v1/interviews/" + page.selected + "/emotions?frames=true";
      download(path, "interview_" + page.selected + "_emotions.json").catch(showError);
    });
    $("download-csv").addEventListener("click", function () {
      var path = "/v1/interviews/" + page.selected + "/emotions?format=csv";
      download(path, "interview_" + page.selected + "_emotions.csv").catch(showError);
    });
    loadModels().catch(showError);
    loadList().catch(showError);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
