"""The web page end to end: headless Chromium (tests/browser.py) against a live service.

A person's walk-through: open ``/``, upload woman2.mp4 with the README walk-through's segments,
start the analysis, watch its progress and its state become done, read the chart, the per-segment
table and the model card, click a sample (its percentages and its frame), download the CSV. With
``VE_API_KEYS``, the page asks for the key first, and the key never goes into a URL.

Full-page screenshots of each step go to the test's tmp folder; with ``VE_SCREENSHOT_DIR`` set, the
one of the analysed interview is copied there as ``page.png`` (the README's docs/images/page.png).
"""

from __future__ import annotations

import base64
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import chromium
from tests.service import RunningService, run_service, service_env, write_walkthrough_segments
from video_emotions.domain import EMOTIONS
from video_emotions.results import FRAME_COLUMNS

pytestmark = pytest.mark.slow

#: Seconds any one step may take (the first analysis loads the models).
STEP_S = 90.0
#: The walk-through's candidate segments (speaker 0) of woman2.mp4.
CANDIDATE_SEGMENTS = 2
#: What the page must say its numbers are.
WORDING = "facial-expression estimates: what a face shows, not what a person feels"

# Records, in the page, every state the detail shows and whether its progress bar was ever visible.
WATCH_DETAIL = """
window.__veSeen = {progress: false, values: [], states: []};
var detail = document.getElementById("detail");
new MutationObserver(function () {
  var seen = window.__veSeen;
  var wrap = document.getElementById("detail-progress");
  if (!wrap.hidden) {
    seen.progress = true;
    seen.values.push(document.getElementById("progress-bar").value);
  }
  var badge = document.querySelector("#detail-state .badge");
  if (badge && seen.states[seen.states.length - 1] !== badge.textContent) seen.states.push(badge.textContent);
}).observe(detail, {subtree: true, attributes: true, childList: true, characterData: true});
"""

# Where one sample lies on the chart, from the chart's centre (as Selenium's offsets go): the top of
# the stacked trace nearest the middle of the plot at that sample's time.
SAMPLE_POINT = """
var gd = document.getElementById("chart");
var time = arguments[0];
var layout = gd._fullLayout;
var traces = gd.data.filter(function (t) { return t.stackgroup; });
var at = traces[0].x.indexOf(time);
var total = 0, best = null;
traces.forEach(function (trace) {
  total += trace.y[at];
  if (best === null || Math.abs(total - 50) < Math.abs(best - 50)) best = total;
});
var box = gd.getBoundingClientRect();
var x = layout._size.l + layout.xaxis.l2p(time);
var y = layout._size.t + layout.yaxis.l2p(best);
return [x - box.width / 2, y - box.height / 2];
"""


# Every URL the page requested: the page itself and each resource (scripts, fetch calls, images).
REQUESTED = """
return performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
  .map(function (e) { return e.name; });
"""


