"""Shared fixtures for registry tests: row counts, and a registry that is not empty."""
import pytest

from governance.models import AuditEntry
from registry.models import Agent, Blueprint, WorkflowDefinition, WorkflowVersion
from tests.support.helpers import apply_yaml

COUNTED = (WorkflowDefinition, WorkflowVersion, Agent, Blueprint, AuditEntry)

BASELINE = """
name: baseline
agents:
  - name: baseline-agent
    type: RULE
    riskLevel: AUTO
    capabilities:
      - name: check
        action: noop
workflows:
  - id: existing-flow
    steps:
      - {id: only, action: noop}
"""


def row_counts():
    return {model.__name__: model.objects.count() for model in COUNTED}


@pytest.fixture
def baseline(db):
    """A registry holding one blueprint, one agent and one workflow (so 'nothing changed' is not 0 == 0)."""
    apply_yaml(BASELINE)
    counts = row_counts()
    assert all(counts.values()), counts
    return counts
