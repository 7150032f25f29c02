"""The trading panel of the dashboard: figures from the paper account, measured."""
import pytest

from trading_app.dashboard import pnl_panel
from trading_app.paper import PaperBroker
from workflows_app.registry import registry

pytestmark = pytest.mark.django_db


def test_panel_is_registered_and_reports_the_paper_account():
    assert registry.dashboard_panels["trading"] is pnl_panel
    from django.utils import timezone

    panel = pnl_panel(timezone.now() - timezone.timedelta(hours=1))
    account = PaperBroker().get_account()
    assert panel["metrics"]["equity"] == f"{account['equity']:,.2f}" == "100,000.00"
    assert panel["metrics"]["net_pnl"] == "0.00" and panel["metrics"]["kill_switch"] == "off"
    assert panel["columns"][0] == "account"
    assert [r[0] for r in panel["rows"]] == ["default"] and panel["rows"][0][6] == 0  # no positions yet
