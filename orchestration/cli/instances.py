"""`dac run | status | pause | resume | terminate | retry`."""
import sys
import time

from django.core.management.base import CommandError

from orchestration import selectors

from .common import actor, as_json, json_object, priority_option
from .progress import Progress, seconds

POLL_SECONDS = 0.2
STATUS_HEADER = f"{'ID':<36}  {'WORKFLOW':<30} {'STATUS':<10} {'PRIORITY':<8} {'CREATED (UTC)':<19}  PARENT"
# The verb -> the engine service `instance_<verb>` (the engine is imported by the verb that uses it).
LIFECYCLE = ("pause", "resume", "terminate", "retry")


def add_parsers(verbs):
    p = verbs.add_parser("run", help="start an instance")
    p.add_argument("workflow", metavar="WORKFLOW")
    p.add_argument("--context", default="{}", help="instance input as a JSON object")
    p.add_argument("--priority", default=None, help="low|normal|high|critical or 0..9")
    p.add_argument("--idempotency-key", default=None,
                   help="a key seen in the last 24 h returns the instance it started and starts nothing")
    p.add_argument("--wait", action="store_true", help="wait for the end and print the result")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    p.add_argument("--as", dest="as_user", default=None)
    p = verbs.add_parser("status", help="show an instance, or list recent ones")
    p.add_argument("id", nargs="?", metavar="ID")
    p.add_argument("--workflow", default=None)
    p.add_argument("--status", dest="status_filter", default=None)
    p.add_argument("--parent", default=None)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    for verb in LIFECYCLE:
        p = verbs.add_parser(verb, help=f"{verb} an instance")
        p.add_argument("id", metavar="ID")
        p.add_argument("--as", dest="as_user", default=None)
        p.add_argument("--json", action="store_true")


def do_run(cmd, workflow, context, priority, wait, timeout, as_user, idempotency_key, **_):
    from orchestration import engine

    context = json_object(context, "--context")
    instance = engine.instance_start(workflow=workflow, context=context, actor=actor(as_user),
                                     priority=priority_option(priority), idempotency_key=idempotency_key)
    if not wait:
        cmd.out(as_json(selectors.instance_summary(instance, with_result=False)))
        return
    deadline = time.monotonic() + timeout if timeout else None
    with Progress(cmd.stderr) as progress:  # a live line on a terminal's stderr only
        while not selectors.instance_is_finished(instance.id):
            if deadline and time.monotonic() > deadline:
                progress.clear()
                cmd.out(as_json(selectors.instance_summary(selectors.instance_get(instance.id))))
                cmd.stderr.write(f"timed out after {timeout}s waiting for instance {instance.id}")
                sys.exit(2)
            if progress.enabled:
                progress.update(run_progress_line(instance, selectors.instance_progress(instance.id),
                                                  progress.elapsed()))
            time.sleep(POLL_SECONDS)
    instance = selectors.instance_get(instance.id)
    cmd.out(as_json(selectors.instance_summary(instance)))
    if instance.status != "completed":
        sys.exit(1)


def run_progress_line(instance, state, elapsed):
    """`cli-flow 0c1f2a3b: running, steps 3/7, 12.3s` (state: selectors.instance_progress)."""
    status, done, steps = state or ("?", 0, 0)
    return f"{instance.definition.key} {str(instance.id)[:8]}: {status}, steps {done}/{steps}, {seconds(elapsed)}"


def do_status(cmd, id, json, limit, workflow, status_filter, parent, **_):
    if id is None:
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        instances = list(selectors.instance_list(workflow=workflow, status=status_filter, parent=parent)[:limit])
        if json:
            cmd.out(as_json({"instances": [selectors.instance_as_dict(i, with_steps=False) for i in instances]}))
            return
        cmd.out(STATUS_HEADER)
        for i in instances:
            cmd.out(f"{i.id}  {i.definition.key:<30} {i.status:<10} {i.priority:<8} "
                    f"{i.created_at:%Y-%m-%d %H:%M:%S}  {i.parent_id or '-'}")
        return
    instance = selectors.instance_get(id)
    if instance is None:
        raise CommandError(f"instance '{id}' not found")
    data = selectors.instance_as_dict(instance)
    if json:
        cmd.out(as_json(data))
        return
    cmd.out(f"{data['id']}  {data['workflow']} v{data['version']}  {data['status']}  priority {data['priority']}")
    cmd.out(f"trigger: {data['trigger'].get('type')}  correlation: {data['correlation_id']}"
            + (f"  parent: {data['parent']}" if data["parent"] else ""))
    if data["error"]:
        cmd.out(f"error: {data['error'].get('message', data['error'])}")
    if data["queue"]:
        cmd.out(f"queued: held by {selectors.queue_description(data['queue'])}")
    for s in data["steps"]:
        cmd.out(f"  {s['step_id']:<30} {s['status']:<17} attempts={s['attempts']}")
    for child in data["children"]:
        cmd.out(f"  child {child}")
    if data["result"] is not None:
        cmd.out(f"result: {as_json(data['result'])}")


def do_lifecycle(cmd, verb, id, as_user, json, **_):
    from orchestration import engine

    instance = getattr(engine, f"instance_{verb}")(instance_id=id, actor=actor(as_user))
    cmd.out(as_json(selectors.instance_summary(instance)) if json else f"{instance.id}: {instance.status}")
