from django.apps import AppConfig


class TradingAppConfig(AppConfig):
    name = "trading_app"
    label = "trading_app"
    verbose_name = "Trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from trading_app import conf, registration

        registration.register_all()
        from trading_app import triggers; triggers.register()  # noqa: E702,I001 - market/news triggers
        conf.log_mode()
