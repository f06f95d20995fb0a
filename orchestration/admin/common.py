"""What the engine's console pages share: times with seconds, durations that keep counting while a
run is unfinished, short instance ids, error summaries and a tabular inline without Django's
per-row header line."""
from datetime import datetime

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from dacproject.ids import short_id
from governance.admin import EMPTY, ReadOnlyTabularInline, admin_link, format_duration, short_json, status_badge

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def format_time(value, *, compact=False, now=None):
    """A time with seconds, in the console's time zone, as a <time> element whose title is the full time.

    `compact` (for list columns) leaves out today's date, and the year for times of this year.
    """
    if value is None:
        return EMPTY
    local = timezone.localtime(value)
    full = f"{local.strftime(TIME_FORMAT)} {local.tzname() or ''}".strip()
    text = local.strftime(TIME_FORMAT)
    if compact:
        today = timezone.localtime(now or timezone.now())
        if local.date() == today.date():
            text = local.strftime("%H:%M:%S")
        elif local.year == today.year:
            text = local.strftime("%b %d %H:%M:%S")
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(), full, text)


def display_time(iso_text):
    """'2025-11-30T04:02:13.780741+00:00' -> '2025-11-30 04:02:13' in the console's time zone."""
    try:
        value = datetime.fromisoformat(iso_text)
    except (TypeError, ValueError):
        return iso_text
    return timezone.localtime(value).strftime(TIME_FORMAT) if timezone.is_aware(value) else value.strftime(TIME_FORMAT)


def live_duration(started_at, finished_at, *, now=None):
    """The time between start and end; while unfinished, the time so far, which the page's script keeps
    counting (`data-dac-elapsed`: seconds at render time). '—' before it started."""
    if started_at is None:
        return EMPTY
    if finished_at is not None:
        return format_duration(started_at, finished_at)
    now = now or timezone.now()
    seconds = max((now - started_at).total_seconds(), 0)
    return format_html('<span class="dac-elapsed" data-dac-elapsed="{}" title="unfinished: the time so far">{}</span>',
                       f"{seconds:.1f}", format_duration(started_at, None, now=now))


def instance_link(instance_id):
    return admin_link("admin:orchestration_workflowinstance_change", [instance_id], str(instance_id))


def short_instance_link(instance_id):
    """An instance's short id (dacproject.ids.short_id) linking to its page, the whole id on hover."""
    text = str(instance_id)
    return admin_link("admin:orchestration_workflowinstance_change", [instance_id],
                      format_html('<code class="dac-short-id" title="{}">{}</code>', text, short_id(text)))


def error_summary(error):
    if not error:
        return ""
    if isinstance(error, dict):
        kind, message = error.get("type") or "", error.get("message") or ""
        text = f"{kind}: {message}" if kind and message else (kind or message or short_json(error))
    else:
        text = str(error)
    return text if len(text) <= 120 else text[:119] + "\u2026"


class RunColumns:
    """Columns shared by pages of things that run: step runs, foreach items, attempts."""

    @admin.display(description="status", ordering="status")
    def status_badge(self, run):
        return status_badge(run.status)

    @admin.display(description="duration")
    def duration(self, run):
        return live_duration(getattr(run, "started_at", None), getattr(run, "finished_at", None))

    @admin.display(description="started", ordering="started_at")
    def started(self, run):
        return format_time(getattr(run, "started_at", None))

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, run):
        return format_time(getattr(run, "finished_at", None))

    @admin.display(description="error")
    def error_summary(self, run):
        return error_summary(run.error)


class ConsoleTabularInline(ReadOnlyTabularInline):
    """A read-only tabular inline whose rows are only their columns. Django's tabular inline writes each
    row's str() and a "View" link above the row (the "…/build View" line); here the row's first
    column links to its page instead (`show_change_link` is off)."""

    template = "admin/orchestration/edit_inline/readonly_tabular.html"
    show_change_link = False
