"""Event-bus tasks: thin wrappers that call one service each (DESIGN §1.3)."""
from celery import shared_task

from orchestration.engine.effects import dispatches_batched
from orchestration.tasks import DB_RETRY

from . import debounce, reactions, schedules, services, waits
from .publish import reactions_deferred


@shared_task(ignore_result=True, **DB_RETRY)
def react(event_ids):
    """Match a batch of published events against triggers and waiting steps; the batch's own
    dispatches and reaction checks go out together."""
    with dispatches_batched(), reactions_deferred():
        return reactions.events_react(event_ids=event_ids)


@shared_task(ignore_result=True, **DB_RETRY)
def park_wait(step_run_id, attempt):
    """Park a `wait_for` step (no worker stays with it)."""
    waits.wait_park(step_run_id=step_run_id, attempt=attempt)


@shared_task(bind=True, ignore_result=True, **DB_RETRY)
def fire_schedule(self, schedule):
    """Sent by beat for a scheduled trigger; the message id makes a redelivery start nothing."""
    instance = schedules.schedule_fire(name=schedule, firing_id=self.request.id)
    return str(instance.id) if instance else None


@shared_task(ignore_result=True, **DB_RETRY)
def schedule_release(schedule):
    schedules.schedule_release(name=schedule)


@shared_task(ignore_result=True, **DB_RETRY)
def debounce_fire(window_id):
    debounce.debounce_fire(window_id=window_id)


@shared_task(ignore_result=True)
def sweep():
    """Beat, every DAC_SWEEP_INTERVAL_SECONDS: wait timeouts, due debounce windows, old keys."""
    return services.events_sweep()
