"""Token quotas per workflow type (DESIGN §6.6): blueprint `coordination.resources.api_tokens`
shares DAC_TOKEN_QUOTA_PER_HOUR out between types. A type whose tokens in the last rolling hour
reach its share gets its instances' next steps held: the instance is `queued` with
`queued_reason = {limit: "api_tokens", type, share, used}` while its running steps finish, and a
`review` notice is raised once per instance. `quotas_release` (beat) lets them go on as the hour
moves on and old ledger rows leave it.

A deployment without a quota, or a type without a share, pays nothing: no Redis read, no query.
"""
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from orchestration.models import StepRun, WorkflowInstance
from orchestration.states import InstanceStatus as I
from orchestration.states import StepStatus as S

from .config import resource_config
from .selectors import type_tokens_last_hour

QUOTA_LIMIT = "api_tokens"  # queued_reason["limit"], and the notice's rule (once per instance)
RELEASE_BATCH = 200
_CHECKED = "_dac_quota"  # on the locked instance: this transaction's answer (the hold, or None)


def quota_share(workflow_type):
    """Tokens per hour the type may spend, or None when no quota applies to it."""
    if not settings.DAC_TOKEN_QUOTA_PER_HOUR or not workflow_type:
        return None
    return resource_config().token_shares.get(workflow_type)


def quota_hold(instance, plan):
    """Whether the type's spent share holds the instance's next steps; when it does, the reason is
    recorded on the instance (and the first hold raises the notice). Asked once per transaction."""
    if _CHECKED not in instance.__dict__:
        instance.__dict__[_CHECKED] = _spent(plan.spec.get("type"))
    reason = instance.__dict__[_CHECKED]
    if reason is None:
        return False
    if not quota_held(instance):
        _notify(instance, plan, reason)
    instance.queued_reason = reason
    return True


def quota_held(instance):
    """Whether the instance's queued_reason is its type's token quota."""
    return (instance.queued_reason or {}).get("limit") == QUOTA_LIMIT


def quota_holds(instance):
    """After advancing: whether the instance stays (or becomes) queued for its quota. It does
    until an advance finds its type under its share again: one that did not look (no step was
    about to start) leaves the hold as it was."""
    return quota_held(instance) and instance.__dict__.get(_CHECKED, instance.queued_reason) is not None


def _spent(workflow_type):
    share = quota_share(workflow_type)
    if share is None:
        return None
    used = type_tokens_last_hour(workflow_type)
    return {"limit": QUOTA_LIMIT, "type": workflow_type, "share": share, "used": used} if used >= share else None


def _notify(instance, plan, reason):
    from governance.escalations.gates import instance_escalation_open
    from governance.escalations.models import Escalation
    from governance.escalations.policy import default_approvers
    from orchestration.engine.approvals import Governance

    if Escalation.objects.filter(instance_id=instance.id, rule=QUOTA_LIMIT).exists():
        return
    workflow = plan.spec["id"]
    instance_escalation_open(
        instance, workflow, rule=QUOTA_LIMIT, level="review", kind="token_quota",
        title=f"{workflow}: {reason['type']} used its token share ({reason['used']} of {reason['share']} an hour)",
        description="Its next steps are queued until the rolling hour frees tokens; steps already running finish.",
        context=reason, approvers=default_approvers(Governance.of(instance).policy),
    )


def quotas_release():
    """Beat: let quota-held instances of types now under their share go on. Returns how many."""
    held = list(WorkflowInstance.objects.filter(status=I.QUEUED, queued_reason__limit=QUOTA_LIMIT)
                .order_by("-priority", "created_at").values_list("id", "queued_reason__type")[:RELEASE_BATCH])
    free = {}
    released = 0
    for instance_id, workflow_type in held:
        if workflow_type not in free:
            free[workflow_type] = _spent(workflow_type) is None
        if free[workflow_type] and _release(instance_id):
            released += 1
    return released


@transaction.atomic
def _release(instance_id):
    """Under the instance lock: queued for the quota still, and its type under its share: its ready
    steps go out again (their messages were refused while it was queued) and it advances."""
    from orchestration.engine.advance import advance, dispatch_for
    from orchestration.engine.effects import Effects
    from orchestration.engine.plan import plan_for_version_id
    from orchestration.engine.steps import lock_instance

    instance = lock_instance(instance_id)
    if instance.status != I.QUEUED or not quota_held(instance):
        return False
    plan = plan_for_version_id(instance.version_id)
    if quota_hold(instance, plan):
        return False
    effects = Effects()
    # Like resume: ready steps and retries, and the ready items of a foreach or spawn foreach step.
    ready_items = Q(status__in=[S.RUNNING, S.WAITING_CHILD], item_count__isnull=False, items__status=S.READY)
    for run in StepRun.objects.filter(Q(status=S.READY) | ready_items, instance=instance).distinct():
        dispatch = dispatch_for(instance, plan, run)
        if dispatch.items is None or dispatch.items:
            effects.dispatches.append(dispatch)
    advance(instance, plan, effects)
    effects.send_on_commit()
    return True
