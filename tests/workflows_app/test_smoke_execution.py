import pytest

from workflows_app import operations

pytestmark = pytest.mark.django_db(transaction=True)


def test_four_step_workflow_runs_to_success_on_a_real_worker(celery_worker):
    created = operations.workflow_create(
        name="smoke", steps=[{"name": f"s{i}", "type": "test_noop"} for i in range(4)])
    reply = operations.workflow_execute(workflow_id=created["workflow_id"], input_data={"x": 1}, **{"async": False})
    assert reply["status"] == "succeeded"
    assert list(reply["steps"]) == ["s0", "s1", "s2", "s3"]
    assert reply["steps"]["s3"]["result"] == {"ok": True, "step": "s3"}
