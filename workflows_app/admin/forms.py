"""The workflow editor's forms: the workflow itself and its Step and Trigger rows (inlines)."""
from __future__ import annotations

from django import forms

from workflows_app.admin.widgets import ParamsWidget
from workflows_app.models import Step, Trigger
from workflows_app.registry import registry


class StepForm(forms.ModelForm):
    class Meta:
        model = Step
        fields = ["position", "name", "type", "params", "condition", "actions", "group", "retry", "timeout",
                  "compensate", "agent", "subprocess_workflow"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["position"].required = False
        self.fields["position"].help_text = "Order (blank: after the others)."
        # A choice over the registered step types, but the field stays a CharField: the engine's
        # validator reports an unknown type on this field like any other definition error.
        self.fields["type"].widget = forms.Select(choices=_step_type_choices(self.instance.type))
        self.fields["params"].widget = ParamsWidget("step")
        self.fields["params"].help_text = "Drawn from the step type's params schema; the JSON is what is saved."


class TriggerForm(forms.ModelForm):
    class Meta:
        model = Trigger
        fields = ["position", "type", "params"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["position"].required = False
        self.fields["type"].widget = forms.Select(choices=_trigger_type_choices(self.instance.type))
        self.fields["params"].widget = ParamsWidget("trigger")
        self.fields["params"].help_text = ('The trigger\'s settings, drawn from its type\'s schema, e.g. '
                                           '{"cron": "0 9 * * 1-5", "timezone": "UTC"}.')


def _step_type_choices(current: str) -> list[tuple[str, str]]:
    """Computed per form: the registry is filled in the apps' ready(). A row's current type stays
    selectable even if no app registers it any more (saving then names the problem)."""
    names = sorted(registry.step_types)
    kept = [(current, f"{current} (not registered)")] if current and current not in names else []
    return [("", "--- (the step's name)"), *kept, *((n, n) for n in names)]


def _trigger_type_choices(current: str) -> list[tuple[str, str]]:
    names = sorted(registry.trigger_types)
    kept = [(current, f"{current} (not registered)")] if current and current not in names else []
    return [("", "---"), *kept, *((n, n) for n in names)]


class WorkflowForm(forms.ModelForm):
    # The version the editor loaded: a save over someone else's newer version is refused, not merged.
    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.instance._state.adding:
            self.fields["loaded_version"].initial = self.instance.version
