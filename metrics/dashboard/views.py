"""Thin views: each page renders its first data into the HTML (so it draws without waiting for a
request) and names the JSON view it then polls. Staff only, like the admin it sits beside."""
from functools import wraps

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from dacproject.api import error_body
from dacproject.ids import short_id
from orchestration.selectors import instance_get
from registry.selectors import definition_get

from .. import selectors
from .data import instance_live_data, overview_data, workflow_data
from .workflows import workflow_table

DEFAULT_PERIOD = "7d"
# How often the pages ask for fresh data, in milliseconds: an instance's DAG moves in steps of
# milliseconds, the overview's figures in minutes.
POLL_MS = {"instance": 1000, "overview": 5000, "workflow": 10000}


def staff_json(view):
    """Staff only, answering JSON: a page whose session expired gets a 403 it can show, not the
    login page's HTML."""
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not (request.user.is_active and request.user.is_staff):
            return JsonResponse(error_body("not_authenticated", "log in as staff at /admin/"), status=403)
        return view(request, *args, **kwargs)

    return guarded


def _page(request, template, *, data, data_url, poll, **context):
    return render(request, template, {"data": data, "data_url": data_url, "poll_ms": POLL_MS[poll],
                                      "flower_url": settings.DAC_FLOWER_URL, **context})


def _period(request):
    period = request.GET.get("range", DEFAULT_PERIOD)
    return period if period in selectors.RANGES else DEFAULT_PERIOD


@staff_member_required
def overview(request):
    return _page(request, "dashboard/overview.html", data=overview_data(),
                 data_url=reverse("dashboard:overview-data"), poll="overview")


@staff_json
def overview_json(request):
    return JsonResponse(overview_data())


@staff_member_required
def workflows(request):
    return render(request, "dashboard/workflows.html", {"rows": workflow_table(),
                                                        "flower_url": settings.DAC_FLOWER_URL})


@staff_member_required
def workflow(request, key):
    definition = definition_get(key)
    if definition is None:
        raise Http404(f"no workflow '{key}'")
    period = _period(request)
    return _page(request, "dashboard/workflow.html", data=workflow_data(definition, period),
                 data_url=f"{reverse('dashboard:workflow-data', args=[key])}?range={period}", poll="workflow",
                 definition=definition, period=period, periods=list(selectors.RANGES))


@staff_json
def workflow_json(request, key):
    definition = definition_get(key)
    if definition is None:
        return JsonResponse(error_body("not_found", f"no workflow '{key}'"), status=404)
    return JsonResponse(workflow_data(definition, _period(request)))


@staff_member_required
def instance(request, instance_id):
    found = instance_get(instance_id)
    if found is None:
        raise Http404(f"no instance {instance_id}")
    return _page(request, "dashboard/instance.html", data=instance_live_data(found),
                 data_url=reverse("dashboard:instance-data", args=[found.id]), poll="instance", instance=found,
                 short_id=short_id(found.id))


@staff_json
def instance_json(request, instance_id):
    found = instance_get(instance_id)
    if found is None:
        return JsonResponse(error_body("not_found", f"no instance {instance_id}"), status=404)
    return JsonResponse(instance_live_data(found))
