"""The Run form of a workflow definition (issue 10, point 5): fields from the context keys the
workflow's templates read, checked as the API checks a run, started by `engine.instance_start`;
bad input shows the error at the field it names and starts nothing."""
import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.urls import reverse

from governance.models import AuditEntry
from orchestration.admin.run import context_inputs
from orchestration.models import WorkflowInstance
from tests.orchestration.test_admin import register

RELEASE = """
id: run-release
priority: high
steps:
  - id: build
    action: echo
    with:
      version: "{{ context.version | default('1.0.0') }}"
      parts: "{{ context.parts | default(3) }}"
      flags: "{{ context.flags | default(['fast']) }}"
      dry_run: "{{ context.dry_run | default(false) }}"
      ticket: "{{ context.ticket }}"
  - id: notify
    action: echo
    depends_on: [build]
    when: "{{ context.channel is defined }}"
    with: {to: "{{ context.channel }}", note: "{{ context['free-text'] | default(none) }}"}
"""

PLACEHOLDER = """
name: run-blueprint
workflows:
  - id: run-placeholder
    type: support
"""


def run_url(key="run-release"):
    return reverse("admin:orchestration_workflowinstance_run", args=[key])


def instances():
    return WorkflowInstance.objects.filter(definition__key="run-release")


@pytest.fixture
def release(db):
    register(RELEASE)


def post(client, **fields):
    data = {"idempotency_key": fields.pop("idempotency_key", ""), "context": fields.pop("context", "{}"),
            "priority": fields.pop("priority", "")}
    data.update({f"context.{key}": value for key, value in fields.items()})
    return client.post(run_url(), data)


def field_errors(response):
    return {name: list(errors) for name, errors in response.context["form"].errors.items()}


# --- the form is generated from what the workflow reads --------------------------------------------

def test_context_inputs_are_the_keys_the_templates_read_with_their_defaults(release):
    from registry.models import WorkflowDefinition

    spec = WorkflowDefinition.objects.get(key="run-release").latest_version.spec
    found = {item.key: item for item in context_inputs(spec)}
    assert list(found) == ["ticket", "channel", "dry_run", "flags", "free-text", "parts", "version"]  # required first
    assert (found["version"].default, found["version"].kind) == ("1.0.0", "text")
    assert (found["parts"].default, found["parts"].kind) == (3, "number")
    assert (found["flags"].default, found["flags"].kind) == (["fast"], "json")
    assert (found["dry_run"].default, found["dry_run"].kind) == (False, "boolean")
    assert found["ticket"].required  # read without a default: the first step would fail without it
    assert not found["channel"].required  # read behind `is defined` somewhere
    assert not found["free-text"].required and found["free-text"].kind == "any"
    assert not any(item.required for key, item in found.items() if key != "ticket")
    assert context_inputs({}) == [] and context_inputs({"steps": [{"id": "a", "with": {"x": "{{ oops"}}]}) == []


def test_the_form_shows_a_field_per_context_key_and_the_priority(admin_client, release):
    response = admin_client.get(run_url())
    assert response.status_code == 200
    content = response.content.decode()
    for key in ("version", "parts", "flags", "dry_run", "ticket", "channel", "free-text"):
        assert f'name="context.{key}"' in content
    assert 'placeholder="1.0.0"' in content and 'placeholder="3"' in content
    assert "default 3" in content and "required: the workflow reads it without a default" in content
    assert 'name="priority"' in content and "the workflow&#x27;s (high)" in content
    assert 'name="context"' in content and 'name="idempotency_key"' in content
    assert "Run run-release" in content


# --- starting ------------------------------------------------------------------------------------

def test_a_valid_form_starts_an_instance_and_opens_its_page(admin_client, admin_user, release):
    response = post(admin_client, version="2.1.0", parts="5", flags='["slow", "safe"]', dry_run="true",
                    ticket="T-9", context='{"extra": {"a": 1}, "parts": 99}', priority="critical")
    instance = instances().get()
    assert response.status_code == 302
    assert response.url == reverse("admin:orchestration_workflowinstance_change", args=[instance.id])
    assert instance.context == {"extra": {"a": 1}, "parts": 5, "version": "2.1.0", "flags": ["slow", "safe"],
                                "dry_run": True, "ticket": "T-9"}  # the fields win over the JSON box
    assert instance.priority == 9 and instance.created_by == admin_user
    assert instance.trigger == {"type": "manual"}
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(f"instance {instance.id}" in m and "Started run-release" in m for m in messages)
    assert AuditEntry.objects.get(verb="instance.start", target_id=str(instance.id)).actor_name == admin_user.username


