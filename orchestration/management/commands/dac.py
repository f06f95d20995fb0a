"""`manage.py dac <verb>`: the operator's command line (DESIGN §8). Thin: it calls services."""
import json
import sys
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from governance.audit import audit_verify
from orchestration import engine, selectors
from registry import services as registry
from registry.spec import SpecInvalid

POLL_SECONDS = 0.2


def _json(data):
    return json.dumps(data, indent=2, default=str)


def _actor(name):
    """`--as USER`: the Django user if one exists, else the name itself (recorded in the audit)."""
    if not name:
        return "cli"
    return get_user_model().objects.filter(username=name).first() or name


class Command(BaseCommand):
    help = "Operate the DAC: validate, apply, run, status, approve, pause, resume, terminate, retry, audit."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        p = verbs.add_parser("validate", help="validate workflow or blueprint files")
        p.add_argument("files", nargs="+", metavar="FILE")
        p.add_argument("--json", action="store_true")
        p = verbs.add_parser("apply", help="register a workflow or blueprint file")
        p.add_argument("file", metavar="FILE")
        p.add_argument("--json", action="store_true")
        p = verbs.add_parser("run", help="start an instance")
        p.add_argument("workflow", metavar="WORKFLOW")
        p.add_argument("--context", default="{}", help="instance input as a JSON object")
        p.add_argument("--wait", action="store_true", help="wait for the end and print the result")
        p.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
        p.add_argument("--as", dest="as_user", default=None)
        p = verbs.add_parser("status", help="show an instance, or list recent ones")
        p.add_argument("id", nargs="?", metavar="ID")
        p.add_argument("--json", action="store_true")
        p.add_argument("--limit", type=int, default=20)
        p = verbs.add_parser("approve", help="approve (or --reject) a step waiting for approval")
        p.add_argument("id", metavar="ID")
        p.add_argument("--step", default=None)
        p.add_argument("--reject", action="store_true")
        p.add_argument("--comment", default="")
        p.add_argument("--as", dest="as_user", default=None)
        for verb in ("pause", "resume", "terminate", "retry"):
            p = verbs.add_parser(verb, help=f"{verb} an instance")
            p.add_argument("id", metavar="ID")
            p.add_argument("--as", dest="as_user", default=None)
            p.add_argument("--json", action="store_true")
        p = verbs.add_parser("audit", help="audit log tools")
        p.add_argument("action", choices=["verify"])

    def handle(self, *args, verb, **options):
        try:
            return getattr(self, f"do_{verb}")(**options)
        except engine.EngineError as exc:
            raise CommandError(exc.message) from exc

    def out(self, text):
        self.stdout.write(text)

    # --- registry ---------------------------------------------------------------------------
    def do_validate(self, files, json, **_):
        errors, warnings = [], []
        for path in files:
            try:
                compiled = registry.compile_path(path)
                warnings += compiled.warnings
            except SpecInvalid as exc:
                errors += exc.errors
                warnings += exc.warnings
        if json:
            self.out(_json({"valid": not errors, "errors": [e.as_dict() for e in errors],
                            "warnings": [w.as_dict() for w in warnings]}))
        else:
            for w in warnings:
                self.stderr.write(f"warning: {w}")
            if not errors:
                self.out(f"valid: {', '.join(files)}")
        if errors:
            if not json:
                for e in errors:
                    self.stderr.write(f"error: {e}")
            sys.exit(1)

    def do_apply(self, file, json, **_):
        try:
            compiled = registry.compile_path(file)
        except SpecInvalid as exc:
            for e in exc.errors:
                self.stderr.write(f"error: {e}")
            raise CommandError(f"{file}: {len(exc.errors)} error(s); nothing was registered") from exc
        report = registry.definitions_apply(compiled=compiled, actor="cli")
        if json:
            self.out(_json(report.as_dict()))
            return
        for w in report.warnings:
            self.stderr.write(f"warning: {w}")
        for agent in report.agents:
            self.out(f"agent {agent['name']}: {'updated' if agent['changed'] else 'unchanged'}")
        for wf in report.workflows:
            state = f"registered v{wf['version']}" if wf["changed"] else f"unchanged (v{wf['version']})"
            self.out(f"workflow {wf['id']}: {state}")

    # --- instances --------------------------------------------------------------------------
    def do_run(self, workflow, context, wait, timeout, as_user, **_):
        try:
            context = json.loads(context)
        except ValueError as exc:
            raise CommandError(f"--context is not valid JSON: {exc}") from exc
        instance = engine.instance_start(workflow=workflow, context=context, actor=_actor(as_user))
        if not wait:
            self.out(_json(selectors.instance_summary(instance)))
            return
        deadline = time.monotonic() + timeout if timeout else None
        while not selectors.instance_is_finished(instance.id):
            if deadline and time.monotonic() > deadline:
                self.out(_json(selectors.instance_summary(selectors.instance_get(instance.id))))
                self.stderr.write(f"timed out after {timeout}s waiting for instance {instance.id}")
                sys.exit(2)
            time.sleep(POLL_SECONDS)
        instance = selectors.instance_get(instance.id)
        self.out(_json(selectors.instance_summary(instance)))
        if instance.status != "completed":
            sys.exit(1)

    def do_status(self, id, json, limit, **_):
        if id is None:
            instances = list(selectors.instance_list()[:limit])
            if json:
                self.out(_json([selectors.instance_as_dict(i, with_steps=False) for i in instances]))
                return
            for i in instances:
                self.out(f"{i.id}  {i.definition.key:<30} {i.status:<10} {i.created_at:%Y-%m-%d %H:%M:%S}")
            return
        instance = selectors.instance_get(id)
        if instance is None:
            raise CommandError(f"instance '{id}' not found")
        data = selectors.instance_as_dict(instance)
        if json:
            self.out(_json(data))
            return
        self.out(f"{data['id']}  {data['workflow']} v{data['version']}  {data['status']}")
        if data["error"]:
            self.out(f"error: {data['error'].get('message', data['error'])}")
        for s in data["steps"]:
            self.out(f"  {s['step_id']:<30} {s['status']:<17} attempts={s['attempts']}")
        if data["result"] is not None:
            self.out(f"result: {_json(data['result'])}")

    def do_approve(self, id, step, reject, comment, as_user, **_):
        if step is None:
            step = self._only_waiting_step(id)
        run = engine.step_decide(instance_id=id, step_id=step, approve=not reject, actor=_actor(as_user),
                                 comment=comment)
        self.out(f"{'rejected' if reject else 'approved'} {id} step {run.step_id}")

    def _only_waiting_step(self, instance_id):
        instance = selectors.instance_get(instance_id)
        if instance is None:
            raise CommandError(f"'{instance_id}' is not an instance; escalation ids are not supported yet, "
                               "give an instance id and --step")
        waiting = [s["step_id"] for s in selectors.instance_as_dict(instance)["steps"]
                   if s["status"] == "waiting_approval"]
        if len(waiting) != 1:
            raise CommandError(f"give --step: steps waiting for approval: {', '.join(waiting) or 'none'}")
        return waiting[0]

    def _lifecycle(self, service, id, as_user, json):
        instance = service(instance_id=id, actor=_actor(as_user))
        self.out(_json(selectors.instance_summary(instance)) if json else f"{instance.id}: {instance.status}")

    def do_pause(self, id, as_user, json, **_):
        self._lifecycle(engine.instance_pause, id, as_user, json)

    def do_resume(self, id, as_user, json, **_):
        self._lifecycle(engine.instance_resume, id, as_user, json)

    def do_terminate(self, id, as_user, json, **_):
        self._lifecycle(engine.instance_terminate, id, as_user, json)

    def do_retry(self, id, as_user, json, **_):
        self._lifecycle(engine.instance_retry, id, as_user, json)

    def do_audit(self, action, **_):
        problems = audit_verify()
        if problems:
            for p in problems:
                self.stderr.write(p)
            raise CommandError(f"audit log is NOT intact: {len(problems)} problem(s)")
        self.out("audit log intact")
