"""Every operation of the catalogue over REST, generated: ``POST /api/v1/operations/<name>/`` with
the operation's arguments as the JSON body (its request serializer and OpenAPI body come from the
argument model, as for the MCP tools). A new operation is served here, with its schema, without a
line of REST code; the resource routes of api/urls.py stay the specification's REST shape.
"""
from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema

from workflows_app.api.serializers import from_operation
from workflows_app.api.views import OK, OperationView, errors
from workflows_app.operations.catalogue import Operation, catalogue


def operation_view(operation: Operation) -> type[OperationView]:
    request = from_operation(operation, name=f"{''.join(p.title() for p in operation.name.split('_'))}Arguments")

    @extend_schema(operation_id=f"operation_{operation.name}", tags=["operations"], request=request,
                   responses={200: OK, **errors(403, 404, 409, 413, 415, 422, 429, 504)},
                   summary=operation.description.split(". ")[0][:120], description=operation.description)
    def post(self, request_):
        return self.call(operation, **self.body(request))

    return type(f"{request.__name__}View", (OperationView,), {"post": post, "__doc__": operation.description})


def urlpatterns() -> list:
    """One route per operation the catalogue lists (as MCP tools), built once the apps are ready."""
    return [path(f"operations/{op.name}/", operation_view(op).as_view(), name=f"operation-{op.name.replace('_', '-')}")
            for op in catalogue.tools()]
