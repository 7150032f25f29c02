"""Plain helpers shared by both test packages: polling, subprocesses, the REST API's users and
error bodies. No fixtures here (those live in the conftest.py files); test modules import these."""
