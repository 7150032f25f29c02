"""REST views of the trading domain: /api/v1/trading/{account,positions,orders,kill-switch}/.

Thin, like the engine's views: they call the broker (``providers.get_broker()``: the paper broker
unless Alpaca is configured) and ``risk``; errors use the engine's one error body. Who may do
what:

- account, positions, kill switch (GET): any authenticated user;
- orders: staff see every order; others the orders placed by their own executions;
- kill switch: any authenticated user may switch it ON (stopping every new order is always safe);
  only staff may switch it OFF.

Broker credentials never appear in a reply or a log line.
"""
from __future__ import annotations

import logging

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from trading_app import risk
from trading_app.models import Order
from workflows_app.api.metrics import register_collector
from workflows_app.api.serializers import ErrorResponse, Strict
from workflows_app.api.throttles import WriteRateThrottle
from workflows_app.api.views import JSONBodyParser
from workflows_app.errors import OperationError, StepError
from workflows_app.models import Execution

logger = logging.getLogger("nexus.api.trading")

OK = OpenApiResponse(OpenApiTypes.OBJECT, description='`{"success": true, ...}`')
ERR = {code: OpenApiResponse(ErrorResponse) for code in (400, 401, 403, 429, 503)}


def _broker_call(method: str, *args, **kwargs):
    from trading_app.providers import get_broker

    try:
        return getattr(get_broker(), method)(*args, **kwargs)
    except StepError as exc:  # the broker is unreachable or refused: not the client's fault
        logger.warning("broker %s failed: %s (%s)", method, type(exc).__name__, exc.error_class)
        raise OperationError("BROKER_UNAVAILABLE", f"the broker did not answer: {exc.error_class}",
                             {"error_class": exc.error_class}) from None


class TradingView(APIView):
    parser_classes = [JSONBodyParser]
    renderer_classes = [JSONRenderer]
    throttle_classes = [WriteRateThrottle]


class AccountView(TradingView):
    @extend_schema(operation_id="trading_account", tags=["trading"], responses={200: OK, **ERR})
    def get(self, request):
        return Response({"success": True, "account": _broker_call("get_account")})


class PositionsView(TradingView):
    @extend_schema(operation_id="trading_positions", tags=["trading"], responses={200: OK, **ERR})
    def get(self, request):
        positions = _broker_call("get_positions")
        return Response({"success": True, "positions": positions, "count": len(positions)})


# --- orders: a filtered, paginated list --------------------------------------------------------


class OrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    side = django_filters.ChoiceFilter(choices=Order.Side.choices)
    symbol = django_filters.CharFilter(field_name="symbol", lookup_expr="iexact", max_length=16)
    execution_id = django_filters.CharFilter(max_length=64)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["status", "side", "symbol", "execution_id", "created_after", "created_before"]


class OrderSerializer(serializers.BaseSerializer):
    """Orders as the broker layer shapes them (``Order.as_dict``)."""

    def to_representation(self, instance):
        return instance.as_dict()


class OrderPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_paginated_response(self, data):
        return Response({"success": True, "orders": data, "count": len(data), "total": self.count,
                         "next": self.get_next_link(), "previous": self.get_previous_link()})

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "properties": {"success": {"type": "boolean"}, "orders": schema,
                                                 "count": {"type": "integer"}, "total": {"type": "integer"},
                                                 "next": {"type": "string", "nullable": True},
                                                 "previous": {"type": "string", "nullable": True}}}


def visible_orders(user):
    qs = Order.objects.select_related("account").prefetch_related("legs").order_by("-created_at")
    if user is None or user.is_staff:
        return qs
    ids = Execution.objects.filter(owner=user).values_list("id", flat=True)
    return qs.filter(execution_id__in=[form for pk in ids for form in (str(pk), pk.hex)])


class OrdersView(TradingView, ListAPIView):
    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    pagination_class = OrderPagination
    queryset = Order.objects.none()  # for the schema generator; requests use get_queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return visible_orders(self.request.user)

    @extend_schema(operation_id="trading_orders", tags=["trading"], responses={200: OK, **ERR})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- kill switch --------------------------------------------------------------------------------


class KillSwitchRequest(Strict):
    active = serializers.BooleanField()
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)


class KillSwitchView(TradingView):
    @extend_schema(operation_id="kill_switch_state", tags=["trading"], responses={200: OK, **ERR})
    def get(self, request):
        return Response({"success": True, "kill_switch": risk.kill_switch_state()})

    @extend_schema(operation_id="kill_switch_set", tags=["trading"], request=KillSwitchRequest,
                   responses={200: OK, **ERR}, summary="Switch on (anyone) or off (staff only)")
    def post(self, request):
        serializer = KillSwitchRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        active = serializer.validated_data["active"]
        if not active and not request.user.is_staff:
            raise OperationError("PERMISSION_DENIED", "only staff may switch the kill switch off",
                                 {"field": "active"})
        state = risk.set_kill_switch(active, serializer.validated_data.get("reason", ""),
                                     by=request.user.get_username())
        logger.warning("kill switch %s by %s", "ON" if active else "off", request.user.get_username())
        return Response({"success": True, "kill_switch": state})

    @extend_schema(operation_id="kill_switch_put", tags=["trading"], request=KillSwitchRequest,
                   responses={200: OK, **ERR})
    def put(self, request):
        return self.post(request)


# --- Prometheus: orders by status and side, read from the database at scrape time -------------


class OrdersCollector:
    def collect(self):
        from django.db.models import Count
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("nexus_orders", "Orders by status and side", labels=["status", "side", "broker"])
        rows = Order.objects.values("status", "side", "broker").annotate(n=Count("id")).order_by()
        for row in rows:
            family.add_metric([row["status"], row["side"], row["broker"]], row["n"])
        yield family
        ks = risk.kill_switch_state()
        yield GaugeMetricFamily("nexus_kill_switch_active", "1 while the kill switch stops new orders",
                                value=1 if ks["active"] else 0)


register_collector(OrdersCollector())
