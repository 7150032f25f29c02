"""REST face of the backtests (thin: the operations decide everything).

``POST /api/v1/workflows/{id}/backtest/`` starts one (202, the id at once);
``GET /api/v1/backtests/{id}/`` its status; ``GET .../results/`` the results as JSON
(``?download=1``: as an attachment); ``GET .../trades.csv`` and ``.../equity.csv`` as CSV.
"""
from __future__ import annotations

import csv
import io
import json

from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from trading_app import operations
from workflows_app.api.serializers import from_operation
from workflows_app.api.views import OperationView

BACKTEST_REQUEST = from_operation(operations.workflow_backtest, exclude=("workflow_id",), name="WorkflowBacktestRequest")
TRADE_COLUMNS = ("at", "symbol", "side", "type", "leg", "qty", "price", "commission", "realized_pnl", "partial",
                 "decision", "client_order_id", "order_id")
CURVE_COLUMNS = ("t", "equity", "drawdown")


class WorkflowBacktestView(OperationView):
    @extend_schema(operation_id="workflow_backtest", tags=["backtests"], request=BACKTEST_REQUEST,
                   responses={202: OpenApiTypes.OBJECT}, summary="Backtest a workflow over history (runs on a worker)")
    def post(self, request, workflow_id):
        data = request.data if isinstance(request.data, dict) else {}
        return self.call(operations.workflow_backtest, 202, **{**data, "workflow_id": workflow_id})


class BacktestStatusView(OperationView):
    @extend_schema(operation_id="backtest_status", tags=["backtests"], responses={200: OpenApiTypes.OBJECT},
                   summary="A backtest's status and progress")
    def get(self, request, backtest_id):
        return self.call(operations.backtest_status, backtest_id=backtest_id)


class BacktestResultsView(OperationView):
    @extend_schema(operation_id="backtest_results", tags=["backtests"], responses={200: OpenApiTypes.OBJECT},
                   summary="A finished backtest's metrics, trades, equity curve and decisions")
    def get(self, request, backtest_id):
        reply = operations.backtest_results(user=request.user, backtest_id=backtest_id,
                                            limit=request.query_params.get("limit", 2000))
        if request.query_params.get("download") in ("1", "true"):
            response = HttpResponse(json.dumps(reply, indent=1), content_type="application/json")
            response["Content-Disposition"] = f'attachment; filename="backtest-{backtest_id}.json"'
            return response
        return Response(reply)


class BacktestCsvView(OperationView):
    part, columns = "trades", TRADE_COLUMNS

    @extend_schema(tags=["backtests"], responses={(200, "text/csv"): OpenApiTypes.STR},
                   summary="A finished backtest's trades or equity curve as CSV")
    def get(self, request, backtest_id):
        reply = operations.backtest_results(user=request.user, backtest_id=backtest_id, limit=2000)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(reply[self.part])
        response = HttpResponse(out.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="backtest-{backtest_id}-{self.part}.csv"'
        return response


class BacktestCurveCsvView(BacktestCsvView):
    part, columns = "equity_curve", CURVE_COLUMNS


urlpatterns = [
    path("workflows/<str:workflow_id>/backtest/", WorkflowBacktestView.as_view(), name="workflow-backtest"),
    path("backtests/<str:backtest_id>/", BacktestStatusView.as_view(), name="backtest"),
    path("backtests/<str:backtest_id>/results/", BacktestResultsView.as_view(), name="backtest-results"),
    path("backtests/<str:backtest_id>/trades.csv", BacktestCsvView.as_view(), name="backtest-trades-csv"),
    path("backtests/<str:backtest_id>/equity.csv", BacktestCurveCsvView.as_view(), name="backtest-equity-csv"),
]
