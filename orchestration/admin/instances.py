"""The console for workflow instances: the list, the instance page (DAG, operations, decisions,
lineage, step runs) and its history (the audit log's entries about it).

Every page is read-only. Pause, resume, terminate, retry and approve/reject call the same
`orchestration.engine` services as the API and the CLI, with the console user as the actor.
"""
from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from dacproject.api import error_body
from dacproject.ids import as_uuid
from governance.admin import EMPTY, ReadOnlyModelAdmin, admin_link, pretty_json, status_badge
from governance.escalations.models import Escalation
from governance.escalations.services import step_decide
from governance.escalations.states import OPEN, Gate
from orchestration import engine
from orchestration.lineage import instance_lineage, lineage_outline
from orchestration.models import StepAttempt, WorkflowInstance
from orchestration.selectors import instance_queue, queue_description
from orchestration.states import INSTANCE_ACTIVE, INSTANCE_TERMINAL, InstanceStatus, StepStatus

from . import history, run
from .common import display_time, format_time, instance_link, live_duration, short_instance_link
from .graph import instance_graph
from .steps import StepRunInline


@dataclass(frozen=True)
class LifecycleOperation:
    """One instance operation the console offers, and the engine service that performs it."""

    verb: str
    label: str
    done: str
    offered_when: frozenset  # instance statuses for which the instance page shows its button
    service: Callable  # (instance_id, actor, comment) -> instance

    def perform(self, *, instance_id, actor, comment=""):
        return self.service(instance_id, actor, comment)


LIFECYCLE_OPERATIONS = {
    op.verb: op
    for op in (
        LifecycleOperation(
            "pause", "Pause", "Paused", frozenset({InstanceStatus.RUNNING, InstanceStatus.WAITING}),
            lambda instance_id, actor, comment: engine.instance_pause(instance_id=instance_id, actor=actor),
        ),
        LifecycleOperation(
            "resume", "Resume", "Resumed", frozenset({InstanceStatus.PAUSED}),
            lambda instance_id, actor, comment: engine.instance_resume(instance_id=instance_id, actor=actor),
        ),
        LifecycleOperation(
            "terminate", "Terminate", "Terminated", INSTANCE_ACTIVE,
            lambda instance_id, actor, comment: engine.instance_terminate(
                instance_id=instance_id, actor=actor, reason=comment),
        ),
        LifecycleOperation(
            "retry", "Retry", "Retried", frozenset({InstanceStatus.FAILED, InstanceStatus.TIMED_OUT}),
            lambda instance_id, actor, comment: engine.instance_retry(instance_id=instance_id, actor=actor),
        ),
    )
}


LINEAGE_TIMES = ("timestamp", "started_at", "finished_at")


class InstanceActionForm(ActionForm):
    comment = forms.CharField(
        required=False, label="Reason",
        widget=forms.TextInput(attrs={"placeholder": "recorded when terminating", "size": 30}),
    )


