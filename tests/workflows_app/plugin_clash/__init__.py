"""A test-only app whose plugin declares a step type the engine already declares: starting Django
with it installed must fail (tests/workflows_app/test_plugins.py)."""
