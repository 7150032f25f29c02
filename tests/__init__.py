"""The test suite. Its helper modules' asserts are rewritten like the tests' own, so a failing check
in a helper shows its values too (register before they are first imported: here, the package)."""
import pytest

pytest.register_assert_rewrite("tests.support", "tests.workflows_app.helpers", "tests.workflows_app.mcp_support",
                               "tests.workflows_app.recovery_support", "tests.trading_app.helpers")
