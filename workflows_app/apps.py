from django.apps import AppConfig


class WorkflowsAppConfig(AppConfig):
    name = "workflows_app"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Engine step types and signal handlers register themselves on import.
        from workflows_app import eventing, signals, steps, trigger_types  # noqa: F401
