"""workflow_versions: added as one catalogue entry, served by every face without code of their own."""
import pytest

from tests.support.api import API
from workflows_app import operations
from workflows_app.mcp_server import available_tools

pytestmark = pytest.mark.django_db


def test_versions_newest_first_on_every_face(api_a):
    created = api_a.post(f"{API}/workflows/", {"name": "versioned", "steps": [{"name": "s", "type": "test_noop"}]},
                         format="json").json()
    api_a.post(f"{API}/workflows/{created['workflow_id']}/update/", {"updates": {"description": "v2"}}, format="json")
    reply = api_a.post(f"{API}/operations/workflow_versions/", {"workflow_id": "versioned"}, format="json").json()
    assert [v["version"] for v in reply["versions"]] == [2, 1]
    assert "workflow_versions" in {t.name for t in available_tools()}  # an MCP tool, with its schema
    with pytest.raises(Exception, match="limit"):
        operations.workflow_versions(workflow_id=created["workflow_id"], limit=0)
