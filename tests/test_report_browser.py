"""The report in a real headless Chromium: no console errors, plots drawn, injected markup inert."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis.report import ReportConfig, WhatIfConfig, write_report
from conftest import make_small_trace

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1200,900")
PWN = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=\"window.__pwned=2\">"

# Mean and variance of the luminance of a PNG (data URL), decoded by the browser's own decoder.
PIXEL_STATS = """
const done = arguments[arguments.length - 1];
const img = new Image();
img.onload = () => {
  const c = document.createElement('canvas');
  c.width = img.width; c.height = img.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0, sum = 0, sq = 0;
  const colours = new Set();
  for (let i = 0; i < px.length; i += 4) {
    const y = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    n += 1; sum += y; sq += y * y;
    if (colours.size < 64) colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
  }
  const mean = sum / n;
  done({mean: mean, variance: sq / n - mean * mean, colours: colours.size, n: n});
};
img.onerror = () => done(null);
img.src = 'data:image/png;base64,' + arguments[0];
"""


def _missing() -> str | None:
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        return f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium"
    return None


@pytest.fixture(scope="module")
def report_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = make_small_trace()
    trace.requests["prompt_text"] = [f"please {PWN} and {IMG}", IMG]
    trace.requests["output_text"] = [PWN, "</script><script>window.__pwned=3</script>"]
    trace.meta.target_model = PWN
    trace.meta.policy_params = {"tau": 4, "note": IMG}  # also in a Plotly title
    trace.meta.extra["target_n_params"] = 134_515_008  # a size: costs move to other hardware
    path = tmp_path_factory.mktemp("report") / "report.html"
    config = ReportConfig(whatif=WhatIfConfig(taus=(2, 4), budget_fractions=(1.0,),
                                              hardware=("H100", "L4"), draft_scales=(0.9, 1.1),
                                              requests=10))
    finding = {"kind": "draft_bound", "severity": 0.9, "level": "high", "title": PWN,
               "evidence": {"x": 1.0}, "recommendation": IMG, "predicted": {}}
    write_report(trace, path, config, findings=[finding], metrics={"note": IMG})
    return path


@pytest.fixture(scope="module")
def driver(report_path: Path) -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("SPECSIM_REQUIRE_BROWSER"):  # CI installs Chromium: never skip there
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="specsim-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.get(report_path.resolve().as_uri())
        _wait_for_plots(browser, expected=_plots_in(report_path))
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _plots_in(path: Path) -> int:
    """How many figures the page carries (one JSON block each)."""
    return path.read_text().count("<script type='application/json' data-plot=")


def _wait_for_plots(browser: Any, expected: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    script = "return document.querySelectorAll('div.plot.js-plotly-plot').length"
    while time.monotonic() < deadline:
        if browser.execute_script(script) >= expected:
            return
        time.sleep(0.2)


def test_no_console_errors(driver: Any) -> None:
    logs = driver.get_log("browser")
    assert [e for e in logs if e["level"] in ("SEVERE", "WARNING")] == []


def test_plots_render(driver: Any, report_path: Path) -> None:
    counts = driver.execute_script("""
        return Array.from(document.querySelectorAll('div.plot')).map(function (div) {
          return {plotly: div.classList.contains('js-plotly-plot'),
                  marks: Array.from(div.querySelectorAll('svg g.trace path')).filter(
                    function (p) { var d = p.getAttribute('d'); return d && d !== 'M0,0Z'; }
                  ).length};
        });""")
    assert len(counts) == _plots_in(report_path) == 11  # every section, hardware and depth too
    assert all(c["plotly"] for c in counts), counts
    assert all(c["marks"] > 0 for c in counts), counts  # every figure drew its data


def test_screenshot_is_not_blank(driver: Any) -> None:
    plot = driver.find_element("css selector", "#plot-1")  # the accepted-length histogram
    driver.execute_script("arguments[0].scrollIntoView()", plot)
    shot = plot.screenshot_as_base64
    page = driver.get_screenshot_as_base64()
    driver.set_script_timeout(20)
    for png in (shot, page):
        stats = driver.execute_async_script(PIXEL_STATS, png)
        assert stats is not None and stats["n"] > 10_000
        assert stats["variance"] > 100.0, stats  # a blank page has ~0
        assert stats["colours"] > 8, stats


def test_injected_markup_is_inert(driver: Any) -> None:
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    text = driver.execute_script("return document.body.innerText")
    assert f"please {PWN} and {IMG}" in text  # shown as text
    titles = driver.execute_script(
        "return Array.from(document.querySelectorAll('.gtitle')).map(e => e.textContent)")
    assert any(IMG in t for t in titles), titles  # Plotly shows the escaped text literally
    assert driver.execute_script("return document.images.length") == 0
