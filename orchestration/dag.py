"""Drawing a workflow's DAG as a self-contained SVG (pure: a spec and statuses in, markup out).

Steps are laid out left to right in layers by topological depth (a step sits one layer after its
deepest dependency); within a layer, steps are ordered by the mean height of their dependencies
to keep edges short. Every label is escaped here, so the returned string is safe to embed in a
page as it is. No database access, no JavaScript.
"""
from html import escape

NODE_WIDTH = 172
NODE_HEIGHT = 56
COLUMN_GAP = 56
ROW_GAP = 18
PADDING = 16
LEGEND_HEIGHT = 28
MAX_LABEL_CHARS = 22
MAX_DETAIL_CHARS = 28

# (fill, stroke) per status; step statuses first, then the instance-only ones.
STATUS_COLOURS = {
    "pending": ("#f3f4f6", "#9ca3af"),
    "ready": ("#dbeafe", "#3b82f6"),
    "running": ("#93c5fd", "#1d4ed8"),
    "completed": ("#bbf7d0", "#15803d"),
    "failed": ("#fecaca", "#b91c1c"),
    "skipped": ("#f9fafb", "#a1a1aa"),
    "waiting_approval": ("#fde68a", "#b45309"),
    "waiting_event": ("#e9d5ff", "#7e22ce"),
    "waiting_child": ("#c7d2fe", "#4338ca"),
    "cancelled": ("#e5e7eb", "#4b5563"),
    "compensated": ("#fed7aa", "#c2410c"),
    "queued": ("#e0e7ff", "#4338ca"),
    "waiting": ("#fde68a", "#b45309"),
    "paused": ("#e5e7eb", "#6b7280"),
    "terminated": ("#d1d5db", "#374151"),
    "timed_out": ("#fecaca", "#b91c1c"),
}
NO_STATUS_COLOURS = ("#ffffff", "#6b7280")


def status_colours(status):
    """(fill, stroke) for a step or instance status; a neutral pair when there is none."""
    return STATUS_COLOURS.get(status, NO_STATUS_COLOURS)


def _step_ids_and_dependencies(spec):
    steps = [s for s in (spec or {}).get("steps") or [] if isinstance(s, dict) and s.get("id") is not None]
    ids = [str(s["id"]) for s in steps]
    known = set(ids)
    dependencies = {
        str(s["id"]): [str(d) for d in (s.get("depends_on") or []) if str(d) in known and str(d) != str(s["id"])]
        for s in steps
    }
    return steps, ids, dependencies


def step_depths(spec):
    """{step_id: depth}: 0 for a step without dependencies, else one more than its deepest dependency.

    Steps caught in a cycle (never valid, but drawn rather than crashed on) go one layer past the rest.
    """
    _, ids, dependencies = _step_ids_and_dependencies(spec)
    depths = {}
    pending = list(ids)
    while pending:
        unresolved = []
        for step_id in pending:
            if all(d in depths for d in dependencies[step_id]):
                depths[step_id] = 1 + max((depths[d] for d in dependencies[step_id]), default=-1)
            else:
                unresolved.append(step_id)
        if len(unresolved) == len(pending):
            last = 1 + max(depths.values(), default=-1)
            depths.update(dict.fromkeys(unresolved, last))
            break
        pending = unresolved
    return depths


def step_layers(spec):
    """The steps' ids grouped by depth, each layer ordered to keep edges short (barycentre heuristic)."""
    _, ids, dependencies = _step_ids_and_dependencies(spec)
    depths = step_depths(spec)
    spec_order = {step_id: i for i, step_id in enumerate(ids)}
    layers = [[] for _ in range(1 + max(depths.values(), default=-1))]
    for step_id in ids:
        layers[depths[step_id]].append(step_id)
    row_of = {}
    for layer in layers:
        def barycentre(step_id):
            rows = [row_of[d] for d in dependencies[step_id] if d in row_of]
            return (sum(rows) / len(rows) if rows else spec_order[step_id], spec_order[step_id])

        layer.sort(key=barycentre)
        offset = -(len(layer) - 1) / 2  # rows are centred on the middle line, as drawn
        row_of.update({step_id: offset + i for i, step_id in enumerate(layer)})
    return layers


