from django.apps import AppConfig


class TradingAppConfig(AppConfig):
    name = "trading_app"
    label = "trading_app"
    verbose_name = "Trading"
    default_auto_field = "django.db.models.BigAutoField"
    # Loaded with every app's plugin by workflows_app at start (workflows_app.registry.load_plugins).
    plugin = "trading_app.plugin.PLUGIN"

    def ready(self) -> None:
        from trading_app import conf, operations  # noqa: F401 - operations: trading's entries in the catalogue

        conf.log_mode()
