"""The reconciler's share of child workflows: parents still parked on a child that ended (its
notice was lost), and spawn foreach items whose start messages were lost."""
import logging

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from orchestration.engine.advance import dispatch_for
from orchestration.engine.effects import Effects
from orchestration.engine.plan import plan_for_version_id
from orchestration.models import StepRun, WorkflowInstance
from orchestration.states import INSTANCE_TERMINAL
from orchestration.states import InstanceStatus as I
from orchestration.states import StepStatus as S

from .services import child_ended

ACTIVE = (I.RUNNING, I.WAITING, I.PAUSED)
logger = logging.getLogger(__name__)


def spawning_reconcile(*, settle, limit=500):
    """`settle`: how long an ended child or a lost start is left alone before the reconciler acts."""
    cutoff = timezone.now() - settle
    parked_on_ended = (
        WorkflowInstance.objects.filter(status__in=INSTANCE_TERMINAL, finished_at__lt=cutoff,
                                        parent_step_run__status=S.WAITING_CHILD,
                                        parent_step_run__instance__status__in=ACTIVE)
        .filter(Q(parent_item_index__isnull=False) | Q(spawn_attempt=F("parent_step_run__attempts")))
        .values_list("id", flat=True)[:limit])
    resumed = sum(1 for child_id in list(parked_on_ended) if _resumed(child_id))
    return {"parents_resumed": resumed, "items_redispatched": _redispatch_items(cutoff, limit)}


def _resumed(child_id):
    """One parent at a time: a failure is logged and retried next pass, and does not stop the rest."""
    try:
        return child_ended(child_id=child_id)
    except Exception:  # noqa: BLE001 - the reconciler must go on with the other parents
        logger.exception("could not resume the parent of child %s; trying again next pass", child_id)
        return False


def _redispatch_items(cutoff, limit):
    runs = StepRun.objects.filter(status=S.WAITING_CHILD, item_count__isnull=False, ready_at__lt=cutoff,
                                  instance__status__in=(I.RUNNING, I.WAITING), instance__failing=False,
                                  items__status=S.READY).distinct().values_list("id", "ready_at")[:limit]
    sent = 0
    for step_run_id, ready_at in runs:
        with transaction.atomic():
            if not StepRun.objects.filter(id=step_run_id, ready_at=ready_at).update(ready_at=timezone.now()):
                continue
            run = StepRun.objects.select_related("instance").get(id=step_run_id)
            dispatch = dispatch_for(run.instance, plan_for_version_id(run.instance.version_id), run)
            if dispatch.items:
                Effects(dispatches=[dispatch]).send_on_commit()
                sent += 1
    return sent