def _truncate(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _step_detail(step):
    """A short line saying what the step does: its action, agent capability, child or awaited event."""
    if step.get("spawn"):
        detail = f"spawn {(step['spawn'] or {}).get('workflow', '')}"
    elif step.get("wait_for"):
        detail = f"wait for {(step['wait_for'] or {}).get('event', '')}"
    elif step.get("agent"):
        detail = f"{step['agent']}.{step.get('action') or ''}"
    else:
        detail = str(step.get("action") or "")
    flags = [name for name in ("foreach", "approval") if step.get(name)]
    return " · ".join([detail, *flags]) if flags else detail


def _status_label(status):
    return str(status).replace("_", " ")


def dag_svg(spec, statuses=None, *, legend=True):
    """An SVG drawing of `spec`'s steps and dependencies, each box coloured by `statuses[step_id]`.

    `spec` is a normalised workflow spec (`steps` with `id`, `depends_on`, ...); `statuses` maps
    step ids to step statuses (missing: drawn neutral, without a status line).
    """
    statuses = statuses or {}
    steps, _, dependencies = _step_ids_and_dependencies(spec)
    if not steps:
        return ('<svg xmlns="http://www.w3.org/2000/svg" class="dac-dag" width="200" height="40" '
                'viewBox="0 0 200 40" role="img" aria-label="workflow without steps">'
                '<text x="16" y="24" font-family="sans-serif" font-size="12" fill="#6b7280">no steps</text></svg>')
    by_id = {str(s["id"]): s for s in steps}
    layers = step_layers(spec)
    tallest = max(len(layer) for layer in layers)
    row_pitch = NODE_HEIGHT + ROW_GAP
    positions = {}
    for depth, layer in enumerate(layers):
        top = PADDING + (tallest - len(layer)) * row_pitch / 2
        for row, step_id in enumerate(layer):
            positions[step_id] = (PADDING + depth * (NODE_WIDTH + COLUMN_GAP), top + row * row_pitch)

    present = [s for s in STATUS_COLOURS if s in set(statuses.values())]
    legend_rows = 1 if legend and present else 0
    width = 2 * PADDING + len(layers) * NODE_WIDTH + (len(layers) - 1) * COLUMN_GAP
    graph_height = 2 * PADDING + tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP
    height = graph_height + legend_rows * LEGEND_HEIGHT
    if legend_rows:
        width = max(width, 2 * PADDING + 130 * len(present))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dac-dag" width="{width:g}" height="{height:g}" '
        f'viewBox="0 0 {width:g} {height:g}" role="img" aria-label="workflow graph" '
        'font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif">',
        '<defs><marker id="dac-dag-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
    ]
    for step_id, parents in dependencies.items():
        x2, y2 = positions[step_id]
        y2 += NODE_HEIGHT / 2
        for parent in parents:
            x1, y1 = positions[parent]
            x1, y1 = x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2
            bend = (x2 - x1) / 2
            parts.append(
                f'<path class="dac-dag-edge" data-from="{escape(parent)}" data-to="{escape(step_id)}" '
                f'd="M {x1:g} {y1:g} C {x1 + bend:g} {y1:g}, {x2 - bend:g} {y2:g}, {x2:g} {y2:g}" '
                'fill="none" stroke="#9ca3af" stroke-width="1.5" marker-end="url(#dac-dag-arrow)"/>'
            )
    for depth, layer in enumerate(layers):
        for step_id in layer:
            parts.append(_node(by_id[step_id], step_id, statuses.get(step_id), positions[step_id], depth))
    if legend_rows:
        parts.append(_legend(present, graph_height))
    parts.append("</svg>")
    return "".join(parts)


def _node(step, step_id, status, position, depth):
    x, y = position
    fill, stroke = status_colours(status)
    dashed = ' stroke-dasharray="4 3"' if status == "skipped" else ""
    detail = _step_detail(step)
    tooltip = f"{step_id} ({_status_label(status)})" if status else step_id
    if detail:
        tooltip += f"\n{detail}"
    status_attr = f' data-status="{escape(str(status))}"' if status else ""
    lines = [
        f'<text x="{x + 10:g}" y="{y + 18:g}" font-size="12" font-weight="600" fill="#111827">'
        f"{escape(_truncate(step_id, MAX_LABEL_CHARS))}</text>",
        f'<text x="{x + 10:g}" y="{y + 33:g}" font-size="10.5" fill="#4b5563">'
        f"{escape(_truncate(detail, MAX_DETAIL_CHARS))}</text>",
    ]
    if status:
        lines.append(f'<text x="{x + 10:g}" y="{y + 48:g}" font-size="10.5" font-style="italic" fill="{stroke}">'
                     f"{escape(_status_label(status))}</text>")
    return (
        f'<g class="dac-dag-node" data-step="{escape(step_id)}"{status_attr} data-layer="{depth}">'
        f"<title>{escape(tooltip)}</title>"
        f'<rect x="{x:g}" y="{y:g}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6" ry="6" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dashed}/>'
        + "".join(lines)
        + "</g>"
    )


def _legend(statuses, top):
    parts = ['<g class="dac-dag-legend">']
    for i, status in enumerate(statuses):
        fill, stroke = status_colours(status)
        x = PADDING + i * 130
        parts.append(
            f'<rect x="{x}" y="{top + 6:g}" width="12" height="12" rx="2" fill="{fill}" stroke="{stroke}"/>'
            f'<text x="{x + 17}" y="{top + 16:g}" font-size="10.5" fill="#374151">'
            f"{escape(_status_label(status))}</text>"
        )
    parts.append("</g>")
    return "".join(parts)
