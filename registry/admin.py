"""The registry console: definitions, their versions, agents and blueprints.

Read-only: the registry changes only through `registry.services.definitions_apply` (`dac apply`,
the API), which validates, versions and audits every change.
"""
from django.contrib import admin
from django.db.models import CharField, F, Func
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from governance.admin import EMPTY, ReadOnlyModelAdmin, admin_link, pretty_json
from orchestration.admin.common import ConsoleTabularInline, format_time
from orchestration.dag import dag_svg

from .models import Agent, Blueprint, WorkflowDefinition, WorkflowVersion
from .selectors import definition_accepts_runs


def _drawing(spec):
    # dag_svg escapes every label it draws, so its markup is safe to embed as it is.
    return mark_safe(f'<div class="dac-dag-wrapper">{dag_svg(spec)}</div>')


class TagListFilter(admin.SimpleListFilter):
    """Definitions carrying one tag (the tags are a JSON list on each definition)."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        tags = (
            WorkflowDefinition.objects.annotate(
                tag=Func(F("tags"), function="jsonb_array_elements_text", output_field=CharField())
            )
            .values_list("tag", flat=True)
            .distinct()
            .order_by("tag")
        )
        return [(tag, tag) for tag in tags]

    def queryset(self, request, queryset):
        return queryset.filter(tags__contains=[self.value()]) if self.value() else queryset


def run_url(definition):
    """The console's Run form for a definition (the instance pages' `run/<key>/`)."""
    return reverse("admin:orchestration_workflowinstance_run", args=[definition.key])


class WorkflowVersionInline(ConsoleTabularInline):
    model = WorkflowVersion
    fields = ("version_link", "spec_sha256", "source_file", "created")
    ordering = ("-number",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("spec", "source")

    @admin.display(description="version")
    def version_link(self, version):
        return admin_link("admin:registry_workflowversion_change", [version.pk], f"v{version.number}")

    @admin.display(description="created")
    def created(self, version):
        return format_time(version.created_at)


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(ReadOnlyModelAdmin):
    list_display = ("key", "name", "type", "status", "latest_version_number", "owner", "updated_at", "run_link")
    list_filter = ("type", "status", TagListFilter)
    list_select_related = ("latest_version",)
    list_deferred_fields = ("latest_version__spec", "latest_version__source")
    search_fields = ("key", "name", "description")
    inlines = (WorkflowVersionInline,)
    fieldsets = (
        (None, {"fields": ("run_button", "key", "name", "type", "status", "description", "owner", "tags",
                           "blueprint")}),
        ("Capabilities", {"fields": ("inputs", "outputs", "trigger_types")}),
        ("Latest version", {"fields": ("latest_version_link", "instances_link", "latest_drawing")}),
        ("Times", {"fields": ("created", "updated")}),
    )

    @admin.display(description="created")
    def created(self, definition):
        return format_time(definition.created_at)

    @admin.display(description="updated")
    def updated(self, definition):
        return format_time(definition.updated_at)

    @admin.display(description="run")
    def run_button(self, definition):
        """Starts an instance through the Run form (context fields from the workflow's templates, priority)."""
        if not definition_accepts_runs(definition):
            return "registered without steps: it cannot be started"
        return format_html('<a class="button dac-run-button" href="{}">Run {}…</a>', run_url(definition),
                           definition.key)

    @admin.display(description="")
    def run_link(self, definition):
        if not definition_accepts_runs(definition):
            return ""
        return format_html('<a class="dac-row-action" href="{}" title="start an instance of {}">Run…</a>',
                           run_url(definition), definition.key)

    @admin.display(description="latest version", ordering="latest_version__number")
    def latest_version_number(self, definition):
        return definition.latest_version.number if definition.latest_version_id else EMPTY

    @admin.display(description="latest version")
    def latest_version_link(self, definition):
        if not definition.latest_version_id:
            return EMPTY
        return admin_link("admin:registry_workflowversion_change", [definition.latest_version_id],
                          f"v{definition.latest_version.number} ({definition.latest_version.spec_sha256[:12]})")

    @admin.display(description="instances")
    def instances_link(self, definition):
        url = reverse("admin:orchestration_workflowinstance_changelist")
        return format_html('<a href="{}?definition__id__exact={}">instances of {}</a>', url, definition.pk,
                           definition.key)

    @admin.display(description="graph")
    def latest_drawing(self, definition):
        return _drawing(definition.latest_version.spec) if definition.latest_version_id else EMPTY


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(ReadOnlyModelAdmin):
    list_display = ("__str__", "definition", "number", "short_sha256", "source_file", "created_at")
    list_filter = ("definition__type",)
    list_select_related = ("definition",)
    list_deferred_fields = ("spec", "source", "definition__description")
    search_fields = ("definition__key", "spec_sha256")
    fieldsets = (
        (None, {"fields": ("definition", "number", "spec_sha256", "source_file", "created_at")}),
        ("Graph", {"fields": ("drawing",)}),
        ("Spec (normalised)", {"fields": ("spec_json",)}),
        ("Source", {"fields": ("source_text",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("definition")

    @admin.display(description="sha256", ordering="spec_sha256")
    def short_sha256(self, version):
        return version.spec_sha256[:12]

    @admin.display(description="graph")
    def drawing(self, version):
        return _drawing(version.spec)

    @admin.display(description="spec")
    def spec_json(self, version):
        return pretty_json(version.spec)

    @admin.display(description="source")
    def source_text(self, version):
        return format_html('<pre class="dac-json">{}</pre>', version.source) if version.source else EMPTY


@admin.register(Agent)
class AgentAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "type", "risk", "capability_names", "updated_at")
    list_filter = ("type", "risk")
    search_fields = ("name", "description")
    fields = ("name", "type", "risk", "description", "capabilities_json", "created_at", "updated_at")

    @admin.display(description="capabilities")
    def capability_names(self, agent):
        return ", ".join(sorted(agent.capabilities or {}))

    @admin.display(description="capabilities")
    def capabilities_json(self, agent):
        return pretty_json(agent.capabilities)


@admin.register(Blueprint)
class BlueprintAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "description", "short_sha256", "updated_at")
    list_deferred_fields = ("spec",)
    search_fields = ("name", "description")
    fields = ("name", "description", "spec_sha256", "created_at", "updated_at", "spec_json")

    @admin.display(description="sha256", ordering="spec_sha256")
    def short_sha256(self, blueprint):
        return blueprint.spec_sha256[:12]

    @admin.display(description="spec")
    def spec_json(self, blueprint):
        return pretty_json(blueprint.spec)
