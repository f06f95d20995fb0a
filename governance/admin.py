"""The governance console: the audit log, and the building blocks every console page shares.

The console shows state and calls services; it never edits engine, registry or audit rows itself.
`ReadOnlyModelAdmin` makes a page view-only (no add, change or delete), `pretty_json` and
`status_badge` render values, and `list_deferred_fields` keeps big columns out of list queries.
"""
import json

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from dacproject.nul import UNSTORABLE, unstorable
from orchestration.dag import status_colours

from .audit import audit_seal, audit_verify
from .models import AuditEntry

EMPTY = "—"
MAX_CHAIN_PROBLEMS_SHOWN = 20


def pretty_json(value):
    """A JSON value as an indented, escaped <pre> block."""
    if value is None:
        return EMPTY
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return format_html('<pre class="dac-json">{}</pre>', text)


def short_json(value, limit=100):
    """A JSON value on one line, cut at `limit` characters (for list columns)."""
    if value in (None, {}, []):
        return ""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def status_badge(status, label=None):
    """A status as a small pill in the same colours as the DAG drawing."""
    if not status:
        return EMPTY
    fill, stroke = status_colours(status)
    return format_html('<span class="dac-status" style="background:{};border-color:{}">{}</span>',
                       fill, stroke, label or str(status).replace("_", " "))


def format_duration(started_at, finished_at, *, now=None):
    """'1h 02m', '3m 05s', '4.2s' between two times (to now while unfinished); '—' if not started."""
    if started_at is None:
        return EMPTY
    seconds = ((finished_at or now or timezone.now()) - started_at).total_seconds()
    if seconds < 60:
        return f"{max(seconds, 0):.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def admin_link(url_name, args, text):
    """A link to another console page; the bare text when that page does not exist."""
    try:
        return format_html('<a href="{}">{}</a>', reverse(url_name, args=args), text)
    except NoReverseMatch:
        return text


class ListColumnsChangeList(ChangeList):
    """A change list whose query leaves out the model admin's `list_deferred_fields` (big JSON columns)."""

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer(*self.model_admin.list_deferred_fields)


class ViewOnly:
    """No add, change or delete through a form: state changes only through services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyModelAdmin(ViewOnly, admin.ModelAdmin):
    """A view-only console page: state is changed by services (API, CLI, console actions), never by a form."""

    list_deferred_fields = ()


    def get_readonly_fields(self, request, obj=None):
        if self.fieldsets:
            return flatten_fieldsets(self.fieldsets)
        return self.fields or [field.name for field in self.model._meta.fields]

    def get_changelist(self, request, **kwargs):
        return ListColumnsChangeList if self.list_deferred_fields else super().get_changelist(request, **kwargs)

    def changelist_view(self, request, extra_context=None):
        """A filter value PostgreSQL cannot store matches nothing: say so instead of failing."""
        if any(unstorable(value) for values in request.GET.lists() for value in values[1]):
            messages.error(request, f"Filter values {UNSTORABLE}.")
            return HttpResponseRedirect(request.path)
        return super().changelist_view(request, extra_context)


class ReadOnlyTabularInline(ViewOnly, admin.TabularInline):
    """Related rows shown on a console page, view-only."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


    def get_readonly_fields(self, request, obj=None):
        return self.fields or [field.name for field in self.model._meta.fields]


# Audit targets that have a console page: target_type -> (url name, how to get its id from target_id).
AUDIT_TARGET_PAGES = {
    "instance": ("admin:orchestration_workflowinstance_change", lambda target_id: target_id),
    "step": ("admin:orchestration_workflowinstance_change", lambda target_id: target_id.split("/", 1)[0]),
}


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyModelAdmin):
    """The append-only, hash-chained audit log; `Verify chain` seals and checks it as `dac audit verify` does.
    Rows are chained by the sealer shortly after they commit: until then `seq` is empty (not sealed)."""

    list_display = ("created_at", "seq", "sealed", "actor_name", "verb", "target_type", "target",
                    "details_summary")
    list_filter = ("verb", "actor_name", "target_type")
    search_fields = ("target_id", "actor_name", "verb")
    ordering = ("-id",)
    list_per_page = 100
    show_full_result_count = False
    fields = ("created_at", "actor_name", "actor", "verb", "target_type", "target", "details_json",
              "seq", "sealed", "digest_version", "prev_hash", "hash")

    @admin.display(description="sealed", boolean=True)
    def sealed(self, entry):
        return entry.sealed

    @admin.display(description="target", ordering="target_id")
    def target(self, entry):
        page = AUDIT_TARGET_PAGES.get(entry.target_type)
        if page is None:
            return entry.target_id
        url_name, page_id = page
        return admin_link(url_name, [page_id(entry.target_id)], entry.target_id)

    @admin.display(description="details")
    def details_summary(self, entry):
        return short_json(entry.details)

    @admin.display(description="details")
    def details_json(self, entry):
        return pretty_json(entry.details)

    def get_urls(self):
        verify = path("verify/", self.admin_site.admin_view(self.verify_chain_view),
                      name="governance_auditentry_verify")
        return [verify, *super().get_urls()]

    def verify_chain_view(self, request):
        """Seal what is committed, check every hash of the chain and report the result on the log's page.
        (Sealing only chains rows, as the beat task would; the console still never edits audit content.)"""
        if not self.has_view_permission(request):
            raise PermissionDenied
        audit_seal()
        problems = audit_verify()
        if not problems:
            waiting = f" {problems.awaiting_seal} newer entries awaiting seal." if problems.awaiting_seal else ""
            messages.success(request, f"Audit chain intact: {problems.verified} entries verified.{waiting}")
        for problem in problems[:MAX_CHAIN_PROBLEMS_SHOWN]:
            messages.error(request, problem)
        if len(problems) > MAX_CHAIN_PROBLEMS_SHOWN:
            messages.error(request, f"... and {len(problems) - MAX_CHAIN_PROBLEMS_SHOWN} more problems.")
        return HttpResponseRedirect(reverse("admin:governance_auditentry_changelist"))


# The escalation inbox and the notification deliveries live beside their services.
from .escalations import admin as _escalations_admin  # noqa: E402, F401
from .notifications import admin as _notifications_admin  # noqa: E402, F401
