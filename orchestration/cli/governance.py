"""`dac escalations` and `dac approve` (DESIGN §8): thin, over the governance services."""
from django.core.management.base import CommandError

from dacproject.ids import as_uuid
from governance.escalations import selectors
from governance.escalations.models import Escalation
from governance.escalations.states import EscalationLevel, EscalationStatus

from .common import actor, as_json


def add_parsers(verbs):
    p = verbs.add_parser("escalations", help="escalations, newest first (the approval inbox)")
    p.add_argument("--status", dest="status_filter", default=None, choices=EscalationStatus.values)
    p.add_argument("--level", default=None, choices=EscalationLevel.values)
    p.add_argument("--type", dest="type_filter", default=None)
    p.add_argument("--workflow", default=None)
    p.add_argument("--instance", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = verbs.add_parser("approve", help="decide an escalation (or, with --step, an instance's parked step)")
    p.add_argument("id", metavar="ID", help="an escalation id, or an instance id with --step")
    p.add_argument("--step", default=None)
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--reject", action="store_true")
    choice.add_argument("--option", default=None, help="one of the escalation's options")
    choice.add_argument("--acknowledge", action="store_true", help="acknowledge (a notice is then resolved)")
    p.add_argument("--comment", default="")
    p.add_argument("--as", dest="as_user", default=None)
    p.add_argument("--json", action="store_true")


def do_escalations(cmd, status_filter, level, type_filter, workflow, instance, limit, json, **_):
    if limit < 1:
        raise CommandError("--limit must be at least 1")
    if instance and as_uuid(instance) is None:
        raise CommandError(f"--instance '{instance}' is not an instance id")
    found = list(selectors.escalations_filtered(status=status_filter, level=level, type=type_filter,
                                                workflow=workflow, instance=instance)[:limit])
    if json:
        cmd.out(as_json({"escalations": [selectors.escalation_as_dict(e) for e in found]}))
        return
    cmd.out(f"{'ID':<36}  {'LEVEL':<12} {'STATUS':<12} {'WORKFLOW':<24} {'STEP':<20} DEADLINE")
    for e in found:
        deadline = f"{e.deadline:%Y-%m-%d %H:%M:%S}" if e.deadline else "-"
        cmd.out(f"{e.id}  {e.level:<12} {e.status:<12} {e.workflow:<24} {e.step_id or '-':<20} {deadline}")


def do_approve(cmd, id, step, reject, option, acknowledge, comment, as_user, json, **_):
    from governance.escalations import services  # imports the engine

    decision = "reject" if reject else "acknowledge" if acknowledge else option or "approve"
    who = actor(as_user)
    if step is not None:
        escalation = services.escalation_for_step(instance_id=id, step_id=step)
    else:
        key = as_uuid(id)
        escalation = (Escalation.objects.filter(id=key).first() if key else None) or _only_open_gate(id)
    escalation = services.escalation_decide(escalation_id=escalation.id, decision=decision, comment=comment,
                                            actor=who)
    escalation = selectors.escalations_query().get(id=escalation.id)
    if json:
        cmd.out(as_json(selectors.escalation_as_dict(escalation)))
        return
    where = f"{escalation.instance_id} step {escalation.step_id}" if escalation.step_id else str(escalation.instance_id)
    if escalation.status == EscalationStatus.RESOLVED:
        cmd.out(f"escalation {escalation.id} resolved: {escalation.resolution} ({where})")
    else:
        votes = sum(1 for d in escalation.decisions.all() if d.decision not in ("reject", "acknowledge"))
        cmd.out(f"escalation {escalation.id}: {decision} recorded, {escalation.status} "
                f"({votes}/{escalation.min_approvals} approvals; {where})")


def _only_open_gate(instance_id):
    """An instance id without --step: its one open gate, if it has exactly one."""
    if as_uuid(instance_id) is None:
        raise CommandError(f"'{instance_id}' is neither an escalation nor an instance id")
    open_gates = list(Escalation.objects.filter(instance_id=as_uuid(instance_id),
                                                status__in=["pending", "acknowledged"]).exclude(gate="none"))
    if len(open_gates) == 1:
        return open_gates[0]
    if not open_gates and not selectors.instance_exists(instance_id):
        raise CommandError(f"'{instance_id}' is neither an escalation nor an instance id")
    steps = ", ".join(e.step_id or "(instance)" for e in open_gates) or "none"
    raise CommandError(f"give --step or an escalation id: open approvals of instance {instance_id}: {steps}")
