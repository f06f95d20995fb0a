"""Lineage (`instances/{id}/lineage/`): how one outside stimulus spread, as a tree over the
instance's whole correlation id (DESIGN §6.1): events, the instances they started or resumed,
the events those emitted, the children they spawned and their escalations.

Read in a fixed number of queries, each capped, and assembled in Python: the size of the
correlation changes how long the lists are, never how many queries run.

It is a tree although causality is a graph: each instance sits once, under its parent if it was
spawned, else under the event that started it; an event that resumed a waiting step points at
that instance with a leaf `{"kind": "instance", "resumed_step", ...}` (no subtree).
Engine lifecycle events (`workflow.*`, `step.*`, ...) that started and resumed nothing are left
out: every instance emits several, and they carry no cause.
"""
from collections import defaultdict, deque

from django.db.models import Exists, OuterRef, Q
from django.db.models.fields.json import KT

from dacproject.ids import as_uuid
from governance.escalations.models import Escalation

from .events.models import Event, EventMatch, MatchKind
from .models import WorkflowInstance

MAX_NODES = 500
LIFECYCLE = (Q(event_type__startswith="workflow.") | Q(event_type__startswith="step.")
             | Q(event_type__startswith="governance.") | Q(event_type="context.changed"))
INSTANCE_FIELDS = ("id", "definition__key", "status", "correlation_id", "parent_id", "created_at", "started_at",
                   "finished_at")


def instance_lineage(instance_id, *, max_nodes=MAX_NODES):
    """{"correlation_id", "instance", "root": node, "nodes", "truncated"}, or None for an unknown id.

    A node is {"kind": "event"|"instance"|"escalation"|"correlation", "id", ...summary,
    "children": [...]}, children oldest first; several roots hang under a `correlation` node.
    """
    instance_id = as_uuid(instance_id)
    if instance_id is None:
        return None
    correlation_id = WorkflowInstance.objects.filter(id=instance_id).values_list("correlation_id", flat=True).first()
    if correlation_id is None:
        return None
    graph = _Graph(correlation_id, max_nodes)
    root, count = graph.tree()
    return {"correlation_id": correlation_id, "instance": str(instance_id), "root": root, "nodes": count,
            "truncated": graph.truncated}