def full_page(driver: Any, path: Path) -> Path:
    """A screenshot of the whole page (not only the viewport), through DevTools."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def wait_for(driver: Any, condition: Any, message: str, timeout: float = STEP_S, poll: float = 0.1) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=poll).until(condition, message)


def visible(driver: Any, element_id: str) -> bool:
    return driver.execute_script(
        "var e = document.getElementById(arguments[0]); return !!e && !e.closest('[hidden]');", element_id
    )


def api(service: RunningService, path: str, key: str | None = None) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    response = httpx.get(service.url + path, headers=headers, timeout=30)
    response.raise_for_status()
    return response


def analyse_on_page(
    driver: Any, service: RunningService, video: Path, segments: Path, shots: Path, key: str | None = None
) -> dict[str, Any]:
    """Upload ``video`` with ``segments`` through the form, start the analysis and check the page on the
    way: the progress bar, the state done, chart, table, a clicked sample and its frame, the model card.
    Returns the interview's emotions document as the API gives it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    wait_for(driver, lambda d: Select(d.find_element(By.ID, "model-select")).options, "no models listed")
    Select(driver.find_element(By.ID, "model-select")).select_by_value("default")
    driver.find_element(By.ID, "video-input").send_keys(str(video))
    driver.find_element(By.ID, "segments-input").send_keys(str(segments))
    interval = driver.find_element(By.ID, "interval-input")
    interval.clear()
    interval.send_keys("1")
    full_page(driver, shots / "1-form.png")
    driver.execute_script(WATCH_DETAIL)
    driver.find_element(By.ID, "upload-button").click()

    # The progress bar appears while the job is queued or running, then the state becomes done.
    wait_for(
        driver, lambda d: d.execute_script("return window.__veSeen.progress"), "no progress bar", poll=0.05
    )
    full_page(driver, shots / "2-progress.png")
    wait_for(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#detail-state .state-succeeded"),
        "the analysis did not end as done: " + driver.find_element(By.ID, "detail").text,
    )
    seen = driver.execute_script("return window.__veSeen")
    assert seen["progress"] and seen["states"][-1] == "done", seen
    assert set(seen["states"]) <= {"queued", "running", "done"}, seen
    item = driver.find_element(By.CSS_SELECTOR, "#interview-list li.selected")
    assert item.get_attribute("data-state") == "succeeded"
    interview_id = int(item.get_attribute("data-interview-id"))
    assert "done" in item.text and f"Interview {interview_id}" in item.text

    # The chart: seven stacked expression traces (no sample without a face in these segments).
    wait_for(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart.js-plotly-plot .main-svg"), "no chart"
    )
    traces = driver.execute_script(
        "return document.getElementById('chart').data.map(function (t) { return [t.name, !!t.stackgroup]; })"
    )
    assert [name for name, stacked in traces if stacked] == list(EMOTIONS), traces
    emotions = api(service, f"/v1/interviews/{interview_id}/emotions?frames=true", key).json()
    frames = [frame for segment in emotions["segments"] for frame in segment["frames"]]
    assert frames and all(frame["emotions"] for frame in frames)

    # The per-segment table: one row per candidate segment, its dominant expression and face share.
    rows = driver.find_elements(By.CSS_SELECTOR, "#segment-table tbody tr")
    assert len(rows) == CANDIDATE_SEGMENTS == len(emotions["segments"])
    for row, segment in zip(rows, emotions["segments"], strict=True):
        cells = [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
        summary = segment["summary"]
        assert cells[0] == str(segment["result_id"])
        assert summary["dominant"] in cells[5]
        assert cells[4] == f"{round(summary['usable_share'] * 100)} %"
        assert cells[6 + EMOTIONS.index("happy")] == f"{summary['mean']['happy']:.1f}"

    # The model card: the wording and the measured error rates of the engine that ran.
    card = api(service, f"/v1/models/{emotions['segments'][0]['engine']}/card", key).json()
    wait_for(driver, lambda d: d.find_elements(By.ID, "card-figures"), "no model card figures")
    card_text = driver.find_element(By.ID, "model-card").text
    assert card["wording"] in card_text
    accuracy = next(f for f in card["figures"] if f["metric"] == "accuracy")
    assert f"{accuracy['value'] * 100:.1f}" in card_text
    assert f"{(1 - accuracy['value']) * 100:.1f}" in card_text  # its error rate
    assert WORDING in driver.find_element(By.TAG_NAME, "header").text.lower()

    # Click one sample (the second segment's first): its percentages and its frame with the face box.
    frame = emotions["segments"][1]["frames"][0]
    chart = driver.find_element(By.ID, "chart")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", chart)
    dx, dy = driver.execute_script(SAMPLE_POINT, frame["time"])
    ActionChains(driver).move_to_element_with_offset(chart, round(dx), round(dy)).pause(0.3).click().perform()
    wait_for(driver, lambda d: visible(d, "sample-body"), "a click on the chart showed no sample")
    caption = driver.find_element(By.ID, "sample-caption").text
    assert f"{frame['time']:.3f} s" in caption, caption
    shown = {
        row.get_attribute("data-expression"): row.find_element(By.TAG_NAME, "td").text
        for row in driver.find_elements(By.CSS_SELECTOR, "#sample-table tbody tr")
    }
    assert shown == {label: f"{value:.1f}" for label, value in frame["emotions"].items()}
    wait_for(
        driver,
        lambda d: d.execute_script(
            "var i = document.getElementById('sample-frame'); return i.complete && i.naturalWidth > 0"
        ),
        "the sampled frame did not load",
    )
    assert driver.find_element(By.ID, "sample-frame").get_attribute("src").startswith("blob:")
    return emotions


def page_errors(driver: Any) -> list[str]:
    """What the page's scripts logged as errors (a refused call's 401 aside: the key prompt's cue)."""
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] == "SEVERE" and "status of 401" not in e["message"]]


