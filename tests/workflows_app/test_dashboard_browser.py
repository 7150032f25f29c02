"""The dashboard in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium)
against the running server: log in as staff, open the dashboard, see the measured figures and the
charts drawn, and see them refresh live. A screenshot goes to test-artifacts/ when it fails."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from workflows_app import operations

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = next((p for p in (os.environ.get("NEXUS_CHROMIUM"), "/usr/lib/chromium/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser"), shutil.which("google-chrome")) if p and os.path.exists(p)), None)
CHROMEDRIVER = os.environ.get("NEXUS_CHROMEDRIVER") or shutil.which("chromedriver")


@pytest.fixture
def browser(request, settings):
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("headless browser test needs Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never try to download anything
    profile = tempfile.mkdtemp(prefix="nexus-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1100", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    failures_before = request.session.testsfailed
    yield driver
    if request.session.testsfailed > failures_before:  # the call phase failed (reported before teardown)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
        (ARTIFACTS / f"{request.node.name}.html").write_text(driver.page_source)
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_until(driver, predicate, timeout=120.0, message="condition"):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate(driver)
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - stale elements while the page re-renders
            last_error = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {message} (last error: {last_error})")


def test_staff_sees_live_dashboard(browser, live_server, celery_worker, settings):
    from selenium.webdriver.common.by import By

    settings.NEXUS_DASHBOARD_REFRESH_SECONDS = 1
    get_user_model().objects.create_user("ops", password="s3cret-pw", is_staff=True)
    created = operations.workflow_create(name="browser-flow", steps=[{"name": "fetch", "type": "test_noop"},
                                                                     {"name": "decide", "type": "test_echo"}])
    for _ in range(2):
        reply = operations.workflow_execute(workflow_id=created["workflow_id"], **{"async": False})
        assert reply["status"] == "succeeded"

    browser.get(f"{live_server.url}/dashboard/")
    assert "/admin/login/" in browser.current_url  # staff only: sent to log in first
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("s3cret-pw")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    wait_until(browser, lambda d: d.current_url.rstrip("/").endswith("/dashboard"), message="redirect to the dashboard")

    wait_until(browser, lambda d: d.find_element(By.ID, "sum-executions").text == "2", message="2 executions shown")
    assert browser.find_element(By.ID, "sum-success").text == "100.0%"
    assert browser.find_element(By.ID, "sum-p50").text.endswith(" s")
    bars = browser.find_elements(By.CSS_SELECTOR, "#executions-chart rect[data-status=succeeded]")
    assert sum(int(b.get_attribute("data-value")) for b in bars) == 2
    assert browser.find_elements(By.CSS_SELECTOR, "#latency-chart circle[data-series=p99]")
    steps = {r.get_attribute("data-item") for r in browser.find_elements(By.CSS_SELECTOR, "#steps-chart rect")}
    assert steps == {"fetch", "decide"}
    assert "workflows" in browser.find_element(By.ID, "queues-chart").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#recent-executions tr[data-status=succeeded]")
    assert len(rows) == 2 and "browser-flow" in rows[0].text

    # Live: a new execution shows up without reloading the page.
    operations.workflow_execute(workflow_id=created["workflow_id"], **{"async": False})
    wait_until(browser, lambda d: d.find_element(By.ID, "sum-executions").text == "3", message="live refresh to 3")
    assert "updated" in browser.find_element(By.ID, "status").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#status.error")
