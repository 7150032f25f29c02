"""``python manage.py workflow_status WORKFLOW | --execution ID [--metrics] [--json]``."""
from __future__ import annotations

from django.core.management.base import CommandError

from workflows_app.management.commands._base import OperationCommand


class Command(OperationCommand):
    help = "Status of a workflow (its triggers, next runs) or of an execution (its steps)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("workflow", nargs="?", help="The workflow's uuid or name.")
        parser.add_argument("--execution", help="An execution's uuid instead of a workflow.")
        parser.add_argument("--metrics", action="store_true", help="include_metrics=true.")

    def handle(self, *args, **options):
        if not options["workflow"] and not options["execution"]:
            raise CommandError("give a workflow (uuid or name) or --execution ID")
        if options["execution"]:
            reply = self.call("workflow_status", execution_id=options["execution"], include_metrics=options["metrics"])
            self.emit(reply, self.human_execution)
        else:
            reply = self.call("workflow_status", workflow_id=options["workflow"], include_metrics=options["metrics"])
            self.emit(reply, self.human_workflow)

    def human_workflow(self, r: dict) -> None:
        out = self.stdout.write
        out(f"{r['name']} ({r['workflow_id']}) v{r['version']}: {r['status']}, priority {r['priority']}, "
            f"queue {r['queue']}")
        for step in r["steps"]:
            out(f"  step {step['name']} [{step.get('type') or step['name']}] {step.get('params') or ''}")
        for trig in r["triggers"]:
            out(self.trigger_line(trig))
        counts = r.get("executions", {})
        out(f"  executions: {counts.get('total', 0)} {counts.get('by_status', {})}")
        if "metrics" in r:
            m = r["metrics"]
            out(f"  last {m.get('window')}: {m.get('executions')} executions, success rate {m.get('success_rate')}, "
                f"p50 {m.get('p50')}s, p99 {m.get('p99')}s")

    @staticmethod
    def trigger_line(trig: dict) -> str:
        """One trigger: its symbol, what it last measured against its threshold, cooldown, firings."""
        name = trig.get("type", "?") + (f" {trig['symbol']}" if trig.get("symbol") else "")
        parts = [] if trig.get("enabled", True) else ["disabled"]
        state = trig.get("state") or {}
        if state.get("error"):
            parts.append(state["error"])
        elif state:
            if state.get("value") is not None:
                verdict = "holds" if state.get("holds") else "below"
                parts.append(f"measured {state['value']:g} vs threshold {state['threshold']:g} ({verdict})")
            elif state.get("holds") is not None:
                parts.append("holds" if state["holds"] else "does not hold")
            parts.append(f"last evaluated {state.get('last_evaluated_at') or 'never'}")
            if state.get("cooldown_remaining"):
                parts.append(f"cooldown {state['cooldown_remaining']:.0f}s left")
        parts.append(f"last fired {trig.get('last_fired_at') or '-'}")
        if trig.get("type") == "schedule" or trig.get("next_run_at"):
            parts.append(f"next run {trig.get('next_run_at') or '-'}")
        return f"  trigger {name}: " + ", ".join(parts)

    def human_execution(self, r: dict) -> None:
        out = self.stdout.write
        out(f"execution {r['execution_id']} of {r['workflow_name']} v{r['version']}: {r['status']} "
            f"({r['progress'] * 100:.0f}%), current step {r['current_step'] or '-'}")
        if r.get("execution_url"):
            out(f"  view: {r['execution_url']}")
        for run in r.get("step_runs", []):
            timing = f" {run['duration']:.3f}s" if run["duration"] is not None else ""
            out(f"  {run['step']} #{run['attempt']}: {run['status']}{timing}"
                + (f" ({run['error_class']}: {run['error']})" if run.get("error") else ""))
        if r.get("pending_steps"):
            out(f"  pending: {', '.join(r['pending_steps'])}")
        if r.get("error"):
            out(f"  error: {r['error']}")
