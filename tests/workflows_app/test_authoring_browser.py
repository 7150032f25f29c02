"""The schema-driven step form in a real headless Chromium (the dashboard test's selenium setup):
add a workflow in the admin, pick a step type from the choices, fill its params in the form drawn
from the type's JSON Schema, see the JSON view follow (and the form follow the JSON), save, and find
exactly those params in the stored definition; then run it with test data from the "Run with input"
form and follow the confirmation's link. Screenshots of the forms go to the test's tmp dir."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from tests.workflows_app.test_dashboard_browser import browser, wait_until  # noqa: F401 - the fixture
from workflows_app.admin.common import execution_url
from workflows_app.models import Execution, Workflow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def log_in(driver, base_url, path):
    from selenium.webdriver.common.by import By

    get_user_model().objects.create_superuser("author", "author@example.com", "s3cret-pw")
    driver.get(f"{base_url}{path}")
    driver.find_element(By.NAME, "username").send_keys("author")
    driver.find_element(By.NAME, "password").send_keys("s3cret-pw")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    wait_until(driver, lambda d: d.find_elements(By.ID, "workflow_form"), message="the workflow form")


def params_json(driver, prefix):
    from selenium.webdriver.common.by import By

    return json.loads(driver.find_element(By.ID, f"id_{prefix}-params").get_attribute("value") or "{}")


def test_build_a_step_with_the_schema_driven_form(browser, live_server, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    log_in(browser, live_server.url, "/admin/workflows_app/workflow/add/")
    browser.find_element(By.ID, "id_name").send_keys("form-built")
    browser.find_element(By.CSS_SELECTOR, "#steps-group .add-row a").click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "id_steps-0-name"), message="a new step row")
    browser.find_element(By.ID, "id_steps-0-name").send_keys("breaker")
    Select(browser.find_element(By.ID, "id_steps-0-type")).select_by_value("circuit_breaker")

    # The type's params schema drew a form: one input per param, optional ones opted in by a tick.
    form = "#steps-0 .nexus-params-form"
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, form).get_attribute("data-type") == "circuit_breaker"
               and d.find_elements(By.CSS_SELECTOR, f"{form} [name$='[failure_threshold]']"), message="the params form")
    textarea = browser.find_element(By.ID, "id_steps-0-params")
    assert not textarea.is_displayed()  # the JSON view is one click away
    opt_in = browser.find_element(By.CSS_SELECTOR, f"{form} [data-schemapath$='.failure_threshold'] .json-editor-opt-in")
    opt_in.click()
    field = browser.find_element(By.CSS_SELECTOR, f"{form} input[name$='[failure_threshold]']")
    field.clear()
    field.send_keys("3\t")
    wait_until(browser, lambda d: params_json(d, "steps-0") == {"failure_threshold": 3}, message="the JSON to follow")

    # The JSON view edits the form too.
    browser.find_element(By.CSS_SELECTOR, "#steps-0 .nexus-params-toggle").click()
    assert textarea.is_displayed()
    textarea.clear()
    textarea.send_keys('{"failure_threshold": 4, "reset_timeout": 30}')
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{form} input[name$='[failure_threshold]']")
               .get_attribute("value") == "4", message="the form to follow the JSON")
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{form} input[name$='[reset_timeout]']")
               .get_attribute("value") == "30", message="the opted-in reset_timeout")
    browser.find_element(By.CSS_SELECTOR, f"{form} input[name$='[failure_threshold]']").send_keys("\b5\t")
    wait_until(browser, lambda d: params_json(d, "steps-0") == {"failure_threshold": 5, "reset_timeout": 30},
               message="the JSON after a form edit")
    browser.find_element(By.ID, "steps-0").screenshot(str(tmp_path / "schema-driven-step-form.png"))

    # A trigger likewise: its required settings need no opt-in.
    browser.find_element(By.CSS_SELECTOR, "#triggers-group .add-row a").click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "id_triggers-0-type"), message="a new trigger row")
    Select(browser.find_element(By.ID, "id_triggers-0-type")).select_by_value("schedule")
    trigger_form = "#triggers-0 .nexus-params-form"
    cron = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"{trigger_form} input[name$='[cron]']"),
                      message="the trigger's settings form")[0]
    cron.send_keys("30 9 * * 1-5\t")
    wait_until(browser, lambda d: params_json(d, "triggers-0") == {"cron": "30 9 * * 1-5"},
               message="the trigger JSON to follow")
    browser.save_screenshot(str(tmp_path / "workflow-add-page.png"))

    browser.find_element(By.NAME, "_save").click()
    wait_until(browser, lambda d: Workflow.objects.filter(name="form-built").exists(), message="the workflow saved")
    step = Workflow.objects.get(name="form-built").current_version.definition["steps"][0]
    assert step["name"] == "breaker" and step["type"] == "circuit_breaker"
    # Stored as the catalogue normalised it: the two params given, the others at their defaults.
    assert step["params"]["failure_threshold"] == 5 and step["params"]["reset_timeout"] == 30
    assert step["params"]["timeout_duration"] == 60
    trigger = Workflow.objects.get(name="form-built").current_version.definition["triggers"][0]
    assert trigger["type"] == "schedule" and trigger["cron"] == "30 9 * * 1-5"
    assert (tmp_path / "schema-driven-step-form.png").stat().st_size > 1000

    # Run it with test data from a form: test mode is ticked already; the confirmation links to the run.
    workflow = Workflow.objects.get(name="form-built")
    browser.get(f"{live_server.url}/admin/workflows_app/workflow/{workflow.pk}/change/")
    browser.find_element(By.ID, "run-with-input").click()
    box = wait_until(browser, lambda d: d.find_elements(By.ID, "id_test_mode"), message="the run form")[0]
    assert box.is_selected()
    browser.find_element(By.ID, "id_input_data").clear()
    browser.find_element(By.ID, "id_input_data").send_keys('{"symbols": ["AAPL"]}')
    browser.save_screenshot(str(tmp_path / "run-with-input-form.png"))
    browser.find_element(By.NAME, "_run").click()
    link = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist a"), message="the confirmation")[0]
    execution = Execution.objects.get(workflow=workflow)
    assert execution.test_mode is True and execution.input_data == {"symbols": ["AAPL"], "test_mode": True}
    assert link.get_attribute("href").endswith(execution_url(execution.pk))
    browser.save_screenshot(str(tmp_path / "run-with-input-confirmation.png"))
