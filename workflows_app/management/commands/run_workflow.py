"""``python manage.py run_workflow WORKFLOW [--input JSON] [--wait | --sync] [--json]``."""
from __future__ import annotations

import time

from workflows_app.management.commands._base import OperationCommand, parse_json_option


class Command(OperationCommand):
    help = "Execute a workflow (by uuid or name). --wait follows it step by step on stderr."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("workflow", help="The workflow's uuid or name.")
        parser.add_argument("--input", dest="input_data", help="input_data as JSON, or @file.json.")
        parser.add_argument("--trigger", default="manual", help="Trigger name recorded on the execution.")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true",
                          help="Start it, print step progress to stderr until it finishes; print its final status.")
        mode.add_argument("--sync", action="store_true", help="workflow_execute with async=false (bounded wait).")
        parser.add_argument("--timeout", type=float, default=300.0, help="Seconds --wait/--sync wait (default 300).")
        parser.add_argument("--interval", type=float, default=0.5, help="Seconds between --wait polls.")

    def handle(self, *args, **options):
        input_data = parse_json_option(options["input_data"], "--input")
        base = {"workflow_id": options["workflow"], "input_data": input_data, "trigger": options["trigger"]}
        if options["sync"]:
            reply = self.call("workflow_execute", **base, timeout=int(min(max(options["timeout"], 1), 600)),
                              **{"async": False})
            self.emit(reply, self.human_final)
            if reply["status"] != "succeeded":
                raise SystemExit(1)
            return
        reply = self.call("workflow_execute", **base, **{"async": True})
        if not options["wait"]:
            self.emit(reply, lambda r: self.stdout.write(
                f"execution {r['execution_id']} of {r['workflow_name']} v{r['version']}: {r['status']}"))
            return
        self.progress(f"execution {reply['execution_id']} of {reply['workflow_name']} v{reply['version']} started")
        status = self.follow(reply["execution_id"], options["timeout"], options["interval"])
        self.emit(status, self.human_final)
        if status["status"] != "succeeded":
            raise SystemExit(1)

    def follow(self, execution_id: str, timeout: float, interval: float) -> dict:
        """Poll workflow_status; print each step run as it starts and ends."""
        seen: dict[tuple, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            status = self.call("workflow_status", execution_id=execution_id)
            total = len(status["completed_steps"]) + len(status["pending_steps"])
            for run in status.get("step_runs", []):
                key = (run["step"], run["attempt"], run["compensation"])
                if seen.get(key) != run["status"]:
                    seen[key] = run["status"]
                    timing = f" in {run['duration']:.3f}s" if run["duration"] is not None else ""
                    label = "compensation " if run["compensation"] else ""
                    error = f" ({run['error_class']}: {run['error']})" if run.get("error") else ""
                    self.progress(f"[{len(status['completed_steps'])}/{total}] {label}{run['step']} "
                                  f"attempt {run['attempt']}: {run['status']}{timing}{error}")
            if status["status"] in ("succeeded", "failed", "compensated", "cancelled"):
                return status
            if time.monotonic() > deadline:
                self.progress(f"still {status['status']} after {timeout:g}s; it keeps running")
                return status
            time.sleep(interval)

    def human_final(self, r: dict) -> None:
        duration = f" in {r['duration']:.3f}s" if r.get("duration") is not None else ""
        self.stdout.write(f"execution {r['execution_id']} of {r['workflow_name']}: {r['status']}{duration}")
        steps = r.get("steps") or {}
        for name, step in steps.items():
            timing = f" {step['duration']:.3f}s" if step.get("duration") is not None else ""
            self.stdout.write(f"  {name}: {step['status']}{timing}")
        if r.get("error"):
            self.stdout.write(f"  error: {r['error']}")
