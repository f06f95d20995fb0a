"""`POST /api/v1/instances/spawn/` (DESIGN §6.3): ad-hoc parallel groups and pipelines."""
import json

import pytest

from orchestration.models import StepRun
from registry.models import WorkflowDefinition
from tests.support.helpers import apply_spec


@pytest.fixture
def children(db):
    apply_spec({"id": "kid-a", "steps": [{"id": "s", "action": "echo", "with": {"x": "{{ context.x }}"}}]})
    apply_spec({"id": "kid-b", "steps": [{"id": "s", "action": "echo", "with": {"got": "{{ context.input }}"}}]})


def spawn(api, body):
    return api.post("/api/v1/instances/spawn/", data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("mode", ["parallel", "pipeline"])
def test_a_group_builds_and_starts_a_parent_of_spawn_steps(api, children, mode):
    response = spawn(api, {"mode": mode, "children": [{"workflow": "kid-a", "context": {"x": 1}},
                                                      {"workflow": "kid-b"}], "context": {"ticket": 9}})
    assert response.status_code == 201, response.content
    parent = response.json()
    assert parent["workflow"].startswith(f"spawn-{mode}-") and parent["status"] in ("running", "waiting")
    assert [s["step_id"] for s in parent["steps"]] == ["child_0", "child_1"]
    statuses = dict(StepRun.objects.filter(instance_id=parent["id"]).values_list("step_id", "status"))
    assert statuses["child_0"] == "ready"
    assert statuses["child_1"] == ("ready" if mode == "parallel" else "pending")
    # The same shape again reuses its definition.
    spawn(api, {"mode": mode, "children": [{"workflow": "kid-a"}, {"workflow": "kid-b", "context": {"y": 2}}]})
    assert WorkflowDefinition.objects.filter(key__startswith=f"spawn-{mode}-").count() == 1


@pytest.mark.parametrize("body, status, text", [
    ({"mode": "swarm", "children": [{"workflow": "kid-a"}]}, 400, "mode"),
    ({"mode": "parallel", "children": []}, 400, "children"),
    ({"mode": "parallel", "children": [{"workflow": "kid-a"}, {"workflow": "nobody"}]}, 404,
     "children[1].workflow: workflow 'nobody' is not registered"),
    ({"mode": "parallel", "children": [{"workflow": "kid-a", "context": [1]}]}, 400, "context"),
])
def test_bad_groups_are_4xx_and_start_nothing(api, children, body, status, text):
    response = spawn(api, body)
    assert response.status_code == status
    assert text in json.dumps(response.json()["error"])
    assert not WorkflowDefinition.objects.filter(key__startswith="spawn-").exists()
