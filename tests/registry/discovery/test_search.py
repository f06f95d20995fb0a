"""`workflows_find` (capability search) and chains from inputs to a goal."""
import pytest

from registry.discovery.chains import suggest_chains
from registry.discovery.corpus import Candidate
from registry.discovery.search import workflows_find
from registry.serializers import WorkflowSerializer


@pytest.mark.parametrize("filters, expected", [
    ({"input": "pull_request"}, ["build", "code-review", "fast-deploy"]),
    ({"output": "deployment"}, ["deploy", "fast-deploy"]),
    ({"input": "pull_request", "output": "deployment"}, ["fast-deploy"]),
    ({"type": "operations", "tag": "release"}, ["deploy"]),
    ({"trigger": "event"}, ["code-review"]),
    ({"tag": "nothing"}, []),
])
def test_find_filters_combine(catalog, filters, expected):
    assert [d.key for d in workflows_find(**filters)] == expected


def test_find_is_one_query_however_many_match(catalog, django_assert_num_queries):
    with django_assert_num_queries(1):
        items = WorkflowSerializer(workflows_find(input="pull_request"), many=True).data
    assert [[t["event"] for t in i["triggers"]] for i in items if i["id"] == "code-review"] == [["pr_created"]]


def test_chains_come_shortest_first_with_what_they_produce(catalog):
    assert suggest_chains(inputs=["pull_request"], goal="deployment") == [
        {"workflows": ["fast-deploy"], "produces": ["deployment"]},
        {"workflows": ["build", "code-review", "deploy"],
         "produces": ["build_artifact", "review_report", "deployment"]},
    ]
    assert suggest_chains(inputs=["pull_request"], goal="deployment", limit=1) == [
        {"workflows": ["fast-deploy"], "produces": ["deployment"]}]


def test_unreachable_or_already_available_goals_give_no_chain(catalog):
    assert suggest_chains(inputs=["ticket"], goal="deployment") == []
    assert suggest_chains(inputs=["pull_request"], goal="invoice") == []
    assert suggest_chains(inputs=["deployment"], goal="deployment") == []


def test_chains_skip_workflows_that_add_nothing_toward_the_goal():
    corpus = [Candidate("a-noise", inputs=("x",), outputs=("noise",)),
              Candidate("b-step", inputs=("x",), outputs=("y",)),
              Candidate("c-goal", inputs=("y",), outputs=("goal",)),
              Candidate("d-loop", inputs=("y",), outputs=("x",))]
    assert suggest_chains(inputs=["x"], goal="goal", corpus=corpus) == [
        {"workflows": ["b-step", "c-goal"], "produces": ["y", "goal"]}]
