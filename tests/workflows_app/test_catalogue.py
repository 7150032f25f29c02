"""The operation catalogue: every operation typed once; the faces are generated from it."""
from __future__ import annotations

import pytest

from workflows_app import operations
from workflows_app.mcp_server import available_tools
from workflows_app.operations.catalogue import Operation, Permission, catalogue
from workflows_app.operations.fields import Args


def test_every_operation_refuses_unknown_arguments_and_publishes_a_closed_schema():
    for operation in catalogue:
        assert operation.args.model_config.get("extra") == "forbid", operation.name
        assert operation.description, operation.name
        schema = operation.input_schema()
        assert schema["type"] == "object" and schema["additionalProperties"] is False, operation.name
        if operation.fn.__module__.startswith("workflows_app."):
            assert getattr(operations, operation.name) is operation  # operations.<name> is the catalogue's


def test_the_mcp_tools_are_the_catalogue_s_tool_entries():
    assert [t.name for t in available_tools()] == [op.name for op in catalogue if op.tool]
    assert {"webhook_receive", "workflow_set_owner"}.isdisjoint(t.name for t in available_tools())


def test_a_name_is_registered_once():
    def other(args, user):
        return {"success": True}

    with pytest.raises(ValueError):
        catalogue.register(Operation("workflow_list", other, Args, "another workflow_list"))


def test_staff_operations_are_refused_to_other_users_before_their_arguments_are_read(django_user_model, db):
    trader = django_user_model.objects.create_user("trader", password="pw")
    staff_only = [op for op in catalogue if op.permission is Permission.STAFF]
    assert {"queue_send", "queue_create", "event_ingest", "process_dead_letters"} <= {op.name for op in staff_only}
    for operation in staff_only:
        with pytest.raises(operations.OperationError) as caught:
            operation(user=trader, bogus=1)
        assert caught.value.code == "PERMISSION_DENIED" and caught.value.details == {"field": "user"}
