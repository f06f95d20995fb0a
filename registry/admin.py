"""The registry console: definitions, their versions, agents and blueprints.

Read-only: the registry changes only through `registry.services.definitions_apply` (`dac apply`,
the API), which validates, versions and audits every change.
"""
from django.contrib import admin
from django.db.models import CharField, F, Func
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from governance.admin import EMPTY, ReadOnlyModelAdmin, ReadOnlyTabularInline, admin_link, pretty_json
from orchestration.dag import dag_svg

from .models import Agent, Blueprint, WorkflowDefinition, WorkflowVersion


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


class WorkflowVersionInline(ReadOnlyTabularInline):
    model = WorkflowVersion
    fields = ("number", "spec_sha256", "source_file", "created_at")
    ordering = ("-number",)

    def get_queryset(self, request):
        # Each row is labelled with str(version), which reads the definition's key.
        return super().get_queryset(request).select_related("definition").defer("spec", "source")


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(ReadOnlyModelAdmin):
    list_display = ("key", "name", "type", "status", "latest_version_number", "owner", "updated_at")
    list_filter = ("type", "status", TagListFilter)
    list_select_related = ("latest_version",)
    list_deferred_fields = ("latest_version__spec", "latest_version__source")
    search_fields = ("key", "name", "description")
    inlines = (WorkflowVersionInline,)
    fieldsets = (
        (None, {"fields": ("key", "name", "type", "status", "description", "owner", "tags", "blueprint")}),
        ("Capabilities", {"fields": ("inputs", "outputs", "trigger_types")}),
        ("Latest version", {"fields": ("latest_version_link", "instances_link", "latest_drawing")}),
        ("Times", {"fields": ("created_at", "updated_at")}),
    )

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
