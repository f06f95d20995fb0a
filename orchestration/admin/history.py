"""An instance's History page: what the audit log recorded about it, newest first.

Django's own history lists only changes made through admin forms (LogEntry), and the console makes
none: every change goes through a service, which writes an audit entry. So this page reads those.
"""
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Q
from django.db.models.functions import Cast
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from dacproject.ids import short_id
from governance.admin import admin_link, short_json
from governance.escalations.models import Escalation
from governance.models import AuditEntry

from .common import format_time

PER_PAGE = 100


def audit_entries_of(instance_id):
    """The audit log's entries about an instance: its own, its steps' and its escalations' (decisions,
    refusals, deadlines), newest first, in one query."""
    escalations = Escalation.objects.filter(instance_id=instance_id).annotate(
        text_id=Cast("id", CharField())).values("text_id")
    return (AuditEntry.objects.filter(
        Q(target_type="instance", target_id=str(instance_id))
        | Q(target_type="step", target_id__startswith=f"{instance_id}/")
        | Q(target_type="escalation", target_id__in=escalations))
        .order_by("-created_at", "-id"))


def _target(entry):
    if entry.target_type == "instance":
        return "this instance"
    if entry.target_type == "step":
        return format_html("step <code>{}</code>", entry.target_id.split("/", 1)[-1])
    if entry.target_type == "escalation":
        return format_html("escalation {}", admin_link("admin:governance_escalation_change", [entry.target_id],
                                                      short_id(entry.target_id)))
    return f"{entry.target_type} {entry.target_id}"


def history_view(model_admin, request, object_id, extra_context=None):
    instance = model_admin.get_object(request, unquote(object_id))
    if instance is None:
        return model_admin._get_obj_does_not_exist_redirect(request, model_admin.opts, object_id)
    if not model_admin.has_view_or_change_permission(request, instance):
        raise PermissionDenied
    paginator = model_admin.get_paginator(request, audit_entries_of(instance.id), PER_PAGE)
    page = paginator.get_page(request.GET.get(PAGE_VAR, 1))
    can_open_entries = request.user.has_perm("governance.view_auditentry")
    entries = [
        {"entry": entry, "time": format_time(entry.created_at), "target": _target(entry),
         "details": short_json(entry.details, limit=300),
         "url": reverse("admin:governance_auditentry_change", args=[entry.pk]) if can_open_entries else ""}
        for entry in page
    ]
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"History: {instance.definition.key} {instance.id}",
        "subtitle": None,
        "object": instance,
        "opts": opts,
        "module_name": str(opts.verbose_name_plural).capitalize(),
        "entries": entries,
        "page": page,
        "page_range": paginator.get_elided_page_range(page.number),
        "page_var": PAGE_VAR,
        "pagination_required": paginator.count > PER_PAGE,
        "preserved_filters": model_admin.get_preserved_filters(request),
        **(extra_context or {}),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/orchestration/workflowinstance/object_history.html", context)
