from django.apps import AppConfig


class TradingAppConfig(AppConfig):
    name = "trading_app"
    label = "trading_app"
    verbose_name = "Trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from trading_app import adaptive, conf, dashboard, demo, registration, triggers

        registration.register_all()
        triggers.register()  # market and news trigger types
        adaptive.register()  # the specification's adaptive example
        dashboard.register()  # P&L and positions panel
        demo.register()  # demo step types (the demo itself runs only with NEXUS_DEMO on)
        conf.log_mode()
