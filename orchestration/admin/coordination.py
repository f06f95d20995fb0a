"""Console pages of coordination (DESIGN §6): events with what each matched, the trigger index,
parked waits, debounce windows, schedule state and shared context. Read-only; schedules
themselves are django-celery-beat's Periodic tasks page (where operators disable them)."""
from django.contrib import admin
from django.utils import timezone

from governance.admin import EMPTY, ReadOnlyModelAdmin, pretty_json, short_json, status_badge
from orchestration.models import DebounceWindow, Event, EventMatch, EventWait, ScheduleState, SharedValue, Trigger

from .common import ConsoleTabularInline, instance_link


class EventMatchInline(ConsoleTabularInline):
    model = EventMatch
    fields = ("kind", "trigger_key", "instance_link", "step_id", "created_at")
    readonly_fields = fields
    verbose_name_plural = "what this event started or resumed"

    @admin.display(description="instance")
    def instance_link(self, match):
        return instance_link(match.instance_id)


@admin.register(Event)
class EventAdmin(ReadOnlyModelAdmin):
    list_display = ("event_type", "source_workflow", "source_instance_link", "correlation_id", "priority",
                    "timestamp", "expired", "payload_summary")
    list_filter = ("priority", "timestamp")
    search_fields = ("event_type", "source_workflow", "correlation_id")
    show_full_result_count = False
    inlines = (EventMatchInline,)
    fields = ("event_id", "event_type", "source_workflow", "source_instance_link", "correlation_id", "priority",
              "ttl_seconds", "timestamp", "reacted_at", "expired", "payload_json")

    @admin.display(description="source instance")
    def source_instance_link(self, event):
        return instance_link(event.source_instance_id) if event.source_instance_id else EMPTY

    @admin.display(description="expired", boolean=True)
    def expired(self, event):
        return event.is_expired()

    @admin.display(description="payload")
    def payload_summary(self, event):
        return short_json(event.payload)

    @admin.display(description="payload")
    def payload_json(self, event):
        return pretty_json(event.payload)


@admin.register(Trigger)
class TriggerAdmin(ReadOnlyModelAdmin):
    list_display = ("key", "kind", "event_type", "path", "workflow", "blueprint", "filters_summary", "created_at")
    list_filter = ("kind",)
    list_select_related = ("workflow", "blueprint")
    search_fields = ("key", "event_type", "path", "workflow__key")
    fields = ("key", "kind", "event_type", "path", "workflow", "blueprint", "spec_json", "created_at", "updated_at")

    @admin.display(description="filters")
    def filters_summary(self, trigger):
        return short_json(trigger.spec.get("filters"))

    @admin.display(description="spec")
    def spec_json(self, trigger):
        return pretty_json(trigger.spec)


@admin.register(EventWait)
class EventWaitAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "instance_link", "step", "event_type", "correlation_id", "status_badge", "deadline_at",
                    "created_at")
    list_filter = ("status", "event_type")
    list_select_related = ("step_run",)
    search_fields = ("event_type", "correlation_id")
    fields = ("instance_link", "step", "attempt", "event_type", "match_json", "correlation_id", "since",
              "deadline_at", "status_badge", "event", "created_at", "checked_at", "resolved_at")

    @admin.display(description="instance")
    def instance_link(self, wait):
        return instance_link(wait.instance_id)

    @admin.display(description="step")
    def step(self, wait):
        return wait.step_run.step_id

    @admin.display(description="status", ordering="status")
    def status_badge(self, wait):
        return status_badge(wait.status, wait.get_status_display())

    @admin.display(description="match")
    def match_json(self, wait):
        return pretty_json(wait.match)


@admin.register(DebounceWindow)
class DebounceWindowAdmin(ReadOnlyModelAdmin):
    list_display = ("trigger_key", "debounce_key", "events", "fire_at", "created_at")
    search_fields = ("trigger_key", "debounce_key")


@admin.register(ScheduleState)
class ScheduleStateAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "buffered", "last_fired_at")
    search_fields = ("name",)


@admin.register(SharedValue)
class SharedValueAdmin(ReadOnlyModelAdmin):
    list_display = ("scope", "key", "version", "value_summary", "live", "expires_at", "source_workflow",
                    "updated_by", "updated_at")
    list_filter = ("scope", "deleted")
    search_fields = ("scope", "key", "source_workflow")
    fields = ("scope", "key", "version", "value_json", "live", "expires_at", "source_workflow", "source_instance",
              "updated_by", "created_at", "updated_at")

    @admin.display(description="value")
    def value_summary(self, entry):
        return short_json(entry.value) if self.live(entry) else EMPTY

    @admin.display(description="value")
    def value_json(self, entry):
        return pretty_json(entry.value)

    @admin.display(description="live", boolean=True)
    def live(self, entry):
        return not entry.deleted and (entry.expires_at is None or entry.expires_at > timezone.now())
