"""The drift and performance reports as a user sees them: headless Chromium, no network, JavaScript-rendered
pages.

Needs LIFEBOAT_TEST_CHROMIUM (path of the Chromium binary); skipped with that reason otherwise. Screenshots go
to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from lifeboat.data.simulate import DriftSpec, make_batch
from lifeboat.dataset.models import PerformanceRule
from lifeboat.monitoring.drift import drift_report
from lifeboat.monitoring.performance import performance_report
from lifeboat.settings import Settings
from tests.drift.drift_cases import START_ID, TITANIC_ANALYSED

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: Longest one Chromium call may take.
MAX_SECONDS = 30.0
#: Chromium must not reach the network: every host name fails to resolve and any request goes to a dead proxy.
OFFLINE_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
]


class _VisibleText(HTMLParser):
    """The text a reader sees: everything outside <script>, <style> and <template>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(html)
    return parser.parts


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = os.environ["LIFEBOAT_TEST_CHROMIUM"]
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *OFFLINE_FLAGS,
        "--virtual-time-budget=10000",
        *args,
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=MAX_SECONDS + 30, check=False)
    elapsed = time.monotonic() - started
    print(f"\nchromium {args[0]}: {elapsed:.1f} s")
    assert done.returncode == 0, done.stderr[-2000:]
    assert elapsed < MAX_SECONDS
    return done


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory, raw_train_csv: Path) -> Path:
    train = pd.read_csv(raw_train_csv)
    batch = make_batch(train, 500, DriftSpec.parse("Sex=male:0.8,missing=Age:0.3"), seed=5, start_id=START_ID)
    out = tmp_path_factory.mktemp("browser-reports")
    summary = drift_report(train, batch, out, "browser", Settings(), current_source="browser test batch")
    assert summary.status == "drift"
    return Path(summary.html_path)


def test_report_renders_offline_with_every_column(report_page: Path, tmp_path: Path) -> None:
    raw = report_page.read_text(encoding="utf-8")
    assert visible_text(raw) == []  # nothing shows before JavaScript runs: the DOM below was rendered by it
    dom = _chromium(tmp_path, "--dump-dom", report_page.as_uri()).stdout
    text = visible_text(dom)
    words = set(text)
    missing = [c for c in TITANIC_ANALYSED if c not in words]
    assert not missing, f"columns not shown: {missing}"
    joined = " ".join(text)
    assert "Dataset Drift is detected" in joined
    assert "Jensen-Shannon distance" in joined
    assert "Wasserstein distance (normed)" in joined
    assert "Drift is detected for 30.0% of columns (3 out of 10)" in joined  # Sex, Title, Age_missing


def test_report_screenshot_shows_the_charts(report_page: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "drift-report.png"
    shot.unlink(missing_ok=True)
    _chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", "--hide-scrollbars", report_page.as_uri()
    )
    with Image.open(shot) as image:
        assert image.size == (1400, 2000)
        pixels = image.convert("RGB").getdata()
        # Evidently draws the distribution histograms in red: a blank or error page has none.
        red = sum(1 for r, g, b in pixels if r > 200 and g < 60 and b < 60)
    assert red > 5_000


def test_not_enough_data_page_renders(tmp_path: Path, raw_train_csv: Path) -> None:
    train = pd.read_csv(raw_train_csv)
    summary = drift_report(train, train.head(20), tmp_path / "reports", "tiny", Settings())
    dom = _chromium(tmp_path, "--dump-dom", Path(summary.html_path).as_uri()).stdout
    joined = " ".join(visible_text(dom))
    assert "Not enough data:" in joined
    assert "has 20 row(s)" in joined


def test_performance_report_renders_offline_with_live_and_holdout_figures(tmp_path: Path) -> None:
    """A live performance report (Evidently's classification preset + lifeboat's calibration section)."""
    rows = 400
    target = [i % 2 for i in range(rows)]
    frame = pd.DataFrame(
        {
            "target": target,
            "prediction": [t if i % 4 else 1 - t for i, t in enumerate(target)],  # accuracy 0.75
            "probability": [0.8 if t else 0.3 for t in target],
            "model_version": "3",
        }
    )
    summary = performance_report(
        frame,
        tmp_path / "reports",
        "browser-live",
        dataset="titanic",
        holdout={"holdout_accuracy": 0.82, "holdout_roc_auc": 0.87},
        rule=PerformanceRule(),
        model_version="3",
        window="last 400 labelled predictions",
    )
    assert summary.status == "degraded"
    dom = _chromium(tmp_path, "--dump-dom", Path(summary.html_path).as_uri()).stdout
    joined = " ".join(visible_text(dom))
    assert "Live performance of titanic v3: degraded" in joined
    assert (
        "live accuracy 0.7500 over 400 labelled rows vs holdout 0.8200: drop 0.0700 > max_drop 0.05" in joined
    )
    # Rendered by Evidently's JavaScript: not in the file's visible text before it runs.
    raw = " ".join(visible_text(Path(summary.html_path).read_text(encoding="utf-8")))
    for rendered in ("Accuracy", "Precision", "Recall", "F1"):
        assert rendered in joined, rendered
        assert rendered not in raw, rendered
