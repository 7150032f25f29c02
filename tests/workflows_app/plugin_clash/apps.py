from django.apps import AppConfig


class PluginClashConfig(AppConfig):
    name = "tests.workflows_app.plugin_clash"
    label = "plugin_clash"
    plugin = "tests.workflows_app.plugin_clash.plugin.PLUGIN"
