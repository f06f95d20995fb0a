"""The registry console: definitions, versions, agents and blueprints are viewable, never edited there."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import services as registry
from registry.models import Agent, Blueprint, WorkflowDefinition, WorkflowVersion

BLUEPRINT = """
name: console-blueprint
description: a blueprint for the console
agents:
  - name: console-agent
    type: RULE
    riskLevel: AUTO
    capabilities:
      - name: check
        action: noop
workflows:
  - id: console-review
    name: Console review
    type: development
    description: reviews pull requests for the console
    owner: platform-team
    tags: [core, review]
    steps:
      - {id: fetch, action: noop}
      - {id: review, action: noop, depends_on: [fetch]}
  - id: console-report
    type: operations
    tags: [reporting]
    steps:
      - {id: only, action: noop}
  - id: console-placeholder
    type: support
"""

CHANGELIST = "admin:registry_workflowdefinition_changelist"


def apply(text):
    compiled = registry.compile_source(text, file="console.yaml")
    return registry.definitions_apply(compiled=compiled, actor="test")


def workflow(key, *, type="data", tags=(), steps=1):
    lines = [f"id: {key}", f"type: {type}", f"tags: [{', '.join(tags)}]", "steps:"]
    lines += [f"  - {{id: s{i}, action: noop}}" for i in range(steps)]
    return "\n".join(lines) + "\n"


def keys_listed(response):
    content = response.content.decode()
    return {d.key for d in WorkflowDefinition.objects.all() if f">{d.key}</a>" in content}


@pytest.fixture
def applied(db):
    apply(BLUEPRINT)


def test_definition_changelist_shows_columns_filters_and_search(admin_client, applied):
    url = reverse(CHANGELIST)
    response = admin_client.get(url)
    assert response.status_code == 200
    content = response.content.decode()
    assert keys_listed(response) == {"console-review", "console-report", "console-placeholder"}
    assert "Console review" in content and "platform-team" in content and "registered" in content
    assert '<td class="field-latest_version_number">1</td>' in content

    assert keys_listed(admin_client.get(url, {"type": "operations"})) == {"console-report"}
    assert keys_listed(admin_client.get(url, {"status": "registered"})) == {"console-placeholder"}
    assert keys_listed(admin_client.get(url, {"tag": "review"})) == {"console-review"}
    assert "reporting" in content  # the tag filter offers every tag
    assert keys_listed(admin_client.get(url, {"q": "pull requests"})) == {"console-review"}
    assert keys_listed(admin_client.get(url, {"q": "console-rep"})) == {"console-report"}


def test_definition_changelist_query_count_does_not_grow_with_rows(admin_client, applied,
                                                                   django_assert_num_queries):
    url = reverse(CHANGELIST)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as with_3:
        admin_client.get(url)
    for i in range(20):
        apply(workflow(f"bulk-{i}", tags=[f"t{i}"]))
    with django_assert_num_queries(len(with_3)):
        response = admin_client.get(url)
    assert len(keys_listed(response)) == 23


def test_version_changelist_has_no_n_plus_one(admin_client, applied, django_assert_num_queries):
    url = reverse("admin:registry_workflowversion_changelist")
    admin_client.get(url)
    with CaptureQueriesContext(connection) as before:
        admin_client.get(url)
    for i in range(10):
        apply(workflow(f"bulk-{i}"))
        apply(workflow(f"bulk-{i}", steps=2))  # a second version
    with django_assert_num_queries(len(before)):
        assert admin_client.get(url).status_code == 200


def test_definition_page_lists_versions_and_draws_the_latest(admin_client, applied):
    apply(BLUEPRINT.replace("{id: review, action: noop, depends_on: [fetch]}",
                            "{id: review, action: echo, depends_on: [fetch]}"))
    definition = WorkflowDefinition.objects.get(key="console-review")
    assert definition.latest_version.number == 2
    response = admin_client.get(reverse("admin:registry_workflowdefinition_change", args=[definition.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    for version in definition.versions.all():
        assert version.spec_sha256 in content
    assert "<svg" in content and 'data-step="fetch"' in content and 'data-step="review"' in content
    assert reverse("admin:registry_workflowversion_change", args=[definition.latest_version_id]) in content
    assert f"definition__id__exact={definition.pk}" in content
    assert 'name="_save"' not in content

    placeholder = WorkflowDefinition.objects.get(key="console-placeholder")
    response = admin_client.get(reverse("admin:registry_workflowdefinition_change", args=[placeholder.pk]))
    assert response.status_code == 200 and "no steps" in response.content.decode()


def test_version_page_shows_the_spec_as_pretty_json(admin_client, applied):
    version = WorkflowVersion.objects.get(definition__key="console-review")
    response = admin_client.get(reverse("admin:registry_workflowversion_change", args=[version.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert version.spec_sha256 in content
    assert "&quot;depends_on&quot;: [\n" in content  # indented JSON
    assert "<svg" in content
    assert 'name="_save"' not in content


def test_agent_and_blueprint_pages_render(admin_client, applied):
    agent = Agent.objects.get(name="console-agent")
    blueprint = Blueprint.objects.get(name="console-blueprint")
    listing = admin_client.get(reverse("admin:registry_agent_changelist"), {"type": "RULE"})
    assert listing.status_code == 200 and "console-agent" in listing.content.decode()
    assert "check" in listing.content.decode()
    agent_page = admin_client.get(reverse("admin:registry_agent_change", args=[agent.pk])).content.decode()
    assert "&quot;action&quot;: &quot;noop&quot;" in agent_page
    blueprints = admin_client.get(reverse("admin:registry_blueprint_changelist"), {"q": "console"})
    assert "console-blueprint" in blueprints.content.decode()
    blueprint_page = admin_client.get(reverse("admin:registry_blueprint_change", args=[blueprint.pk]))
    assert blueprint_page.status_code == 200
    assert "&quot;name&quot;: &quot;console-blueprint&quot;" in blueprint_page.content.decode()


@pytest.mark.parametrize("model", ["workflowdefinition", "workflowversion", "agent", "blueprint"])
def test_registry_rows_cannot_be_added_changed_or_deleted_in_the_console(admin_client, applied, model):
    obj = {"workflowdefinition": WorkflowDefinition, "workflowversion": WorkflowVersion, "agent": Agent,
           "blueprint": Blueprint}[model].objects.first()
    assert admin_client.get(reverse(f"admin:registry_{model}_add")).status_code == 403
    assert admin_client.get(reverse(f"admin:registry_{model}_delete", args=[obj.pk])).status_code == 403
    assert admin_client.post(reverse(f"admin:registry_{model}_change", args=[obj.pk]),
                             {"name": "renamed"}).status_code == 403
    changelist = admin_client.get(reverse(f"admin:registry_{model}_changelist")).content.decode()
    assert 'value="delete_selected"' not in changelist


def test_a_non_staff_user_is_sent_to_login(client, applied, django_user_model):
    client.force_login(django_user_model.objects.create_user("outsider", password="pw"))
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))


# --- issue 10, point 5: a Run button; version rows without Django's header line -----------------------

def test_a_startable_definition_has_a_run_button_and_a_row_action(admin_client, applied):
    review = WorkflowDefinition.objects.get(key="console-review")
    run_url = reverse("admin:orchestration_workflowinstance_run", args=["console-review"])
    page = admin_client.get(reverse("admin:registry_workflowdefinition_change", args=[review.pk])).content.decode()
    assert f'<a class="button dac-run-button" href="{run_url}">Run console-review\u2026</a>' in page
    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f'href="{run_url}"' in listing
    # a definition registered without steps offers no Run
    placeholder = WorkflowDefinition.objects.get(key="console-placeholder")
    page = admin_client.get(reverse("admin:registry_workflowdefinition_change", args=[placeholder.pk]))
    assert "dac-run-button" not in page.content.decode() and "cannot be started" in page.content.decode()
    assert reverse("admin:orchestration_workflowinstance_run", args=["console-placeholder"]) not in listing
    assert admin_client.get(run_url).status_code == 200


def test_version_rows_link_their_version_without_a_header_line(admin_client, applied):
    definition = WorkflowDefinition.objects.get(key="console-review")
    version = definition.latest_version
    page = admin_client.get(reverse("admin:registry_workflowdefinition_change", args=[definition.pk])).content.decode()
    inline = page[page.index('id="versions-group"'):]
    assert f'<a href="{reverse("admin:registry_workflowversion_change", args=[version.pk])}">v1</a>' in inline
    assert "inlineviewlink" not in inline and "has_original" not in inline
    assert str(version) not in inline  # Django's "<definition> v1 View" line above the row
