"""The approval inbox (DESIGN §7.3): the escalations the logged-in user may decide, open ones
first by deadline; on each, the step's resolved inputs, the instance's DAG coloured by status and
the decision forms. Every form is a POST to a console URL that calls the same service as the CLI
and API, so the same permission checks hold here."""
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from dacproject.ids import short_id
from governance.admin import EMPTY, ReadOnlyModelAdmin, ReadOnlyTabularInline, admin_link, pretty_json, status_badge
from governance.notifications.admin import NotificationDeliveryInline
from orchestration.dag import dag_svg
from orchestration.engine.errors import EngineError

from . import selectors, services
from .models import Decision, Escalation
from .permissions import Refused, check_may_decide
from .states import ACKNOWLEDGE, OPEN, REJECT, Gate


class InboxInline(ReadOnlyTabularInline):
    """Shown to whoever may see the escalation (its inbox page decides that)."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


class DecisionInline(InboxInline):
    model = Decision
    fields = ("at", "user_name", "decision", "comment", "shown_sha256")
    show_change_link = False
    verbose_name_plural = "decisions"


class DeliveryInline(InboxInline, NotificationDeliveryInline):
    pass


class WorkflowFilter(admin.SimpleListFilter):
    title = "workflow"
    parameter_name = "workflow"

    def lookups(self, request, model_admin):
        visible = selectors.decidable_by(request.user, Escalation.objects.all())
        names = visible.order_by("workflow").values_list("workflow", flat=True).distinct()[:100]
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(workflow=self.value()) if self.value() else queryset


class EscalationAdmin(ReadOnlyModelAdmin):
    list_display = ("title_link", "status_pill", "level", "type", "workflow", "instance_link", "step_id",
                    "deadline", "approvals", "assignee", "created_at")
    list_display_links = None
    list_filter = ("status", "level", "type", WorkflowFilter)
    search_fields = ("title", "workflow", "step_id", "=id")
    list_per_page = 50
    list_deferred_fields = ("context", "description")
    fieldsets = (
        (None, {"fields": ("title", "status_pill", "level", "type", "workflow", "instance_link", "step_id",
                           "description")}),
        ("Who decides", {"fields": ("approvers", "min_approvals", "assignee", "options", "deadline",
                                    "timeout_action", "escalate_to", "previous")}),
        ("Outcome", {"fields": ("resolution", "resolved_by", "resolved_at", "closed_reason", "created_at")}),
    )
    inlines = (DecisionInline, DeliveryInline)

    # Any active staff user has an inbox; what it lists is what they may decide.
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def get_queryset(self, request):
        # Annotated before any ordering: the inbox orders by the annotation.
        query = selectors.with_open_first(selectors.escalations_query().select_related("instance"))
        return selectors.decidable_by(request.user, query)

    def get_ordering(self, request):
        return selectors.INBOX_ORDER  # open ones first, soonest deadline first

    @admin.display(description="escalation", ordering="title")
    def title_link(self, escalation):
        url = reverse("admin:governance_escalation_change", args=[escalation.id])
        return format_html('<a href="{}">{}</a>', url, escalation.title)

    @admin.display(description="status", ordering="status")
    def status_pill(self, escalation):
        label = escalation.resolution if escalation.resolution else escalation.status
        return status_badge(_colour_of(escalation), label)

    @admin.display(description="instance")
    def instance_link(self, escalation):
        if not escalation.instance_id:
            return EMPTY
        return admin_link("admin:orchestration_workflowinstance_change", [escalation.instance_id],
                          short_id(escalation.instance_id))

    @admin.display(description="approvals")
    def approvals(self, escalation):
        if escalation.gate == Gate.NONE:
            return EMPTY
        votes = sum(1 for d in escalation.decisions.all() if d.decision not in (REJECT, ACKNOWLEDGE))
        return f"{votes}/{escalation.min_approvals}"

    def get_urls(self):
        own = [
            path("<uuid:escalation_id>/decide/", self.admin_site.admin_view(self.decide_view),
                 name="governance_escalation_decide"),
            path("<uuid:escalation_id>/assign/", self.admin_site.admin_view(self.assign_view),
                 name="governance_escalation_assign"),
        ]
        return [*own, *super().get_urls()]

    @method_decorator(require_POST)
    def decide_view(self, request, escalation_id):
        """POST decision=approve|reject|acknowledge|<option>, comment."""
        decision = request.POST.get("decision", "")
        comment = request.POST.get("comment", "").strip()
        if decision in (REJECT, "rejected") and not comment:
            messages.error(request, "Give a reason to reject.")
            return self._page(escalation_id)
        try:
            escalation = services.escalation_decide(escalation_id=escalation_id, decision=decision,
                                                    comment=comment, actor=request.user)
        except EngineError as exc:
            messages.error(request, exc.message)
        else:
            outcome = f"resolved: {escalation.resolution}" if escalation.resolution else escalation.status
            messages.success(request, f"Your decision '{decision}' is recorded; the escalation is {outcome}.")
        return self._page(escalation_id)

    @method_decorator(require_POST)
    def assign_view(self, request, escalation_id):
        """POST user, comment: reassign."""
        try:
            services.escalation_assign(escalation_id=escalation_id, user=request.POST.get("user", ""),
                                       comment=request.POST.get("comment", ""), actor=request.user)
        except EngineError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Reassigned to {request.POST.get('user')}.")
        return self._page(escalation_id)

    def _page(self, escalation_id):
        return HttpResponseRedirect(reverse("admin:governance_escalation_change", args=[escalation_id]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._inbox_context(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _inbox_context(self, request, escalation):
        try:
            check_may_decide(request.user, escalation)
            refusal = ""
        except Refused as exc:
            refusal = exc.message
        is_open = escalation.status in OPEN
        options = escalation.options if escalation.gate != Gate.NONE else []
        return {
            "escalation": escalation,
            "may_decide": is_open and not refusal,
            "refusal": refusal if is_open else "",
            "decision_options": options,
            "shown_json": pretty_json(escalation.context),
            "dag_svg": mark_safe(_instance_dag(escalation)),  # dag_svg escapes every label it draws
            "decide_url": reverse("admin:governance_escalation_decide", args=[escalation.id]),
            "assign_url": reverse("admin:governance_escalation_assign", args=[escalation.id]),
            "assignable_users": _assignable(escalation) if is_open and not refusal else [],
            "missing_groups": _missing_groups(escalation),
        }


def _instance_dag(escalation):
    instance = escalation.instance
    if instance is None:
        return ""
    statuses = dict(instance.step_runs.values_list("step_id", "status"))
    return dag_svg(instance.version.spec, statuses)


def _assignable(escalation):
    """Active users of its approver groups (and of escalate_to)."""
    groups = [*escalation.approvers, *escalation.escalate_to]
    users = get_user_model().objects.filter(is_active=True, groups__name__in=groups).distinct()
    return list(users.order_by("username").values_list("username", flat=True)[:200])


def _missing_groups(escalation):
    from django.contrib.auth.models import Group

    named = [*escalation.approvers, *escalation.escalate_to]
    existing = set(Group.objects.filter(name__in=named).values_list("name", flat=True))
    return [g for g in named if g not in existing]


def _colour_of(escalation):
    """Escalation states drawn in the DAG's step colours."""
    if escalation.status in OPEN:
        return "waiting_approval"
    if escalation.resolution in ("rejected",) or escalation.status == "expired":
        return "failed"
    return "completed"


admin.site.register(Escalation, EscalationAdmin)
