"""Thin DRF views over ``trading_app.operations`` (errors become the engine's one error body)."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from trading_app import operations


class TradingView(APIView):
    renderer_classes = [JSONRenderer]


ACCOUNT = OpenApiParameter("account", OpenApiTypes.STR, description="An account you may see (default: your own).")


class AccountsView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The broker accounts you may see")
    def get(self, request):
        return Response(operations.trading_accounts(user=request.user))


class AccountView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Broker account, exposure and trading mode",
                   parameters=[ACCOUNT])
    def get(self, request):
        return Response(operations.trading_account(account=request.query_params.get("account"), user=request.user))


class PositionsView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Open positions (marked to market)", parameters=[ACCOUNT])
    def get(self, request):
        return Response(operations.trading_positions(account=request.query_params.get("account"),
                                                     user=request.user))


class OrdersView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Orders, newest first", parameters=[
        OpenApiParameter("status", OpenApiTypes.STR, description="open, new, filled, canceled, rejected, ..."),
        OpenApiParameter("symbol", OpenApiTypes.STR), OpenApiParameter("execution_id", OpenApiTypes.STR), ACCOUNT,
        OpenApiParameter("limit", OpenApiTypes.INT), OpenApiParameter("offset", OpenApiTypes.INT)])
    def get(self, request):
        q = request.query_params
        return Response(operations.trading_orders(
            status=q.get("status"), symbol=q.get("symbol"), execution_id=q.get("execution_id"), account=q.get("account"),
            limit=q.get("limit", 50), offset=q.get("offset", 0), user=request.user))


class KillSwitchView(TradingView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Kill switch state")
    def get(self, request):
        return Response(operations.kill_switch_status(user=request.user))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary='Set the kill switch: {"active": true, "reason": "..."} (staff only); with '
                           '"account": that account\'s own switch (its owners or staff)')
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        return Response(operations.kill_switch_set(active=data.get("active"), reason=data.get("reason", ""),
                                                   account=data.get("account"), user=request.user))

    put = post