def test_blank_fields_leave_the_workflows_defaults_and_priority(admin_client, release):
    post(admin_client, ticket="T-1", version="", parts="")
    instance = instances().get()
    assert instance.context == {"ticket": "T-1"}
    assert instance.priority == 7  # the workflow's own: high


def test_a_text_field_keeps_text_that_looks_like_json(admin_client, release):
    post(admin_client, ticket="42", version="2", channel="#ops")
    # `ticket` and `channel` have no default: JSON if they parse, else text (as `dac context set` reads VALUE)
    assert instances().get().context == {"ticket": 42, "version": "2", "channel": "#ops"}


@pytest.mark.parametrize("fields,field,message", [
    ({"ticket": "T-1", "parts": "many"}, "context.parts", "must be a number"),
    ({"ticket": "T-1", "parts": "true"}, "context.parts", "must be a number"),
    ({"ticket": "T-1", "flags": "fast"}, "context.flags", "must be JSON"),
    ({"ticket": "T-1", "flags": '{"a": 1}'}, "context.flags", "must be a JSON list"),
    ({"ticket": "T-1", "dry_run": "maybe"}, "context.dry_run", "Select a valid choice"),
    ({}, "context.ticket", "This field is required"),
    ({"ticket": "T-1", "context": "[1, 2]"}, "context", "must be a JSON object"),
    ({"ticket": "T-1", "context": "{nope"}, "context", "not valid JSON"),
    ({"ticket": "T-1", "priority": "urgent"}, "priority", "Select a valid choice"),
    ({"ticket": "T-1", "context": '{"x": "a\\u0000b"}'}, "context", "context.x"),
])
def test_bad_input_shows_the_error_at_its_field_and_starts_nothing(admin_client, release, fields, field, message):
    audit_before = AuditEntry.objects.count()
    response = post(admin_client, **fields)
    assert response.status_code == 200
    errors = field_errors(response)
    assert field in errors and any(message in e for e in errors[field]), errors
    content = response.content.decode()
    assert "nothing was started" in content and message.split(" ")[0] in content
    assert not instances().exists()
    assert AuditEntry.objects.count() == audit_before


def test_resubmitting_the_same_form_starts_one_instance(admin_client, release):
    first = post(admin_client, ticket="T-1", idempotency_key="run-form-key-1")
    again = post(admin_client, ticket="T-1", idempotency_key="run-form-key-1")
    assert instances().count() == 1
    assert first.url == again.url


def test_a_workflow_without_steps_cannot_be_started(admin_client, db):
    from tests.support.helpers import apply_yaml

    apply_yaml(PLACEHOLDER)
    page = admin_client.get(run_url("run-placeholder")).content.decode()
    assert "cannot be started" in page and "disabled" in page
    response = admin_client.post(run_url("run-placeholder"), {"context": "{}", "priority": ""})
    assert response.status_code == 200
    assert any("has no steps" in e for e in field_errors(response)["__all__"])
    assert not WorkflowInstance.objects.exists()


def test_an_unknown_workflow_is_a_404(admin_client, db):
    assert admin_client.get(run_url("no-such-flow")).status_code == 404


def test_only_staff_who_may_start_instances_get_the_form(client, release):
    user = User.objects.create_user("runner", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_workflowdefinition"))
    client.force_login(user)
    assert client.get(run_url()).status_code == 403  # seeing definitions is not starting them
    assert client.post(run_url(), {"context.ticket": "T-1"}).status_code == 403
    assert client.get(run_url("no-such-flow")).status_code == 403  # refused before the lookup: no 404 tells
    user.user_permissions.add(Permission.objects.get(codename="add_workflowinstance"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(run_url()).status_code == 200
    # without the permission to see instances, the start lands back on the definition's page
    response = client.post(run_url(), {"context.ticket": "T-1", "context": "{}", "priority": ""})
    assert response.status_code == 302 and "/registry/workflowdefinition/" in response.url
    assert instances().get().created_by == user
    outsider = User.objects.create_user("outsider", password="pw")
    client.force_login(outsider)
    assert client.get(run_url()).status_code == 302  # to the login page
    assert instances().count() == 1


def test_the_form_is_csrf_protected(admin_user, release):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(run_url(), {"context.ticket": "T-1"}).status_code == 403
    assert not instances().exists()


@pytest.mark.parametrize("typed", ["NaN", "1e999", "-Infinity"])
def test_a_number_json_cannot_store_is_a_field_error_not_a_500(admin_client, release, typed):
    response = admin_client.post(run_url(), {"context.ticket": "T-1", "context": f'{{"x": {typed}}}', "priority": ""})
    assert response.status_code == 200
    assert any("JSON" in e or "range" in e for e in field_errors(response)["context"])
    assert not instances().exists()
