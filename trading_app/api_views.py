"""Thin DRF views over ``trading_app.operations`` (errors become the engine's one error body).

Query parameters and the kill switch's body are documented from the operations' argument models
(the catalogue); the operations parse and check them.
"""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from trading_app import operations
from workflows_app.api.serializers import from_operation

ACCOUNT_QUERY = from_operation(operations.trading_account, name="TradingAccountQuery")
ORDERS_QUERY = from_operation(operations.trading_orders, name="TradingOrdersQuery")
RISK_QUERY = from_operation(operations.risk_status, name="RiskStatusQuery")
RISK_RESET_REQUEST = from_operation(operations.risk_reset, name="RiskResetRequest")
KILL_SWITCH_REQUEST = from_operation(operations.kill_switch_set, name="KillSwitchRequest")


class TradingView(APIView):
    renderer_classes = [JSONRenderer]


class AccountsView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The broker accounts you may see")
    def get(self, request):
        return Response(operations.trading_accounts(user=request.user))


class AccountView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Broker account, exposure and trading mode",
                   parameters=[ACCOUNT_QUERY])
    def get(self, request):
        return Response(operations.trading_account(account=request.query_params.get("account"), user=request.user))


class PositionsView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Open positions (marked to market)",
                   parameters=[ACCOUNT_QUERY])
    def get(self, request):
        return Response(operations.trading_positions(account=request.query_params.get("account"),
                                                     user=request.user))


class OrdersView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Orders, newest first", parameters=[ORDERS_QUERY])
    def get(self, request):
        q = request.query_params
        return Response(operations.trading_orders(
            status=q.get("status"), symbol=q.get("symbol"), execution_id=q.get("execution_id"), account=q.get("account"),
            limit=q.get("limit", 50), offset=q.get("offset", 0), user=request.user))


class KillSwitchView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Kill switch state")
    def get(self, request):
        return Response(operations.kill_switch_status(user=request.user))

    @extend_schema(request=KILL_SWITCH_REQUEST, responses=OpenApiTypes.OBJECT,
                   summary='Set the kill switch: {"active": true, "reason": "..."} (staff only); with '
                           '"account": that account\'s own switch (its owners or staff)')
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        return Response(operations.kill_switch_set(active=data.get("active"), reason=data.get("reason", ""),
                                                   account=data.get("account"), user=request.user))

    put = post


class RiskView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Risk governor: state and headroom per limit, per account",
                   parameters=[RISK_QUERY])
    def get(self, request):
        q = request.query_params
        return Response(operations.risk_status(account=q.get("account"), refresh=q.get("refresh", "false") == "true",
                                               user=request.user))


class RiskResetView(TradingView):
    @extend_schema(request=RISK_RESET_REQUEST, responses=OpenApiTypes.OBJECT,
                   summary='Reset an account\'s risk governor: {"account": "...", "reason": "..."} (staff only)')
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        return Response(operations.risk_reset(**{k: data[k] for k in ("account", "reason", "rebaseline") if k in data},
                                              user=request.user))
