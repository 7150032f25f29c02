from django.apps import AppConfig, apps


class WorkflowsAppConfig(AppConfig):
    name = "workflows_app"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"
    plugin = "workflows_app.plugin.PLUGIN"

    def ready(self) -> None:
        # Imported here: this module loads before the models, the modules below need them.
        from workflows_app import beat, signals  # noqa: F401 - signals: worker hooks connect on import
        from workflows_app.registry import load_plugins, registry
        from workflows_app.services import triggers
        from workflows_app.services.workflows import workflow_changed

        # Every installed app's plugin, this one's included (all models are loaded by now); a name
        # two plugins declare stops the start here.
        load_plugins(apps.get_app_configs())
        beat.install_jobs(registry.beat_jobs)
        workflow_changed.connect(triggers.on_workflow_changed, dispatch_uid="nexus-trigger-sync")
