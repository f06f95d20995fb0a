"""The console for engine state: instances, step runs, attempts and events.

Every page is read-only. Pause, resume, terminate, retry and approve/reject call the same
`orchestration.engine` services as the API and the CLI, with the console user as the actor.
"""
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from governance.admin import (
    EMPTY,
    ReadOnlyModelAdmin,
    ReadOnlyTabularInline,
    admin_link,
    format_duration,
    pretty_json,
    short_json,
    status_badge,
)
from governance.escalations.models import Escalation
from governance.escalations.services import step_decide
from governance.escalations.states import OPEN, Gate
from orchestration import engine
from orchestration.dag import dag_svg
from orchestration.lineage import instance_lineage, lineage_outline
from orchestration.models import StepAttempt, StepItem, StepRun, WorkflowInstance
from orchestration.selectors import instance_queue, queue_description
from orchestration.states import INSTANCE_ACTIVE, InstanceStatus, StepStatus


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


def _search_uuid(search_term):
    try:
        return uuid.UUID(search_term.strip())
    except ValueError:
        return None


def instance_link(instance_id):
    return admin_link("admin:orchestration_workflowinstance_change", [instance_id], str(instance_id))


class InstanceActionForm(ActionForm):
    comment = forms.CharField(
        required=False, label="Reason",
        widget=forms.TextInput(attrs={"placeholder": "recorded when terminating", "size": 30}),
    )


class RunColumns:
    """Columns shared by pages of things that run: step runs, foreach items, attempts."""

    @admin.display(description="status", ordering="status")
    def status_badge(self, run):
        return status_badge(run.status)

    @admin.display(description="duration")
    def duration(self, run):
        return format_duration(getattr(run, "started_at", None), getattr(run, "finished_at", None))

    @admin.display(description="error")
    def error_summary(self, run):
        return _error_summary(run.error)


class StepRunInline(RunColumns, ReadOnlyTabularInline):
    model = StepRun
    fields = ("step_id", "status_badge", "attempts", "started_at", "finished_at", "duration", "error_summary",
              "approved_by", "decision_comment")
    verbose_name_plural = "step runs"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("output")



def _error_summary(error):
    if not error:
        return ""
    if isinstance(error, dict):
        kind, message = error.get("type") or "", error.get("message") or ""
        text = f"{kind}: {message}" if kind and message else (kind or message or short_json(error))
    else:
        text = str(error)
    return text if len(text) <= 120 else text[:119] + "\u2026"


