"""Debounced event triggers (DESIGN §6.2, anchor: Inngest debounce): a burst of matching events
with one debounce key starts one instance, `seconds` after the last of them, with its payload.

Each key has one `DebounceWindow` row; every event moves its `fire_at` later. A task is sent
with a countdown per event; the one that finds `fire_at` reached starts the instance and
deletes the window in one transaction. The sweep fires windows whose messages were lost.
"""
import logging

from django.db import transaction
from django.utils import timezone

from orchestration import templating

from .models import DebounceWindow, Trigger

logger = logging.getLogger(__name__)


def debounce_key(trigger, event):
    """The rendered `debounce.key` (reads `trigger`, the event, and `context`); '' means one window."""
    from .reactions import trigger_context, trigger_namespace

    source = (trigger.spec.get("debounce") or {}).get("key") or ""
    scope = {"trigger": trigger_namespace(event, trigger), "context": trigger_context(event, trigger)}
    try:
        return str(templating.render_value(source, scope))[:500]
    except templating.TemplateError as exc:
        logger.warning("debounce key of %s could not be rendered for event %s: %s", trigger.key, event.event_id, exc)
        return ""


@transaction.atomic
def debounce_note(trigger, event):
    """Count `event` into its window (created if needed) and schedule the window's check."""
    seconds = float(trigger.spec["debounce"]["seconds"])
    key = debounce_key(trigger, event)
    fire_at = event.timestamp + timezone.timedelta(seconds=seconds)
    window = None
    while window is None:  # a window fired (and deleted) between the two statements: open a new one
        DebounceWindow.objects.bulk_create(
            [DebounceWindow(trigger_key=trigger.key, debounce_key=key, last_event=event, fire_at=fire_at, events=0)],
            ignore_conflicts=True)
        window = DebounceWindow.objects.select_for_update().select_related("last_event").filter(
            trigger_key=trigger.key, debounce_key=key).first()
    window.events += 1
    if event.timestamp >= window.last_event.timestamp:
        window.last_event = event
    window.fire_at = max(window.fire_at, fire_at)
    window.save()
    countdown = max(0.0, (window.fire_at - timezone.now()).total_seconds())
    transaction.on_commit(lambda: _send_check(window.id, countdown))


def _send_check(window_id, countdown):
    from . import tasks

    try:
        tasks.debounce_fire.apply_async((window_id,), countdown=countdown)
    except Exception:  # noqa: BLE001 - the sweep fires windows whose time has come
        logger.exception("could not schedule debounce window %s; the sweep will fire it", window_id)


@transaction.atomic
def debounce_fire(*, window_id):
    """Start the window's instance if its time has come (a later event may have moved it)."""
    from .reactions import trigger_start

    window = DebounceWindow.objects.select_for_update().select_related("last_event").filter(id=window_id).first()
    if window is None or window.fire_at > timezone.now():
        return None
    trigger = Trigger.objects.select_related("workflow").filter(key=window.trigger_key).first()
    event = window.last_event
    window.delete()
    return trigger_start(trigger, event) if trigger is not None else None


def debounce_due(*, limit=500):
    """The sweep: fire windows whose time has come (their message may have been lost)."""
    due = DebounceWindow.objects.filter(fire_at__lte=timezone.now()).values_list("id", flat=True)[:limit]
    return sum(1 for window_id in list(due) if debounce_fire(window_id=window_id))
