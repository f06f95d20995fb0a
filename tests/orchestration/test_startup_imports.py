"""Start-up stays light (issue 10.9): a fast CLI verb's Django start imports none of the heavy
modules it does not need. A regression guard on what is imported, not a timing test."""
import json
import os
import subprocess
import sys

import pytest
from django.contrib import admin

from tests.conftest import ROOT, _database_url

# Made lazy: the API and its serializers (DRF, drf-spectacular), the spec compiler (jsonschema,
# jinja2), the engine, HTTP and Redis clients, the action modules, the console's admin modules.
HEAVY = (
    "dacproject.urls", "rest_framework.serializers", "rest_framework.views", "drf_spectacular.openapi",
    "registry.spec", "jsonschema", "jinja2", "orchestration.engine", "requests", "redis",
    "orchestration.actions.builtins", "governance.admin", "orchestration.admin", "registry.admin",
)
MARK = "LOADED-MODULES:"


def run_python(code, **env):
    """`code` in a fresh interpreter against the test database; its MARK line, parsed."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "dacproject.settings", "DATABASE_URL": _database_url(), **env})
    marked = [line for line in result.stderr.splitlines() if line.startswith(MARK)]
    return result, (json.loads(marked[-1][len(MARK):]) if marked else None)


def loaded_after_verb(argv, **env):
    code = f"""
import sys
from django.core.management import execute_from_command_line
execute_from_command_line({["manage.py", *argv]!r})
print({MARK!r} + __import__("json").dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)
"""
    return run_python(code, **env)


@pytest.mark.parametrize("argv", [["version"], ["dac", "status"], ["dac", "status", "--json"], ["dac", "events"],
                                  ["dac", "escalations"]])
def test_fast_verbs_import_no_heavy_module(django_db_setup, argv):
    result, loaded = loaded_after_verb(argv)
    assert result.returncode == 0, result.stderr
    assert loaded == []


def test_dac_still_runs_the_projects_settings_checks(django_db_setup):
    result, _ = loaded_after_verb(["dac", "status"], DAC_MAX_RUNNING_PER_TYPE="nonsense=1")
    assert result.returncode != 0
    assert "dac.DAC_MAX_RUNNING_PER_TYPE" in result.stderr


def test_actions_load_on_the_first_lookup():
    code = f"""
import sys, django
django.setup()
from orchestration.actions import registry
before = "orchestration.actions.builtins" in sys.modules
known = registry.is_known("noop") and registry.is_known("context.set")
print({MARK!r} + __import__("json").dumps([before, known]), file=sys.stderr)
"""
    result, loaded = run_python(code)
    assert result.returncode == 0, result.stderr
    assert loaded == [False, True]  # not at start-up; there on the first lookup


def test_a_worker_loads_the_actions_as_it_starts_and_a_broken_action_module_stops_it():
    code = f"""
import sys
from dacproject.celery import app
app.loader.import_default_modules()  # what a worker does as it starts (Django's set-up included)
print({MARK!r} + __import__("json").dumps(["orchestration.actions.builtins" in sys.modules]), file=sys.stderr)
"""
    result, loaded = run_python(code)
    assert result.returncode == 0, result.stderr
    assert loaded == [True]
    result, loaded = run_python(code, DAC_ACTION_MODULES="orchestration.actions.builtins,no_such_actions")
    assert result.returncode != 0 and loaded is None
    assert "No module named 'no_such_actions'" in result.stderr


def test_the_console_registers_every_admin_module_on_first_use():
    from django.contrib.auth.models import User

    from governance.escalations.models import Escalation
    from orchestration.models import WorkflowInstance
    from registry.models import WorkflowDefinition

    for model in (Escalation, WorkflowInstance, WorkflowDefinition, User):
        assert admin.site.is_registered(model), model


def test_admin_modules_imported_before_the_console_is_used_do_not_break_its_discovery():
    code = f"""
import sys, django
django.setup()
import registry.admin  # registers a part of the console (with the governance pages it imports) first
from django.contrib import admin
from django.urls import reverse
from orchestration.models import WorkflowInstance
reverse("admin:index")  # the URLconf builds the console's URLs
print({MARK!r} + __import__("json").dumps([admin.site.is_registered(WorkflowInstance),
                                            "orchestration.admin" in sys.modules]), file=sys.stderr)
"""
    result, loaded = run_python(code)
    assert result.returncode == 0, result.stderr
    assert loaded == [True, True]
