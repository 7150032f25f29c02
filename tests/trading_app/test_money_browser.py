"""The money panels in a real headless Chromium (the dashboard's selenium setup): with the paper
trades of the hand-computed scenario, plotly.js (served from the plotly package's static copy) draws
the equity curve on an axis around the equity (not from 0) and each symbol's candles with its fills;
the trades link to the execution that made them; the kill switch is pressed from the page (a reason,
a confirmation, a CSRF-protected POST) and the press is audited. Screenshots go to the test's tmp dir."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.trading_app import money_scenario
from tests.workflows_app.test_dashboard_browser import browser, wait_until  # noqa: F401 - the fixture
from trading_app.models import KillSwitch
from workflows_app.models import AuditEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("\u2212", "-").replace("k", "e3"))


def _screenshot_of(driver, ids: list[str], path) -> None:
    """One PNG of the page region holding the elements ``ids`` (Chromium's DevTools capture)."""
    import base64

    box = driver.execute_script("""var rs = arguments[0].map(function (i) { return document.getElementById(i).getBoundingClientRect(); });
      var top = Math.min.apply(null, rs.map(function (r) { return r.top; })) + window.scrollY;
      var bottom = Math.max.apply(null, rs.map(function (r) { return r.bottom; })) + window.scrollY;
      return {x: rs[0].left, y: top, width: rs[0].width, height: bottom - top, scale: 0.8};""", ids)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"clip": box, "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_money_panels_draw_with_plotly_and_the_kill_switch_is_pressed_from_the_page(browser, live_server,  # noqa: F811
                                                                                     tmp_path, settings):
    from selenium.webdriver.common.by import By

    settings.NEXUS_DASHBOARD_REFRESH_SECONDS = 600  # drawn once; the kill switch's press refreshes at once
    get_user_model().objects.create_user("ops", password="s3cret-pw", is_staff=True)
    scenario = money_scenario.build(at_market=True)
    browser.set_window_size(1400, 2400)
    browser.get(f"{live_server.url}/admin/login/?next=/dashboard/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("s3cret-pw")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    wait_until(browser, lambda d: d.execute_script("return !!window.Plotly"), message="plotly.js loaded (static)")

    equity = wait_until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, '#panel-trading [data-chart="equity"] .js-plotly-plot'), message="the equity chart drawn")
    assert equity.find_elements(By.CSS_SELECTOR, ".scatterlayer .js-line")
    ticks = [_number(t.text) for t in equity.find_elements(By.CSS_SELECTOR, ".ytick text") if t.text]
    assert ticks and min(ticks) > 900_000, ticks  # autoranged around ~1,000,000, not from 0

    candles = wait_until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, '#panel-trades [data-chart="candles-AAPL"] .js-plotly-plot'), message="AAPL candles drawn")
    assert len(candles.find_elements(By.CSS_SELECTOR, ".trace.boxes path.box")) == 60  # one candle per session
    assert len(candles.find_elements(By.CSS_SELECTOR, ".scatterlayer .points path.point")) == 3  # 2 buys, 1 sell
    assert "AAPL" in browser.find_element(By.ID, "panel-trades").text
    link = browser.find_element(By.XPATH, '//div[@data-table="trades"]//tr[td[3]="AAPL"]//a')
    assert link.get_attribute("href").endswith(f"/ui/executions/{scenario['momentum'].pk}/")
    stop, target = [td.text for td in browser.find_elements(
        By.XPATH, '//div[@data-table="positions"]//tr[td[2]="TSLA"]/td')][6:]
    assert stop != "none" and target != "none"  # the bracket's legs
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".plot[data-drawn]")) == 4, message="drawn")
    _screenshot_of(browser, ["panel-trading", "panel-trades"], tmp_path / "money-panels.png")
    browser.save_screenshot(str(tmp_path / "dashboard.png"))

    browser.find_element(By.CSS_SELECTOR, "#panel-trading .actions input[name=reason]").send_keys("browser drill")
    browser.find_element(By.CSS_SELECTOR, '[data-action="kill-switch-on"]').click()
    alert = wait_until(browser, lambda d: d.switch_to.alert, message="the confirmation")
    assert "kill switch ON" in alert.text
    alert.accept()
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, '[data-metric="kill_switch"]').text == "ACTIVE",
               message="the kill switch shown active")
    assert browser.find_elements(By.CSS_SELECTOR, '[data-action="kill-switch-off"]')
    switch = KillSwitch.objects.get(pk=1)
    assert (switch.active, switch.reason, switch.updated_by) == (True, "browser drill", "ops")
    assert AuditEvent.objects.filter(event="kill_switch_set", data__by="ops", data__active=True).count() == 1
    assert (tmp_path / "money-panels.png").stat().st_size > 10_000
