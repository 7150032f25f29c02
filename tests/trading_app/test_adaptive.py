"""The specification's adaptive example: thresholds and risk limits follow volatility."""
import pytest

from tests.workflows_app.helpers import run
from trading_app.adaptive import realised_volatility
from trading_app.examples import EXAMPLES
from workflows_app import operations
from workflows_app.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)


def _params(name: str) -> tuple:
    steps = Workflow.objects.get(name=name).current_version.definition["steps"]
    return steps[2]["params"]["threshold"], steps[3]["params"]["risk_limit"]


def test_realised_volatility_of_a_known_series():
    import numpy as np

    closes = np.array([100.0, 101.0, 100.0, 101.0, 100.0])
    # returns +-0.995%: sample std 0.01149 (ddof=1) x sqrt(252) = 0.1824
    assert 0.182 < realised_volatility(closes) < 0.183


def test_adapts_by_volatility_and_keeps_running_versions(celery_worker):
    operations.workflow_create(**EXAMPLES[0])
    controller = operations.workflow_create(name="adaptive-controller", steps=[
        {"name": "adapt", "type": "adapt_to_volatility", "params": {"volatility": 0.45}}])["workflow_id"]
    high = run(controller, {"test_mode": True})
    assert high.status == "succeeded", high.error
    assert high.context["adapt"]["regime"] == "high"
    assert _params("alpaca-trading-workflow") == (0.9, 0.01)
    version = Workflow.objects.get(name="alpaca-trading-workflow").version
    assert version == 2 and high.context["adapt"]["workflow_version"] == 2

    again = run(controller, {"test_mode": True})  # same regime: no new version
    assert again.context["adapt"]["changed"] == [] and Workflow.objects.get(name="alpaca-trading-workflow").version == 2

    operations.workflow_update(workflow_id=controller, updates={"steps[adapt].params.volatility": 0.1})
    calm = run(controller, {"test_mode": True})
    assert calm.context["adapt"]["regime"] == "normal"
    assert _params("alpaca-trading-workflow") == (0.7, 0.02)


def test_measures_realised_volatility_from_market_data(celery_worker):
    operations.workflow_create(**EXAMPLES[0])
    controller = operations.workflow_create(name="adaptive-measured", steps=[
        {"name": "adapt", "type": "adapt_to_volatility", "params": {"symbol": "SPY"}}])["workflow_id"]
    execution = run(controller, {"test_mode": True})
    assert execution.status == "succeeded", execution.error
    out = execution.context["adapt"]
    assert out["volatility_source"].startswith("realised(SPY") and 0 < out["volatility"] < 5
    assert out["regime"] == ("high" if out["volatility"] > 0.3 else "normal")
