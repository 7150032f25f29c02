from django.apps import AppConfig

from trading_app import conf


class TradingAppConfig(AppConfig):
    name = "trading_app"
    label = "trading_app"
    verbose_name = "Trading"
    default_auto_field = "django.db.models.BigAutoField"
    # Loaded with every app's plugin by workflows_app at start (workflows_app.registry.load_plugins).
    plugin = "trading_app.plugin.PLUGIN"

    def ready(self) -> None:
        # trading's entries in the operation catalogue: imported once the models are loaded (they use them)
        from trading_app import operations  # noqa: F401

        conf.log_mode()
