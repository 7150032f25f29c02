"""The execution view and the workflow page's trigger state in a real headless Chromium (Debian's
chromium + chromedriver, selenium) against the live server and a real worker: the timeline drawn
by Plotly, a step's output expanded (a large one cut, with its size), the page following the
execution live until it is final, and a trigger's measured value against its threshold. Each test
saves a screenshot under its tmp dir (and, with NEXUS_SCREENSHOT_DIR set, a copy there)."""
from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

import tests.workflows_app.support  # noqa: F401 - the test step types
from tests.workflows_app.support import client as support_redis
from tests.workflows_app.test_dashboard_browser import browser, wait_until  # noqa: F401 - the browser fixture
from workflows_app import operations
from workflows_app.selectors.timeline import PREVIEW_BYTES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _log_in(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    get_user_model().objects.create_user("ops", password="s3cret-pw", is_staff=True)
    driver.get(url)
    assert "/ui/login/" in driver.current_url  # sent to log in first
    driver.find_element(By.NAME, "username").send_keys("ops")
    driver.find_element(By.NAME, "password").send_keys("s3cret-pw")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 1000
    if os.environ.get("NEXUS_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["NEXUS_SCREENSHOT_DIR"]) / path.name)
    return path


def test_execution_view_draws_the_timeline_and_follows_the_run(browser, live_server, celery_worker, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    created = operations.workflow_create(name="browser-timeline", steps=[
        {"name": "fetch", "type": "test_noop"},
        {"name": "quote", "type": "test_flaky", "params": {"failures": 1, "error_class": "rate_limit"}},
        {"name": "nap", "type": "test_hold", "params": {"sleep": 60, "tag": "browser-timeline"}},
        {"name": "report", "type": "test_echo", "params": {"value": "r" * (PREVIEW_BYTES * 2)}},
        {"name": "alert", "type": "test_noop", "condition": "fetch.ok == False"},
    ])
    support_redis().delete("test:release:browser-timeline")
    started = operations.workflow_execute(workflow_id=created["workflow_id"], input_data={"test_mode": True})
    _log_in(browser, live_server.url + started["execution_url"])
    wait_until(browser, lambda d: d.current_url.endswith(started["execution_url"]), message="back on the execution")
    root = wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#execution[data-loaded=true]"),
                      message="the page rendered")
    assert root.get_attribute("data-final") == "false"  # opened while it runs: the nap step holds until released
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".node[data-step=nap]").get_attribute("data-state")
               == "running", message="the running step shown live")
    support_redis().rpush("test:release:browser-timeline", 1)

    # Live: the page polls until the execution is final, without a reload.
    wait_until(browser, lambda d: d.find_element(By.ID, "execution").get_attribute("data-status") == "succeeded",
               message="live update to succeeded")
    assert root.get_attribute("data-final") == "true" and int(root.get_attribute("data-polls")) >= 1
    assert browser.find_element(By.ID, "exec-status").text == "succeeded"
    assert "final" in browser.find_element(By.ID, "status-line").text

    # The Plotly timeline: one bar per attempt that ran (the retry's failed attempt and the skipped step's too).
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#gantt .barlayer .bars path")) >= 6,
               message="gantt bars")
    assert browser.find_element(By.ID, "gantt").get_attribute("data-bars") == "6"
    assert "2 attempts" in browser.find_element(By.CSS_SELECTOR, ".node[data-step=quote]").text

    # The graph: the path taken highlighted, the skipped step not.
    assert browser.find_element(By.CSS_SELECTOR, ".node[data-step=nap]").get_attribute("data-taken") == "true"
    assert browser.find_element(By.CSS_SELECTOR, ".node[data-step=alert]").get_attribute("data-state") == "skipped"

    # A step's output, expandable; a large one cut with its size shown.
    details = browser.find_element(By.CSS_SELECTOR, "#steps details[data-step=report]")
    assert details.get_attribute("open") is None
    details.find_element(By.TAG_NAME, "summary").click()
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#steps details[data-step=report]")
               .get_attribute("open") is not None, message="details open")
    note = browser.find_element(By.CSS_SELECTOR, "#steps details[data-step=report] [data-truncated=true]")
    assert note.is_displayed() and "large:" in note.text and "KiB" in note.text
    fetch = browser.find_element(By.CSS_SELECTOR, "#steps details[data-step=fetch]")
    fetch.find_element(By.TAG_NAME, "summary").click()
    wait_until(browser, lambda d: '"ok": true' in d.find_element(By.CSS_SELECTOR, "#steps details[data-step=fetch]").text,
               message="fetch's output shown")
    assert browser.find_element(By.ID, "action-cancel").get_attribute("disabled")  # final: nothing to cancel
    browser.execute_script("window.scrollTo(0, 0)")
    _screenshot(browser, tmp_path, "execution-view")


def test_workflow_page_shows_why_a_trigger_fired_or_not(browser, live_server, celery_worker, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    from trading_app import pollers as market
    from trading_app.providers.simulated import SimulatedMarketData, inject_jump
    from workflows_app.services import triggers

    triggers.reset_state()
    start = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    created = operations.workflow_create(name="browser-triggers", steps=[{"name": "s", "type": "test_noop"}], triggers=[
        {"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "direction": "any", "window": "1h", "cooldown": 600},
        {"type": "price_change", "symbol": "MSFT", "threshold": 0.05, "direction": "up", "window": "1h"},
        {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"},
    ])
    inject_jump("AAPL", 0.04, at=start + timedelta(seconds=30))
    ticks = [*SimulatedMarketData().ticks("AAPL", count=60, start=start, interval=1.0),
             *SimulatedMarketData().ticks("MSFT", count=20, start=start, interval=1.0)]
    triggers.evaluate([market.tick_event(t) for t in ticks])

    _log_in(browser, f"{live_server.url}/ui/workflows/{created['workflow_id']}/")
    row = wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "tr[data-symbol=AAPL]"), message="trigger rows")
    assert row.get_attribute("data-holds") == "true" and "0.02" in row.text and "s of 600 s" in row.text
    msft = browser.find_element(By.CSS_SELECTOR, "tr[data-symbol=MSFT]")
    assert msft.get_attribute("data-holds") == "false" and "0.05" in msft.text
    schedule = browser.find_element(By.CSS_SELECTOR, "tr[data-type=schedule]")
    assert "never" in schedule.text and "20" in schedule.text  # never fired, its next run shown
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#trigger-chart .bars path")) == 2,
               message="the measured/threshold chart")
    _screenshot(browser, tmp_path, "trigger-state")
