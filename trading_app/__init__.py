"""Nexus trading domain: providers, indicators, sentiment, risk, brokers and step types.

Plugs into the engine only through ``workflows_app.registry.registry`` (see ``apps.py``).
"""
