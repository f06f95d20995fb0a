"""The trigger index: `dac apply` keeps one `Trigger` row per event or webhook trigger of each
workflow's latest version and per blueprint `auto_spawn` rule, and one beat `PeriodicTask` per
scheduled trigger (`schedules`), all in the apply's transaction (DESIGN §3: a new version
replaces its rules, schedules and triggers as one change). Only differences are written, so
re-applying an unchanged file changes nothing.
"""
from django.db import IntegrityError, transaction

from registry.models import WorkflowDefinition
from registry.spec import SpecError, SpecInvalid

from . import schedules
from .models import Trigger, TriggerKind
from .publish import listeners_changed


def workflow_trigger_key(workflow, index):
    return f"{workflow}:triggers[{index}]"


def auto_spawn_key(blueprint, index):
    return f"{blueprint}:auto_spawn[{index}]"


def on_definitions_applied(sender, *, compiled, blueprint, **_):
    transaction.on_commit(listeners_changed)  # publishers re-read which event types start something
    keys = [doc.spec["id"] for doc in compiled.workflows]
    definitions = {d.key: d for d in WorkflowDefinition.objects.filter(key__in=keys).select_related("latest_version")}
    for doc in compiled.workflows:
        definition = definitions[doc.spec["id"]]
        try:
            with transaction.atomic():
                triggers_sync(definition, definition.latest_version.spec)
        except IntegrityError:  # validation saw the path free; a concurrent apply took it since
            raise SpecInvalid([SpecError(doc.file, None, "triggers", "a webhook path of this workflow was just "
                                                                     "registered by another workflow",
                                         doc.spec["id"])]) from None
        schedules.schedules_sync(definition, definition.latest_version.spec)
    if blueprint is not None:
        auto_spawn_sync(blueprint, compiled.blueprint["coordination"].get("auto_spawn") or [])


def _event_spec(trigger):
    return {"filters": trigger.get("filters") or {}, "context": trigger.get("context") or {},
            "priority": trigger.get("priority"), "debounce": trigger.get("debounce"), "source": "trigger"}


def triggers_sync(definition, spec):
    desired = {}
    for index, trigger in enumerate(spec.get("triggers") or []):
        key = workflow_trigger_key(definition.key, index)
        if trigger["type"] == "event":
            desired[key] = {"kind": TriggerKind.EVENT, "event_type": trigger["event"], "path": "",
                            "spec": _event_spec(trigger)}
        elif trigger["type"] == "webhook":
            desired[key] = {"kind": TriggerKind.WEBHOOK, "event_type": "", "path": trigger["path"],
                            "spec": {"secret": trigger["secret"], "context": trigger.get("context") or {}}}
    _sync(Trigger.objects.filter(workflow=definition, blueprint__isnull=True), desired, workflow=definition)


def auto_spawn_sync(blueprint, rules):
    targets = WorkflowDefinition.objects.in_bulk([r["spawn"] for r in rules], field_name="key")
    desired = {}
    for index, rule in enumerate(rules):
        spec = {**_event_spec(rule), "priority": rule.get("priority"), "source": "auto_spawn"}
        desired[auto_spawn_key(blueprint.name, index)] = {
            "kind": TriggerKind.EVENT, "event_type": rule["on_event"], "path": "", "spec": spec,
            "workflow": targets[rule["spawn"]]}
    _sync(Trigger.objects.filter(blueprint=blueprint), desired, blueprint=blueprint)


def _sync(existing_rows, desired, **owner):
    existing = {t.key: t for t in existing_rows}
    Trigger.objects.filter(pk__in=[t.pk for key, t in existing.items() if key not in desired]).delete()
    for key, fields in desired.items():
        fields = {**owner, **fields}
        row = existing.get(key)
        if row is None:
            Trigger.objects.update_or_create(key=key, defaults=fields)
        elif any(getattr(row, name) != value for name, value in fields.items()):
            for name, value in fields.items():
                setattr(row, name, value)
            row.save()
