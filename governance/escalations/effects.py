"""What an escalation's change tells the rest of the system, in the transaction of the change:
`governance.escalation.*` events on the bus, notifications (sent after commit by a task) and the
audit row."""
from governance.audit import audit_record
from orchestration.events.publish import Draft, publish

from .selectors import escalation_summary


def _announce(escalation, instance, what, *, notify=True):
    payload = escalation_summary(escalation)
    publish([Draft(f"governance.escalation.{what}", payload, source_workflow=escalation.workflow,
                   source_instance_id=escalation.instance_id,
                   priority=getattr(instance, "priority", 5) if instance is not None else 5,
                   correlation_id=getattr(instance, "correlation_id", "") if instance is not None else "")])
    if notify:
        from governance.notifications.services import notifications_queue

        notifications_queue(escalation=escalation, event=what)


def opened(escalation, instance, *, actor=None, notify=True):
    """`notify=False` for one decided by policy at once: nobody needs to act."""
    _announce(escalation, instance, "created", notify=notify)
    audit_record(actor=actor, verb="escalation.create", target_type="escalation", target_id=escalation.id,
                 details={"level": escalation.level, "type": escalation.type, "workflow": escalation.workflow,
                          "instance": str(escalation.instance_id) if escalation.instance_id else None,
                          "step": escalation.step_id or None})


def resolved(escalation, instance, *, actor, comment="", audited=False, notify=True):
    """`audited`: the decision that resolved it has its audit row already."""
    _announce(escalation, instance, "resolved", notify=notify)
    if audited:
        return
    audit_record(actor=actor, verb="escalation.resolve", target_type="escalation", target_id=escalation.id,
                 details={"resolution": escalation.resolution, "comment": comment,
                          "instance": str(escalation.instance_id) if escalation.instance_id else None,
                          "step": escalation.step_id or None})


def expired(escalation, instance, *, reason):
    _announce(escalation, instance, "expired")
    audit_record(actor=None, verb="escalation.expire", target_type="escalation", target_id=escalation.id,
                 details={"reason": reason})
