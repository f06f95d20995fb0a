"""Who may decide an escalation (DESIGN §7.1), checked by the services for every caller.

Actors are Django users, the local CLI operator `cli` (a shell on the server is already full
control, so it holds every permission), or the system (None, or a `policy:...` name).
"""
from django.conf import settings
from django.contrib.auth import get_user_model

from orchestration.engine.errors import EngineError

CLI_OPERATOR = "cli"
DECIDE_ANY = "governance.decide_any_escalation"


class Refused(EngineError):
    """The actor may not do this (API 403, CLI exit 1); the message says why in a sentence."""

    code = "forbidden"
    http_status = 403


def is_user(actor):
    return isinstance(actor, get_user_model())


def is_operator(actor):
    """The CLI operator or the system: not a person to check."""
    return not is_user(actor)


def self_approval_allowed():
    return settings.DAC_ALLOW_SELF_APPROVAL


def may_decide_any(user):
    return user.is_active and user.has_perm(DECIDE_ANY)


def user_groups(user):
    cached = getattr(user, "_dac_group_names", None)
    if cached is None:
        cached = user._dac_group_names = frozenset(user.groups.values_list("name", flat=True))
    return cached


def check_may_decide(actor, escalation):
    """Raise Refused unless `actor` may decide `escalation` now."""
    if is_operator(actor):
        return
    if not actor.is_active:
        raise Refused(f"user '{actor.get_username()}' is inactive")
    starter = escalation.instance.created_by_id if escalation.instance_id else None
    if starter is not None and starter == actor.pk and not self_approval_allowed():
        raise Refused(f"user '{actor.get_username()}' started this instance and may not decide its escalations "
                      "(four-eyes; DAC_ALLOW_SELF_APPROVAL is off)")
    if may_decide_any(actor) or escalation.assignee_id == actor.pk:
        return
    if user_groups(actor) & set(escalation.approvers):
        return
    raise Refused(f"user '{actor.get_username()}' is in none of the approver groups "
                  f"({', '.join(escalation.approvers) or 'none'}), is not its assignee and lacks {DECIDE_ANY}")


def check_may_assign(actor, escalation):
    """Reassigning is for those who may decide it (or decide any)."""
    check_may_decide(actor, escalation)
