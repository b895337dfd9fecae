"""The Airflow UI as a user sees it, in headless Chromium: log in with the stack's admin password, open the
retraining DAG and see its last run succeeded, open the "Monitoring" and "Models" pages of the lifeboat
plugin inside the UI. Screenshots go to test-artifacts/airflow-ui/ (git-ignored, kept as test artifacts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lifeboat.orchestration.retrain import folder_name
from tests.conftest import REPO_ROOT
from tests.orchestration.conftest import LiveStack
from tests.support.chromium import Browser

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SHOTS = REPO_ROOT / "test-artifacts" / "airflow-ui"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium = Browser(os.environ["LIFEBOAT_TEST_CHROMIUM"], tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


def contains(text: str) -> str:
    """A JavaScript condition: the page (or its iframes) shows ``text``."""
    needle = json.dumps(text)
    return (
        f"(() => {{ if (document.body && document.body.innerText.includes({needle})) return true;"
        " for (const f of document.querySelectorAll('iframe')) {"
        f"  try {{ if (f.contentDocument.body.innerText.includes({needle})) return true; }} catch (e) {{}} }}"
        " return false; })()"
    )


def log_in(browser: Browser, stack: LiveStack) -> None:
    base = stack.urls["airflow"]
    browser.goto(f"{base}/")
    browser.wait_for("!!document.querySelector('input[name=password]')", "the login form")
    browser.screenshot(SHOTS / "01-login.png")
    browser.type_into("input[name=username]", "admin")
    browser.type_into("input[name=password]", stack.password)
    browser.wait_for("!document.querySelector('button[type=submit]').disabled", "the enabled Sign in button")
    browser.click("button[type=submit]")
    browser.wait_for("!location.pathname.startsWith('/auth/login')", "the UI after signing in")


def test_log_in_open_the_dag_and_the_lifeboat_pages(
    live_stack: LiveStack, first_run: dict[str, Any], browser: Browser
) -> None:
    base = live_stack.urls["airflow"]
    log_in(browser, live_stack)

    browser.goto(f"{base}/dags/titanic_retrain/runs")
    browser.wait_for(contains("titanic_retrain"), "the DAG page")
    browser.wait_for(contains("Success"), "a successful run in the runs list")
    browser.screenshot(SHOTS / "02-dag-runs.png")
    browser.goto(f"{base}/dags/titanic_retrain/runs/{first_run['dag_run_id']}")
    browser.wait_for(contains("reload_serving"), "the run's task list")
    browser.wait_for(contains("Success"), "the run's state")
    browser.screenshot(SHOTS / "03-first-run.png")

    report = folder_name(first_run["dag_run_id"])
    browser.goto(f"{base}/plugin/lifeboat-monitoring")
    browser.wait_for(contains(report), "the drift report of the first run in the Monitoring page")
    browser.wait_for(contains("Live performance"), "the live performance section of the Monitoring page")
    browser.screenshot(SHOTS / "04-monitoring.png")

    champion = live_stack.champion()
    assert champion is not None
    browser.goto(f"{base}/plugin/lifeboat-models")
    browser.wait_for(contains(live_stack.settings.model_name), "the registered model in the Models page")
    browser.wait_for(contains("champion"), "the champion in the Models page")
    browser.screenshot(SHOTS / "05-models.png")

    browser.goto(f"{base}/lifeboat/monitoring/{report}")
    browser.wait_for("document.body.innerText.length > 0", "the report page")
    assert "Not authenticated" not in browser.text()
    # The report's scripts run sandboxed (an opaque origin): none can read the login cookie or call the API.
    assert browser.evaluate("window.origin") == "null"
    assert browser.evaluate("(() => { try { return document.cookie; } catch (e) { return e.name; } })()") == (
        "SecurityError"
    )
    browser.screenshot(SHOTS / "06-drift-report.png")


def test_the_lifeboat_pages_refuse_a_browser_that_did_not_log_in(
    live_stack: LiveStack, first_run: dict[str, Any], browser: Browser
) -> None:
    base = live_stack.urls["airflow"]
    for path in ("/lifeboat/monitoring", "/lifeboat/models"):
        browser.goto(f"{base}{path}")
        status = browser.evaluate(
            f"fetch({json.dumps(base + path)}, {{credentials: 'include'}}).then(r => r.status)"
        )
        assert status == 401, (path, status)  # no login cookie: "Not authenticated"
        assert live_stack.settings.model_name not in browser.text()
