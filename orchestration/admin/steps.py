"""The console for step runs, their foreach items and their attempts (read-only)."""
from django.contrib import admin
from django.utils.html import format_html

from dacproject.ids import as_uuid
from governance.admin import EMPTY, ReadOnlyModelAdmin, admin_link, pretty_json, short_json
from orchestration.models import StepAttempt, StepItem, StepRun

from .common import ConsoleTabularInline, RunColumns, format_time, instance_link


class StepRunInline(RunColumns, ConsoleTabularInline):
    model = StepRun
    fields = ("step_link", "status_badge", "attempts", "started", "finished", "duration", "error_summary",
              "approved_by", "decision_comment")
    verbose_name_plural = "step runs"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("output")

    @admin.display(description="step")
    def step_link(self, run):
        return admin_link("admin:orchestration_steprun_change", [run.pk], run.step_id)


class StepAttemptInline(RunColumns, ConsoleTabularInline):
    model = StepAttempt
    fields = ("attempt_link", "item_index", "status", "worker", "started", "finished", "duration", "error_type",
              "tokens_in", "tokens_out", "cost_usd")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("inputs", "output", "traceback")

    @admin.display(description="attempt")
    def attempt_link(self, attempt):
        return admin_link("admin:orchestration_stepattempt_change", [attempt.pk], f"#{attempt.number}")


class StepItemInline(RunColumns, ConsoleTabularInline):
    model = StepItem
    fields = ("index", "status_badge", "attempts", "item_summary", "error_summary")
    verbose_name_plural = "foreach items"

    @admin.display(description="item")
    def item_summary(self, item):
        return short_json(item.item)


@admin.register(StepRun)
class StepRunAdmin(RunColumns, ReadOnlyModelAdmin):
    list_display = ("step_id", "instance", "workflow_key", "status_badge", "attempts", "started", "finished",
                    "duration", "error_summary")
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
        ("Timing", {"fields": ("ready", "started", "heartbeat", "finished", "duration", "completed_seq",
                               "compensated")}),
        ("Decision", {"fields": ("approved_by", "decision_comment")}),
        ("Data", {"fields": ("output_json", "error_json")}),
    )

    def get_search_results(self, request, queryset, search_term):
        instance_id = as_uuid(search_term.strip())
        if instance_id is not None:
            return queryset.filter(instance_id=instance_id), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="instance", ordering="instance_id")
    def instance_link(self, run):
        return instance_link(run.instance_id)

    @admin.display(description="workflow", ordering="instance__definition__key")
    def workflow_key(self, run):
        return run.instance.definition.key

    @admin.display(description="ready at")
    def ready(self, run):
        return format_time(run.ready_at)

    @admin.display(description="heartbeat at")
    def heartbeat(self, run):
        return format_time(run.heartbeat_at)

    @admin.display(description="compensated at")
    def compensated(self, run):
        return format_time(run.compensated_at)

    @admin.display(description="output")
    def output_json(self, run):
        return pretty_json(run.output)

    @admin.display(description="error")
    def error_json(self, run):
        return pretty_json(run.error)


@admin.register(StepAttempt)
class StepAttemptAdmin(RunColumns, ReadOnlyModelAdmin):
    list_display = ("__str__", "workflow_key", "step_id", "item_index", "number", "status", "worker",
                    "started", "finished", "error_type", "tokens_in", "tokens_out", "cost_usd")
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
        ("Timing", {"fields": ("started", "finished", "duration")}),
        ("Data (secrets masked)", {"fields": ("inputs_json", "output_json")}),
        ("Error", {"fields": ("error_type", "error_message", "traceback_text")}),
        ("Usage", {"fields": ("model", "tokens_in", "tokens_out", "cost_usd")}),
    )

    def get_search_results(self, request, queryset, search_term):
        instance_id = as_uuid(search_term.strip())
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
