"""Reads of escalations: the §7.1 shape, the inbox of a user, filters."""
from django.db.models import Case, IntegerField, Q, Value, When

from .models import Escalation
from .states import OPEN


def _iso(value):
    return value.isoformat() if value else None


def escalation_as_dict(escalation):
    """The DESIGN §7.1 shape (API, CLI --json, notification bodies)."""
    return {
        "id": str(escalation.id),
        "level": escalation.level,
        "type": escalation.type,
        "status": escalation.status,
        "title": escalation.title,
        "description": escalation.description,
        "workflow": escalation.workflow,
        "instance": str(escalation.instance_id) if escalation.instance_id else None,
        "step": escalation.step_id or None,
        "context": escalation.context,
        "options": escalation.options,
        "approvers": escalation.approvers,
        "min_approvals": escalation.min_approvals,
        "approvals": [{"user": d.user_name, "decision": d.decision, "comment": d.comment, "at": _iso(d.at),
                       "shown_sha256": d.shown_sha256}
                      for d in escalation.decisions.all()],
        "assignee": escalation.assignee.get_username() if escalation.assignee_id else None,
        "deadline": _iso(escalation.deadline),
        "timeout_action": escalation.timeout_action or None,
        "resolution": escalation.resolution or None,
        "resolved_by": escalation.resolved_by or None,
        "resolved_at": _iso(escalation.resolved_at),
        "created_at": _iso(escalation.created_at),
    }


def escalations_query():
    return Escalation.objects.select_related("assignee").prefetch_related("decisions")


def escalations_filtered(*, status=None, level=None, type=None, workflow=None, instance=None):
    """Escalations newest first, narrowed by any of the §8 filters."""
    query = escalations_query()
    for field, value in (("status", status), ("level", level), ("type", type), ("workflow", workflow),
                         ("instance_id", instance)):
        if value:
            query = query.filter(**{field: value})
    return query.order_by("-created_at")


INBOX_ORDER = ("open_first", "deadline", "created_at")


def with_open_first(query):
    return query.annotate(open_first=Case(When(status__in=OPEN, then=Value(0)), default=Value(1),
                                          output_field=IntegerField()))


def inbox_order(query):
    """Open ones first, then by deadline (soonest first, none last), then oldest first."""
    return with_open_first(query).order_by(*INBOX_ORDER)


def decidable_by(user, query=None):
    """Escalations `user` may decide: every one with governance.decide_any_escalation, else those
    naming one of the user's groups, or assigned to the user (never their own instances' unless
    self-approval is allowed; see `governance.escalations.permissions`)."""
    from .permissions import may_decide_any, self_approval_allowed

    query = escalations_query() if query is None else query
    if may_decide_any(user):
        visible = query
    else:
        groups = list(user.groups.values_list("name", flat=True))
        visible = query.filter(Q(assignee=user) | _names_any(groups))
    if not self_approval_allowed():
        visible = visible.exclude(instance__created_by=user)
    return visible


def _names_any(groups):
    """approvers (a JSON list) holds any of `groups`."""
    condition = Q(pk__in=[])
    for name in groups:
        condition |= Q(approvers__contains=[name])
    return condition


def escalation_summary(escalation):
    """The small shape carried by `governance.escalation.*` events."""
    return {"escalation": str(escalation.id), "level": escalation.level, "type": escalation.type,
            "status": escalation.status, "resolution": escalation.resolution or None,
            "workflow": escalation.workflow,
            "instance": str(escalation.instance_id) if escalation.instance_id else None,
            "step": escalation.step_id or None}


def instance_exists(instance_id):
    from orchestration.models import WorkflowInstance

    return WorkflowInstance.objects.filter(id=instance_id).exists()