def download_csv(driver: Any, downloads: Path, emotions: dict[str, Any]) -> None:
    """Click the CSV download; the file has the header and one row per sampled frame."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "download-csv").click()
    deadline = time.monotonic() + STEP_S
    while not (done := [p for p in downloads.glob("*.csv")]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert done, f"no CSV downloaded: {list(downloads.iterdir())}"
    with done[0].open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(FRAME_COLUMNS)
    frames = [
        (segment["result_id"], frame) for segment in emotions["segments"] for frame in segment["frames"]
    ]
    assert len(rows) - 1 == len(frames)
    for row, (segment_id, frame) in zip(rows[1:], frames, strict=True):
        assert int(row[1]) == segment_id and row[4] == f"{frame['time']:.3f}"


def keep_screenshot(shot: Path) -> None:
    """Copy ``shot`` to ``$VE_SCREENSHOT_DIR/page.png`` when that variable names a folder."""
    folder = os.environ.get("VE_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(folder) / "page.png")


def test_page_uploads_analyses_and_shows_an_interview(tmp_path: Path, woman2_mp4: Path) -> None:
    shots = tmp_path / "screenshots"
    downloads = tmp_path / "downloads"
    shots.mkdir()
    downloads.mkdir()
    segments = write_walkthrough_segments(tmp_path / "segments.json")
    with run_service(tmp_path / "data") as service, chromium(downloads=downloads) as driver:
        driver.get(service.url + "/")
        assert "Video emotions" in driver.title
        emotions = analyse_on_page(driver, service, woman2_mp4, segments, shots)
        analysed = full_page(driver, shots / "3-analysed.png")
        download_csv(driver, downloads, emotions)
        assert not visible(driver, "key-prompt")  # no keys: never asked
        full_page(driver, shots / "4-downloaded.png")
        assert page_errors(driver) == []
        # Offline: everything the page loaded came from the service (plotly.js too), no CDN.
        loaded = driver.execute_script(REQUESTED)
        assert any(url.endswith("/static/plotly.min.js") for url in loaded), loaded
        assert [url for url in loaded if not url.startswith((service.url + "/", "blob:"))] == []
    keep_screenshot(analysed)


def make_key(folder: Path) -> tuple[str, str]:
    """A key and its VE_API_KEYS entry, as `video-emotions keys new` prints them."""
    made = subprocess.run(
        [sys.executable, "-m", "video_emotions", "keys", "new", "--id", "page"],
        env=service_env(folder),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    lines = [line.strip() for line in made.stdout.splitlines()]
    key = lines[lines.index(next(line for line in lines if line.startswith("API key page"))) + 1]
    entry = next(line for line in lines if line.startswith("page:"))
    return key, entry


def test_page_asks_for_the_key_and_never_puts_it_in_a_url(tmp_path: Path, woman2_mp4: Path) -> None:
    from selenium.webdriver.common.by import By

    shots = tmp_path / "screenshots"
    downloads = tmp_path / "downloads"
    shots.mkdir()
    downloads.mkdir()
    segments = write_walkthrough_segments(tmp_path / "segments.json")
    key, entry = make_key(tmp_path / "keys")
    with (
        run_service(tmp_path / "data", VE_API_KEYS=entry) as service,
        chromium(downloads=downloads) as driver,
    ):
        assert httpx.get(service.url + "/v1/interviews").status_code == 401
        driver.get(service.url + "/")
        driver.execute_script("performance.setResourceTimingBufferSize(100000)")
        wait_for(driver, lambda d: visible(d, "key-prompt"), "the page did not ask for a key")
        full_page(driver, shots / "0-key-prompt.png")

        # A wrong key is refused and asked for again; the right one lets the page go on.
        driver.find_element(By.ID, "key-input").send_keys("not-the-key")
        driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait_for(
            driver,
            lambda d: (
                visible(d, "key-prompt") and "did not accept" in d.find_element(By.ID, "key-reason").text
            ),
            "a wrong key was not refused",
        )
        driver.find_element(By.ID, "key-input").send_keys(key)
        driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait_for(driver, lambda d: not visible(d, "key-prompt"), "the prompt stayed after the right key")
        assert driver.execute_script("return sessionStorage.getItem('video-emotions-api-key')") == key

        emotions = analyse_on_page(driver, service, woman2_mp4, segments, shots, key=key)
        full_page(driver, shots / "3-analysed.png")
        download_csv(driver, downloads, emotions)
        assert not visible(driver, "key-prompt")

        requested = [driver.current_url, *driver.execute_script(REQUESTED)]
        assert any("/v1/interviews" in url for url in requested), requested
        assert any("/frames/" in url for url in requested), requested
        assert not [url for url in requested if key in url]
        assert driver.execute_script("return document.cookie") == ""
        assert page_errors(driver) == []
    log = service.log.read_text()
    assert "/v1/analyses/" in log and "/frames/" in log  # the access log names every request
    assert key not in log
