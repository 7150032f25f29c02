"""One way to plug in: every app declares a Plugin, loaded at start; a name two plugins declare is
refused (ImproperlyConfigured naming both owners), whatever the order the apps load in."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel

from tests.support.processes import ROOT
from workflows_app.registry import (
    BeatJob,
    EventKind,
    Plugin,
    Registry,
    StepType,
    TriggerType,
    load_plugins,
    registry,
)


class Params(BaseModel):
    pass


def handler(ctx) -> dict:
    return {}


def _step(name: str) -> StepType:
    return StepType(name=name, handler=handler)


def _trigger(name: str) -> TriggerType:
    return TriggerType(name=name, params_model=Params, event_kinds=("ping",))


def test_a_step_type_two_plugins_declare_is_refused_naming_both():
    fresh = Registry()
    fresh.load(Plugin(name="first_app", step_types=(_step("fetch"), _step("only_first"))))
    with pytest.raises(ImproperlyConfigured) as refused:
        fresh.load(Plugin(name="second_app", step_types=(_step("fetch"),)))
    message = str(refused.value)
    assert "step type 'fetch'" in message and "'first_app'" in message and "'second_app'" in message
    assert fresh.step_types["fetch"].handler is handler and "second_app" not in fresh.plugins


def test_a_trigger_type_two_plugins_declare_is_refused_naming_both():
    fresh = Registry()
    fresh.load(Plugin(name="first_app", trigger_types=(_trigger("price_move"),)))
    with pytest.raises(ImproperlyConfigured, match=r"trigger type 'price_move' is declared by both 'first_app' "
                                                   r"and 'second_app'"):
        fresh.load(Plugin(name="second_app", trigger_types=(_trigger("price_move"),)))


@pytest.mark.parametrize(("what", "declare"), [
    ("event kind", lambda: {"event_kinds": (EventKind("ping", discrete=True),)}),
    ("queue handler", lambda: {"queue_handlers": {"inbox": handler}}),
    ("default queue", lambda: {"default_queues": {"signals": {"description": "x"}}}),
    ("beat job", lambda: {"beat_jobs": (BeatJob("poll", "nexus.poll", every=5),)}),
    ("health check", lambda: {"health_checks": {"feed": dict}}),
    ("counter", lambda: {"counters": {"fills": lambda since: 0}}),
    ("dashboard panel", lambda: {"dashboard_panels": {"pnl": lambda since: {}}}),
    ("dead-letter redriver", lambda: {"dead_letter_redrivers": {"queue": lambda letter: {}}}),
    ("dead-letter policy", lambda: {"discard_classes": ("bad_symbol",)}),
    ("send queue", lambda: {"send_queue": "signals"}),
])
def test_every_named_part_is_refused_twice(what, declare):
    fresh = Registry()
    fresh.load(Plugin(name="first_app", **declare()))
    with pytest.raises(ImproperlyConfigured, match=f"^{what} .* both 'first_app' and 'second_app'"):
        fresh.load(Plugin(name="second_app", **declare()))


def test_a_class_both_discarded_and_retried_is_refused():
    fresh = Registry()
    fresh.load(Plugin(name="first_app", retry_classes=("flaky",)))
    with pytest.raises(ImproperlyConfigured, match="dead-letter policy 'flaky'"):
        fresh.load(Plugin(name="second_app", discard_classes=("flaky",)))


def test_a_direct_registration_cannot_take_a_plugins_name():
    with pytest.raises(ImproperlyConfigured, match="step type 'transform' is declared by both 'workflows_app'"):
        registry.register_step_type("transform", handler)
    assert registry.step_types["transform"].handler is not handler


def test_the_installed_apps_plugins_load_into_a_fresh_registry_and_a_clash_with_them_is_refused():
    class ClashConfig:
        name = "clash_app"
        plugin = "tests.workflows_app.plugin_clash.plugin.PLUGIN"

    fresh = Registry()
    loaded = load_plugins(apps.get_app_configs(), target=fresh)
    assert [p.name for p in loaded] == ["workflows_app", "trading_app"]
    assert set(fresh.step_types) == {n for n in registry.step_types if not n.startswith("test_")}
    with pytest.raises(ImproperlyConfigured, match="step type 'transform' is declared by both 'workflows_app' "
                                                   "and 'plugin_clash'"):
        load_plugins([ClashConfig], target=fresh)


def test_trading_words_come_from_tradings_plugin():
    engine, trading = registry.plugins["workflows_app"], registry.plugins["trading_app"]
    assert {"trading-signals", "risk-alerts"} <= set(trading.default_queues)
    assert not {"trading-signals", "risk-alerts"} & set(engine.default_queues)
    assert registry.send_queue == trading.send_queue == "trading-signals" and engine.send_queue is None
    assert "invalid_symbol" in trading.discard_classes and not engine.discard_classes
    assert {k.name for k in trading.event_kinds if k.discrete} == {"news"}
    assert registry.is_discrete("news") and registry.is_discrete("webhook") and not registry.is_discrete("tick")
    assert {"nexus-poll-market", "nexus-poll-news"} <= {job.name for job in trading.beat_jobs}


@pytest.mark.slow
def test_django_refuses_to_start_with_a_clashing_plugin():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.workflows_app.plugin_clash.settings",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert ("django.core.exceptions.ImproperlyConfigured: step type 'transform' is declared by both "
            "'workflows_app' and 'plugin_clash'") in done.stderr, done.stderr[-3000:]
