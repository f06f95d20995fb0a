"""The governance policy of a workflow: its blueprint's `governance` and `coordination.escalation`
sections (DESIGN §7.2), and whether a step needs a human.

Policies are cached per process under the registry's change number (registry.changes), which
every `dac apply` bumps after it commits; a worker re-reads PostgreSQL when the number changed,
so a re-applied blueprint's rules hold for the next step everywhere. Without Redis the cache is
bypassed.
"""
from dataclasses import dataclass, field

from django.conf import settings

from registry.changes import registry_version

RULE_KEYS = frozenset({"name", "when", "action"})


@dataclass(frozen=True)
class Policy:
    approval_required: frozenset = frozenset()
    auto_approve: frozenset = frozenset()
    approvers: tuple = ()
    rules: tuple = ()
    escalations: tuple = ()

    @property
    def watches_steps(self):
        """Whether anything but a step's own `approval` can gate it (rules, types or conditions)."""
        return bool(self.approval_required or self.auto_approve or self.rules or self.escalations)


NO_POLICY = Policy()


@dataclass(frozen=True)
class Requirement:
    """What a step's approval gate asks for, after the blueprint's rules."""

    type: str
    level: str = "approval"
    approvers: tuple = ()
    min_approvals: int = 1
    timeout_seconds: float | None = None
    timeout_action: str = "reject"
    escalate_to: tuple = ()
    options: tuple = ("approve", "reject")
    rule: str = ""
    auto_approve: bool = False
    reasons: tuple = field(default=())


def policy_from_blueprint_spec(spec):
    governance = (spec or {}).get("governance") or {}
    coordination = (spec or {}).get("coordination") or {}
    return Policy(
        approval_required=frozenset(governance.get("approval_required") or ()),
        auto_approve=frozenset(governance.get("auto_approve") or ()),
        approvers=tuple(governance.get("approvers") or ()),
        # Entries as `dac apply` normalised them (a spec stored by an older version is skipped).
        rules=tuple(r for r in governance.get("rules") or () if isinstance(r, dict) and RULE_KEYS <= r.keys()),
        escalations=tuple(e for e in coordination.get("escalation") or () if isinstance(e, dict) and "key" in e),
    )


_cache = {"version": None, "policies": {}}


def policy_for_definition(definition_id):
    """The Policy of a workflow definition (NO_POLICY when it belongs to no blueprint)."""
    version = registry_version()
    if version is None:
        return _load(definition_id)
    if version != _cache["version"]:
        _cache["policies"], _cache["version"] = {}, version
    policies = _cache["policies"]
    if definition_id not in policies:
        # Read after the version: a change committed after this read bumps the version again.
        policies[definition_id] = _load(definition_id)
    return policies[definition_id]


_stamped = {}  # (blueprint id, its updated_at) -> Policy
_STAMPED_MAX = 1000


def policy_for_blueprint_stamp(blueprint_id, updated_at):
    """The Policy of the blueprint a definition belonged to when the caller read the definition's
    row (its id and `updated_at`, saved with every change of its spec), in that transaction:
    NO_POLICY without a blueprint. Nothing to ask Redis: the stamp was read with the row the
    caller locked, which is as current as PostgreSQL is."""
    if blueprint_id is None:
        return NO_POLICY
    key = (blueprint_id, updated_at)
    policy = _stamped.get(key)
    if policy is None:
        from registry.models import Blueprint

        spec, stored_at = Blueprint.objects.filter(id=blueprint_id).values_list("spec", "updated_at").first() or (
            None, None)
        policy = policy_from_blueprint_spec(spec) if spec else NO_POLICY
        if stored_at == updated_at:  # a newer spec than the stamp's is used now, not kept under it
            if len(_stamped) >= _STAMPED_MAX:
                _stamped.clear()
            _stamped[key] = policy
    return policy


def _load(definition_id):
    from registry.models import WorkflowDefinition

    spec = WorkflowDefinition.objects.filter(id=definition_id).values_list("blueprint__spec", flat=True).first()
    return policy_from_blueprint_spec(spec) if spec else NO_POLICY


def default_approvers(policy):
    """Approver groups when a gate names none: the blueprint's, else DAC_DEFAULT_APPROVERS."""
    return tuple(policy.approvers) or tuple(settings.DAC_DEFAULT_APPROVERS)