@admin.register(WorkflowInstance)
class WorkflowInstanceAdmin(ReadOnlyModelAdmin):
    # Fits 1400 px with the sidebar and the filters open: short ids, the version beside the workflow,
    # times without today's date, and no "started" (the same as "created" unless it was queued; the
    # duration counts from it).
    list_display = ("short_id", "workflow_and_version", "status_badge", "created_column", "finished_column",
                    "duration")
    list_display_links = None  # the short id is the link (a whole UUID wraps over four lines)
    list_filter = ("status", "definition", "created_at")
    list_select_related = ("definition", "version")
    list_deferred_fields = ("context", "result", "error", "version__spec", "version__source",
                            "definition__description")
    search_fields = ("id", "definition__key", "correlation_id")
    search_help_text = "An instance id (or part of one), a workflow key or a correlation id."
    show_full_result_count = False
    action_form = InstanceActionForm
    actions = ("pause_selected", "resume_selected", "terminate_selected", "retry_selected")
    inlines = (StepRunInline,)
    fieldsets = (
        (None, {"fields": ("id", "workflow", "version_number", "status_badge", "held_by", "priority", "parent_link",
                           "children_links", "created_by", "failing_state")}),
        ("Started by", {"fields": ("trigger_json", "correlation_link")}),
        ("Timing", {"fields": ("created", "started", "finished", "duration", "deadline")}),
        ("Data", {"fields": ("context_json", "result_json", "error_json")}),
        ("Usage (all attempts)", {"fields": ("tokens_in", "tokens_out", "cost_usd")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("definition", "version")

    def get_search_results(self, request, queryset, search_term):
        instance_id = as_uuid(search_term.strip())
        if instance_id is not None:
            return queryset.filter(id=instance_id), False
        return super().get_search_results(request, queryset, search_term)

    # --- columns and fields -------------------------------------------------------------
    @admin.display(description="id", ordering="id")
    def short_id(self, instance):
        return short_instance_link(instance.id)

    @admin.display(description="workflow", ordering="definition__key")
    def workflow_key(self, instance):
        return instance.definition.key

    @admin.display(description="workflow")
    def workflow(self, instance):
        return admin_link("admin:registry_workflowdefinition_change", [instance.definition_id],
                          instance.definition.key)

    @admin.display(description="version", ordering="version__number")
    def version_number(self, instance):
        return instance.version.number

    @admin.display(description="workflow", ordering="definition__key")
    def workflow_and_version(self, instance):
        return format_html('{} <span class="dac-version" title="version {}">v{}</span>', instance.definition.key,
                           instance.version.number, instance.version.number)

    @admin.display(description="status", ordering="status")
    def status_badge(self, instance):
        return status_badge(instance.status, instance.get_status_display())

    @admin.display(description="failing")
    def failing_state(self, instance):
        """Whether a step failed (no new steps start; compensation follows): said in words, not an icon,
        since a tick for "failing: yes" reads as good news."""
        if not instance.failing:
            return status_badge("completed", "no")
        step = (instance.error or {}).get("step") if isinstance(instance.error, dict) else None
        what = f"yes: step '{step}' failed" if step else "yes: a step failed"
        if instance.status in INSTANCE_ACTIVE:
            what += "; compensating" if instance.compensation_started else "; no new steps start"
        return status_badge("failed", what)

    @admin.display(description="created", ordering="created_at")
    def created(self, instance):
        return format_time(instance.created_at)

    @admin.display(description="started", ordering="started_at")
    def started(self, instance):
        return format_time(instance.started_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, instance):
        return format_time(instance.finished_at)

    # The list's times leave out today's date (and this year), so its columns stay narrow.
    @admin.display(description="created", ordering="created_at")
    def created_column(self, instance):
        return format_time(instance.created_at, compact=True)

    @admin.display(description="finished", ordering="finished_at")
    def finished_column(self, instance):
        return format_time(instance.finished_at, compact=True)

    @admin.display(description="deadline")
    def deadline(self, instance):
        return format_time(instance.deadline_at)

    @admin.display(description="queued")
    def held_by(self, instance):
        queue = instance_queue(instance)
        return f"held by {queue_description(queue)}" if queue else EMPTY

    @admin.display(description="duration")
    def duration(self, instance):
        return live_duration(instance.started_at, instance.finished_at)

    @admin.display(description="parent")
    def parent_link(self, instance):
        return instance_link(instance.parent_id) if instance.parent_id else EMPTY

    @admin.display(description="children")
    def children_links(self, instance):
        children = instance.children.order_by("created_at").values_list("id", "definition__key", "status")[:50]
        if not children:
            return EMPTY
        return format_html_join(mark_safe("<br>"), "{} {} ({})",
                                ((instance_link(c), key, status) for c, key, status in children))

    @admin.display(description="trigger")
    def trigger_json(self, instance):
        return pretty_json(instance.trigger)

    @admin.display(description="correlation id")
    def correlation_link(self, instance):
        url = reverse("admin:orchestration_event_changelist")
        return format_html('{} (<a href="{}?q={}">its events</a>)', instance.correlation_id, url,
                           instance.correlation_id)

    @admin.display(description="context")
    def context_json(self, instance):
        return pretty_json(instance.context)

    @admin.display(description="result")
    def result_json(self, instance):
        return pretty_json(instance.result)

    @admin.display(description="error")
    def error_json(self, instance):
        return pretty_json(instance.error)

    # --- operating: permission, bulk actions, instance-page buttons ---------------------
    def has_operate_permission(self, request, obj=None):
        """Whether the user may call the lifecycle and decision services (the model's change permission)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    def _perform_on_selected(self, request, queryset, operation):
        comment = (request.POST.get("comment") or "").strip()
        done = 0
        for instance_id in queryset.values_list("id", flat=True):
            try:
                operation.perform(instance_id=instance_id, actor=request.user, comment=comment)
            except engine.EngineError as exc:
                messages.error(request, f"{instance_id}: {exc.message}")
            else:
                done += 1
        if done:
            messages.success(request, f"{operation.done} {done} instance{'' if done == 1 else 's'}.")

    @admin.action(description="Pause selected instances", permissions=("operate",))
    def pause_selected(self, request, queryset):
        self._perform_on_selected(request, queryset, LIFECYCLE_OPERATIONS["pause"])

    @admin.action(description="Resume selected instances", permissions=("operate",))
    def resume_selected(self, request, queryset):
        self._perform_on_selected(request, queryset, LIFECYCLE_OPERATIONS["resume"])

    @admin.action(description="Terminate selected instances", permissions=("operate",))
    def terminate_selected(self, request, queryset):
        self._perform_on_selected(request, queryset, LIFECYCLE_OPERATIONS["terminate"])

    @admin.action(description="Retry selected instances", permissions=("operate",))
    def retry_selected(self, request, queryset):
        self._perform_on_selected(request, queryset, LIFECYCLE_OPERATIONS["retry"])

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<uuid:instance_id>/operate/", self.admin_site.admin_view(self.operate_view),
                 name="{}_{}_operate".format(*info)),
            path("<uuid:instance_id>/decide/", self.admin_site.admin_view(self.decide_view),
                 name="{}_{}_decide".format(*info)),
            path("run/<str:workflow>/", self.admin_site.admin_view(self.run_view), name="{}_{}_run".format(*info)),
            path("<uuid:instance_id>/graph/", self.admin_site.admin_view(self.graph_view),
                 name="{}_{}_graph".format(*info)),
            *super().get_urls(),
        ]

    def _instance_page(self, instance_id):
        return HttpResponseRedirect(reverse("admin:orchestration_workflowinstance_change", args=[instance_id]))

    @staticmethod
    def _posted_comment(request):
        return (request.POST.get("comment") or "").strip()

    @method_decorator(require_POST)
    def operate_view(self, request, instance_id):
        """POST operation=pause|resume|terminate|retry (+ comment): one lifecycle service call."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        operation = LIFECYCLE_OPERATIONS.get(request.POST.get("operation", ""))
        if operation is None:
            messages.error(request, "Unknown operation.")
            return self._instance_page(instance_id)
        try:
            operation.perform(instance_id=instance_id, actor=request.user, comment=self._posted_comment(request))
        except engine.EngineError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{operation.done} instance {instance_id}.")
        return self._instance_page(instance_id)

    @method_decorator(require_POST)
    def decide_view(self, request, instance_id):
        """POST step_id, decision=approve|reject|<option>, comment: decide a step's open escalation.
        Who may decide is the governance service's check, as for the CLI, the API and the inbox."""
        step_id = request.POST.get("step_id", "")
        decision = request.POST.get("decision", "")
        if not decision:
            messages.error(request, "Choose a decision.")
            return self._instance_page(instance_id)
        try:
            step_decide(instance_id=instance_id, step_id=step_id, decision=decision, actor=request.user,
                        comment=self._posted_comment(request))
        except engine.EngineError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Step '{step_id}': {decision} recorded.")
        return self._instance_page(instance_id)

    def graph_view(self, request, instance_id):
        """The page's DAG as JSON, {id, status, finished, svg}: what the page polls (dashboard/live-dag.js)
        to redraw the graph as the steps move, without a reload."""
        instance = self.get_object(request, str(instance_id))
        if instance is None or not self.has_view_permission(request, instance):
            return JsonResponse(error_body("not_found", f"no instance {instance_id}"), status=404)
        svg, _ = instance_graph(instance)
        return JsonResponse({"id": str(instance.id), "status": instance.status,
                             "finished": instance.status in INSTANCE_TERMINAL, "svg": svg})

    def run_view(self, request, workflow):
        """The form that starts an instance of a workflow (the definition page's Run button)."""
        return run.run_view(self, request, workflow)

    # --- the instance page and its history ------------------------------------------------
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._console_context(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _console_context(self, request, instance):
        """The instance page's DAG, its lineage, its steps awaiting a decision and the operations it offers."""
        svg, statuses = instance_graph(instance)
        steps = {step["id"]: step for step in instance.version.spec.get("steps") or []}
        can_operate = self.has_operate_permission(request)
        gates = {e.step_id: e for e in Escalation.objects.filter(instance=instance, status__in=OPEN, gate=Gate.STEP)}
        awaiting = [
            {"step_id": step_id, "approval": _approval_summary(steps.get(step_id, {}).get("approval")),
             "options": gates[step_id].options if step_id in gates else ["approve", "reject"],
             "escalation_url": reverse("admin:governance_escalation_change", args=[gates[step_id].id])
             if step_id in gates else ""}
            for step_id, status in statuses.items() if status == StepStatus.WAITING_APPROVAL
        ]
        lineage = instance_lineage(instance.id)
        rows = lineage_outline(lineage["root"])
        for node in (row["node"] for row in rows if row.get("node")):  # ISO times, shown with seconds only
            node.update({key: display_time(node[key]) for key in LINEAGE_TIMES if node.get(key)})
        return {
            "dag_svg": mark_safe(svg),  # dag_svg escapes every label it draws: its markup is safe as it is
            "can_operate": can_operate,
            "steps_awaiting_decision": awaiting,
            "lifecycle_operations": [op for op in LIFECYCLE_OPERATIONS.values()
                                     if can_operate and instance.status in op.offered_when],
            "operate_url": reverse("admin:orchestration_workflowinstance_operate", args=[instance.id]),
            "decide_url": reverse("admin:orchestration_workflowinstance_decide", args=[instance.id]),
            "graph_url": reverse("admin:orchestration_workflowinstance_graph", args=[instance.id]),
            "instance_finished": instance.status in INSTANCE_TERMINAL,
            "attempts_with_usage": _attempts_with_usage(instance),
            "lineage": lineage,
            "lineage_rows": rows,
        }

    def history_view(self, request, object_id, extra_context=None):
        """The instance's history: what the audit log recorded about it (Django's own history lists
        only changes made through admin forms, and the console makes none)."""
        return history.history_view(self, request, object_id, extra_context)


def _attempts_with_usage(instance, limit=200):
    """The instance's attempts that reported tokens or cost, in the order they began."""
    spent = Q(tokens_in__gt=0) | Q(tokens_out__gt=0) | Q(cost_usd__gt=0)
    return (StepAttempt.objects.filter(spent, step_run__instance=instance).select_related("step_run")
            .only("number", "item_index", "model", "tokens_in", "tokens_out", "cost_usd", "step_run__step_id")
            .order_by("started_at", "id")[:limit])


def _approval_summary(approval):
    """'type production_deployment · approvers tech_lead' for a step's approval settings."""
    if not isinstance(approval, dict):
        return ""
    parts = [f"{key.replace('_', ' ')} {', '.join(map(str, value)) if isinstance(value, list) else value}"
             for key, value in approval.items() if value not in (None, "", [], {})]
    return " · ".join(parts)