@admin.register(WorkflowInstance)
class WorkflowInstanceAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "workflow_key", "version_number", "status_badge", "created_at", "started_at",
                    "finished_at", "duration")
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
                           "children_links", "created_by", "failing")}),
        ("Started by", {"fields": ("trigger_json", "correlation_link")}),
        ("Timing", {"fields": ("created_at", "started_at", "finished_at", "duration", "deadline_at")}),
        ("Data", {"fields": ("context_json", "result_json", "error_json")}),
        ("Usage (all attempts)", {"fields": ("tokens_in", "tokens_out", "cost_usd")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("definition", "version")

    def get_search_results(self, request, queryset, search_term):
        instance_id = _search_uuid(search_term)
        if instance_id is not None:
            return queryset.filter(id=instance_id), False
        return super().get_search_results(request, queryset, search_term)

    # --- columns and fields -------------------------------------------------------------
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

    @admin.display(description="status", ordering="status")
    def status_badge(self, instance):
        return status_badge(instance.status, instance.get_status_display())

    @admin.display(description="queued")
    def held_by(self, instance):
        queue = instance_queue(instance)
        return f"held by {queue_description(queue)}" if queue else EMPTY

    @admin.display(description="duration")
    def duration(self, instance):
        return format_duration(instance.started_at, instance.finished_at)

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

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._console_context(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _console_context(self, request, instance):
        """The instance page's DAG, its lineage, its steps awaiting a decision and the operations it offers."""
        statuses = dict(StepRun.objects.filter(instance=instance).values_list("step_id", "status"))
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
        return {
            # dag_svg escapes every label it draws, so its markup is safe to embed as it is.
            "dag_svg": mark_safe(dag_svg(instance.version.spec, statuses)),
            "can_operate": can_operate,
            "steps_awaiting_decision": awaiting,
            "lifecycle_operations": [op for op in LIFECYCLE_OPERATIONS.values()
                                     if can_operate and instance.status in op.offered_when],
            "operate_url": reverse("admin:orchestration_workflowinstance_operate", args=[instance.id]),
            "decide_url": reverse("admin:orchestration_workflowinstance_decide", args=[instance.id]),
            "attempts_with_usage": _attempts_with_usage(instance),
            "lineage": lineage,
            "lineage_rows": lineage_outline(lineage["root"]),
        }


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


class StepAttemptInline(ReadOnlyTabularInline):
    model = StepAttempt
    fields = ("number", "item_index", "status", "worker", "started_at", "finished_at", "error_type",
              "tokens_in", "tokens_out", "cost_usd")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("inputs", "output", "traceback")


class StepItemInline(RunColumns, ReadOnlyTabularInline):
    model = StepItem
    fields = ("index", "status_badge", "attempts", "item_summary", "error_summary")
    show_change_link = False
    verbose_name_plural = "foreach items"

    @admin.display(description="item")
    def item_summary(self, item):
        return short_json(item.item)


@admin.register(StepRun)
class StepRunAdmin(RunColumns, ReadOnlyModelAdmin):
    list_display = ("step_id", "instance", "workflow_key", "status_badge", "attempts", "started_at",
                    "finished_at", "duration", "error_summary")
    list_display_links = ("step_id",)
    list_filter = ("status", "instance__definition")
    list_select_related = ("instance__definition",)
    list_deferred_fields = ("output", "instance__context", "instance__result", "instance__error",
                            "instance__definition__description")
    search_fields = ("step_id", "instance__definition__key")
    search_help_text = "A step id, a workflow key or an instance id."
    show_full_result_count = False
    inlines = (StepAttemptInline, StepItemInline)
    fieldsets = (
        (None, {"fields": ("instance_link", "step_id", "status_badge", "attempts", "attempt_base", "item_count",
                           "worker", "task_id")}),
        ("Timing", {"fields": ("ready_at", "started_at", "heartbeat_at", "finished_at", "duration",
                               "completed_seq", "compensated_at")}),
        ("Decision", {"fields": ("approved_by", "decision_comment")}),
        ("Data", {"fields": ("output_json", "error_json")}),
    )

    def get_search_results(self, request, queryset, search_term):
        instance_id = _search_uuid(search_term)
        if instance_id is not None:
            return queryset.filter(instance_id=instance_id), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="instance", ordering="instance_id")
    def instance_link(self, run):
        return instance_link(run.instance_id)

    @admin.display(description="workflow", ordering="instance__definition__key")
    def workflow_key(self, run):
        return run.instance.definition.key


    @admin.display(description="output")
    def output_json(self, run):
        return pretty_json(run.output)

    @admin.display(description="error")
    def error_json(self, run):
        return pretty_json(run.error)


@admin.register(StepAttempt)
class StepAttemptAdmin(RunColumns, ReadOnlyModelAdmin):
    list_display = ("__str__", "workflow_key", "step_id", "item_index", "number", "status", "worker",
                    "started_at", "finished_at", "error_type", "tokens_in", "tokens_out", "cost_usd")
    list_filter = ("status", "model")
    list_select_related = ("step_run__instance__definition",)
    list_deferred_fields = ("inputs", "output", "traceback", "step_run__output", "step_run__error",
                            "step_run__instance__context", "step_run__instance__result",
                            "step_run__instance__error", "step_run__instance__definition__description")
    search_fields = ("step_run__step_id", "step_run__instance__definition__key", "error_type", "worker")
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("step_run_link", "instance_link", "item_index", "number", "status", "worker",
                           "task_id")}),
        ("Timing", {"fields": ("started_at", "finished_at", "duration")}),
        ("Data (secrets masked)", {"fields": ("inputs_json", "output_json")}),
        ("Error", {"fields": ("error_type", "error_message", "traceback_text")}),
        ("Usage", {"fields": ("model", "tokens_in", "tokens_out", "cost_usd")}),
    )

    def get_search_results(self, request, queryset, search_term):
        instance_id = _search_uuid(search_term)
        if instance_id is not None:
            return queryset.filter(step_run__instance_id=instance_id), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="workflow", ordering="step_run__instance__definition__key")
    def workflow_key(self, attempt):
        return attempt.step_run.instance.definition.key

    @admin.display(description="step", ordering="step_run__step_id")
    def step_id(self, attempt):
        return attempt.step_run.step_id

    @admin.display(description="step run")
    def step_run_link(self, attempt):
        return admin_link("admin:orchestration_steprun_change", [attempt.step_run_id], str(attempt.step_run))

    @admin.display(description="instance")
    def instance_link(self, attempt):
        return instance_link(attempt.step_run.instance_id)


    @admin.display(description="inputs")
    def inputs_json(self, attempt):
        return pretty_json(attempt.inputs)

    @admin.display(description="output")
    def output_json(self, attempt):
        return pretty_json(attempt.output)

    @admin.display(description="traceback")
    def traceback_text(self, attempt):
        return format_html('<pre class="dac-json">{}</pre>', attempt.traceback) if attempt.traceback else EMPTY