class _Graph:
    """The correlation's records and the edges between them, keyed (kind, id)."""

    def __init__(self, correlation_id, max_nodes):
        self.correlation_id, self.max_nodes, self.truncated = correlation_id, max_nodes, False
        self.instances = {i.id: i for i in self._capped(_instances().filter(correlation_id=correlation_id)
                                                        .order_by("created_at", "id"))}
        # Its own events, and those its instances emitted under another correlation id.
        matched = Exists(EventMatch.objects.filter(event_id=OuterRef("pk")))
        self.events = {e.event_id: e for e in self._capped(
            Event.objects.filter(Q(correlation_id=correlation_id) | Q(source_instance_id__in=list(self.instances)))
            .filter(~LIFECYCLE | matched)
            .only("event_id", "event_type", "timestamp", "source_instance_id", "correlation_id")
            .order_by("timestamp", "event_id"))}
        self.matches = self._capped(EventMatch.objects.filter(event_id__in=list(self.events))
                                    .only("event_id", "kind", "instance_id", "step_id").order_by("id"))
        self.escalations = {e.id: e for e in self._capped(
            Escalation.objects.filter(instance_id__in=list(self.instances))
            .only("id", "instance_id", "level", "type", "status", "step_id", "title", "created_at")
            .order_by("created_at", "id"))}
        # Instances its events started or resumed under another correlation id: leaves here.
        elsewhere = {m.instance_id for m in self.matches} - set(self.instances)
        self.elsewhere = {i.id: i for i in _instances().filter(id__in=elsewhere)} if elsewhere else {}

    def _capped(self, queryset):
        rows = list(queryset[:self.max_nodes + 1])
        if len(rows) > self.max_nodes:
            self.truncated = True
        return rows[:self.max_nodes]

    def _edges(self):
        """parent key -> [child keys], and the keys with no parent here (the roots), oldest first.
        Keys: ("event"|"instance"|"escalation", id), and the leaves ("elsewhere", id) and
        ("resumed", instance id, step)."""
        edges, roots, started_by = defaultdict(list), [], {}
        for match in self.matches:
            if match.instance_id not in self.instances and match.instance_id not in self.elsewhere:
                continue  # beyond the cap
            if match.kind == MatchKind.RESUMED:
                edges[("event", match.event_id)].append(("resumed", match.instance_id, match.step_id))
            elif match.instance_id in self.instances:
                started_by[match.instance_id] = match.event_id
            else:
                edges[("event", match.event_id)].append(("elsewhere", match.instance_id))
        for instance in self.instances.values():
            if instance.parent_id in self.instances:
                edges[("instance", instance.parent_id)].append(("instance", instance.id))
            elif instance.id in started_by:
                edges[("event", started_by[instance.id])].append(("instance", instance.id))
            else:
                roots.append(("instance", instance.id))
        for event in self.events.values():
            if event.source_instance_id in self.instances:
                edges[("instance", event.source_instance_id)].append(("event", event.event_id))
            else:
                roots.append(("event", event.event_id))
        for escalation in self.escalations.values():
            edges[("instance", escalation.instance_id)].append(("escalation", escalation.id))
        for children in edges.values():
            children.sort(key=self._when)
        return edges, sorted(roots, key=self._when)

    def _when(self, key):
        kind, ident = key[0], key[1]
        if kind == "event":
            return self.events[ident].timestamp
        if kind == "escalation":
            return self.escalations[ident].created_at
        return (self.instances.get(ident) or self.elsewhere[ident]).created_at

    def tree(self):
        """Breadth first from the roots, so a cut at `max_nodes` keeps the part nearest the cause."""
        edges, roots = self._edges()
        if len(roots) == 1:
            root, pending = self._node(roots[0]), edges[roots[0]]
        else:
            root, pending = {"kind": "correlation", "id": self.correlation_id, "children": []}, roots
        count, queue = 1, deque([(root, pending)])
        while queue:
            node, children = queue.popleft()
            for key in children:
                if count >= self.max_nodes:
                    self.truncated = True
                    return root, count
                child = self._node(key)
                node["children"].append(child)
                count += 1
                queue.append((child, edges.get(key, ())))
        return root, count

    def _node(self, key):
        kind, ident = key[0], key[1]
        if kind == "event":
            event = self.events[ident]
            node = {"kind": "event", "id": str(ident), "event_type": event.event_type,
                    "timestamp": event.timestamp.isoformat()}
            if event.correlation_id != self.correlation_id:
                node["correlation_id"] = event.correlation_id
        elif kind == "escalation":
            escalation = self.escalations[ident]
            node = {"kind": "escalation", "id": str(ident), "level": escalation.level, "type": escalation.type,
                    "status": escalation.status, "step": escalation.step_id or None, "title": escalation.title}
        else:
            node = self._instance_node(self.instances.get(ident) or self.elsewhere[ident])
            if kind == "resumed":
                node["resumed_step"] = key[2]
        node["children"] = []
        return node

    def _instance_node(self, instance):
        node = {"kind": "instance", "id": str(instance.id), "workflow": instance.definition.key,
                "status": instance.status, "trigger": instance.trigger_type or "manual", "step": instance.trigger_step,
                "created_at": _iso(instance.created_at), "started_at": _iso(instance.started_at),
                "finished_at": _iso(instance.finished_at)}
        if instance.correlation_id != self.correlation_id:
            node["correlation_id"] = instance.correlation_id
        return node


def _instances():
    # Two keys of `trigger`, not the whole JSON: an event's trigger carries its payload.
    return (WorkflowInstance.objects.select_related("definition").only(*INSTANCE_FIELDS)
            .annotate(trigger_type=KT("trigger__type"), trigger_step=KT("trigger__step")))


def lineage_outline(root):
    """The tree as a flat list for a template (which cannot recurse): {"node", "leaf"} rows, with
    {"open": True} / {"close": True} rows around each node's children."""
    rows, stack, close = [], [root], object()
    while stack:
        item = stack.pop()
        if item is close:
            rows.append({"close": True})
            continue
        rows.append({"node": item, "leaf": not item["children"]})
        if item["children"]:
            rows.append({"open": True})
            stack.append(close)
            stack.extend(reversed(item["children"]))
    return rows


def _iso(value):
    return value.isoformat() if value else None
