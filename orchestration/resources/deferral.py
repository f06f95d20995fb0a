"""A rate-limited step without tokens is sent again for when they refill; its `ready_at` moves
to that time, so the reconciler (which re-sends steps left `ready` past `ready_at`) does not
send it too, yet still does if the deferred message is lost."""
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from orchestration.models import StepItem, StepRun
from orchestration.states import StepStatus as S


def step_defer(*, step_run_id, attempt, wait_seconds, index=None):
    """Record that attempt `attempt` of a step (of foreach item `index`, counted within its round)
    waits `wait_seconds` for tokens; False if it is not waiting to run that attempt (a duplicate
    message, or the step moved on), and then there is nothing to send again."""
    until = timezone.now() + timezone.timedelta(seconds=wait_seconds)
    if index is None:
        return bool(StepRun.objects.filter(id=step_run_id, status=S.READY, attempts=attempt - 1).update(
            ready_at=Greatest(F("ready_at"), Value(until))))
    item_waits = StepItem.objects.filter(step_run_id=step_run_id, index=index, status=S.READY,
                                         attempts=F("attempt_base") + attempt - 1)
    if not item_waits.exists():
        return False
    # A foreach step is `ready` until its first item runs, then `running`: either way the
    # reconciler must leave its chord alone while items wait for tokens.
    StepRun.objects.filter(id=step_run_id, status__in=[S.READY, S.RUNNING]).update(
        ready_at=Greatest(F("ready_at"), Value(until)))
    return True
