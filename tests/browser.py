"""Headless Chromium for the page tests: Debian's ``chromium`` driven by Selenium through Debian's
``chromium-driver`` (both installed by ``.ci/run``). Without them the tests skip, unless
REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("VE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")

#: Chromium's flags for a closed network: no background connections, no first-run work.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def require_chromium() -> None:
    if Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file():
        return
    message = f"Chromium ({CHROMIUM}) or its driver ({CHROMEDRIVER}) is missing"
    message += ": apt install chromium chromium-driver"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium(*, downloads: Path | None = None, offline: bool = False) -> Iterator[object]:
    """A Selenium driver on a fresh headless Chromium profile; ``downloads``: where files it
    downloads go; ``offline``: the network cut off (DevTools' offline emulation) from the start."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="ve-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if downloads is not None:
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        if offline:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd(
                "Network.emulateNetworkConditions",
                {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
            )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
