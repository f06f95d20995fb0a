"""`dac find|match|suggest-chain --json` and `workflows/match/`, `workflows/suggest-chain/` (DESIGN §8)."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def dac(*args):
    out = StringIO()
    call_command("dac", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_cli_json_shapes(catalog):
    found = json.loads(dac("find", "--output", "deployment", "--type", "operations", "--json"))
    assert [w["id"] for w in found["workflows"]] == ["deploy", "fast-deploy"]
    assert {"id", "name", "type", "inputs", "outputs", "tags", "triggers", "version"} <= set(found["workflows"][0])
    matches = json.loads(dac("match", "customer", "ticket", "--json"))["matches"]
    assert [set(m) for m in matches] == [{"workflow", "score", "why"}]
    assert matches[0]["workflow"] == "support-triage"
    chains = json.loads(dac("suggest-chain", "--inputs", "pull_request, ticket", "--goal", "deployment", "--json"))
    assert [c["workflows"] for c in chains["chains"]] == [["fast-deploy"], ["build", "code-review", "deploy"]]


def test_cli_human_text_and_errors(catalog):
    assert "fast-deploy -> " not in dac("suggest-chain", "--inputs", "pull_request", "--goal", "deployment")
    assert dac("suggest-chain", "--inputs", "pull_request", "--goal", "deployment").splitlines()[0] == \
        "fast-deploy  (produces deployment)"
    assert dac("find", "--tag", "nothing") == "no workflows found\n"
    assert dac("match", "ticket").startswith("  ")
    with pytest.raises(CommandError, match="give the task"):
        dac("match", " ")


def test_api_match_and_suggest_chain(catalog, api):
    response = api.get("/api/v1/workflows/match/", {"task": "classify a customer ticket"})
    assert response.status_code == 200
    assert response.json()["matches"][0]["workflow"] == "support-triage"
    response = api.post("/api/v1/workflows/suggest-chain/", {"inputs": ["pull_request"], "goal": "deployment"},
                        format="json")
    assert response.status_code == 200
    assert response.json() == {"chains": [
        {"workflows": ["fast-deploy"], "produces": ["deployment"]},
        {"workflows": ["build", "code-review", "deploy"],
         "produces": ["build_artifact", "review_report", "deployment"]},
    ]}


@pytest.mark.parametrize("method, url, body, field", [
    ("get", "/api/v1/workflows/match/", {}, "task"),
    ("get", "/api/v1/workflows/match/", {"task": "   "}, "task"),
    ("get", "/api/v1/workflows/match/", {"task": "x" * 1001}, "task"),
    ("post", "/api/v1/workflows/suggest-chain/", {"inputs": ["a"]}, "goal"),
    ("post", "/api/v1/workflows/suggest-chain/", {"inputs": "a", "goal": "b"}, "inputs"),
    ("post", "/api/v1/workflows/suggest-chain/", {"inputs": [{"x": 1}], "goal": "b"}, "inputs"),
])
def test_api_bad_input_is_a_400_naming_the_field(api, method, url, body, field):
    response = getattr(api, method)(url, body, **({"format": "json"} if method == "post" else {}))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["details"]
