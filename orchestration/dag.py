"""Drawing a workflow's DAG as a self-contained SVG (pure: a spec and statuses in, markup out).

Steps are laid out in layers by topological depth (a step sits one layer after its deepest
dependency); within a layer, steps are ordered by the mean position of their dependencies to keep
edges short. Layers run left to right; a graph far wider than a screen (a long chain) is folded
into bands of layers, one below the other, read like lines of text.

The drawing scales to its container: `width="100%"` with a `viewBox`, never wider than its natural
size (so a 2-step graph is not blown up) and never narrower than `MIN_SCALE` of it (so a 200-step
graph stays readable: its wrapper scrolls instead). Boxes are as wide as their labels need, within
`MIN_NODE_WIDTH`..`MAX_NODE_WIDTH`; longer labels wrap onto a second line and only then are cut,
the full text always being in the box's `<title>` tooltip.

Every label and attribute is escaped here, so the returned string is safe to embed in a page as it
is. No database access, no JavaScript: a page may make the boxes clickable, using each box's
`data-step`, `data-status`, `data-progress` and `data-details` (JSON) attributes.
"""
import json
import re
from html import escape

FONT_FAMILY = "-apple-system, Segoe UI, Helvetica, Arial, sans-serif"
LABEL_SIZE = 13  # px, the step id (bold)
TEXT_SIZE = 11  # px, the action line and the status line
# Average advance of a character, in em, rounded up (Helvetica/Arial/Segoe: ~0.55 bold, ~0.5 regular),
# so an estimated line is never wider than the drawn one.
LABEL_EM = 0.62
TEXT_EM = 0.57
LABEL_LINE = 16
TEXT_LINE = 14
NODE_PAD_X = 10
NODE_PAD_Y = 8
PROGRESS_BAR = 4
MIN_NODE_WIDTH = 112
MAX_NODE_WIDTH = 236
MAX_LABEL_LINES = 2
MAX_DETAIL_LINES = 2
COLUMN_GAP = 40  # between layers, left to right
ROW_GAP = 14  # between boxes of one layer, left to right
BAND_GAP = 36  # between the bands of a graph folded because it is too wide
PADDING = 12
LEGEND_ROW = 22
# Below this share of its natural size the text would be too small to read: the drawing keeps at least
# this width and its wrapper scrolls (13 px labels stay >= 9.75 px, 11 px text >= 8.25 px).
MIN_SCALE = 0.75
# A left-to-right drawing up to this natural width fits a laptop screen at MIN_SCALE; a wider one is
# folded into bands of layers, one below the other.
WIDE = 1300

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


# --- text ---------------------------------------------------------------------------------------

def _label_width(text):
    return len(text) * LABEL_SIZE * LABEL_EM


def _text_width(text):
    return len(text) * TEXT_SIZE * TEXT_EM


def _chars_that_fit(width, size, em):
    return max(4, int(width / (size * em) + 1e-6))


_BREAK_AFTER = re.compile(r"(?<=[\s_\-./:·,])")


def wrap(text, limit, max_lines):
    """`text` in lines of at most `limit` characters, broken after a separator (space _ - . / : ·)
    where there is one; past `max_lines` the last line ends in an ellipsis."""
    lines = _wrap_at_separators(text, limit)
    if len(lines) > max_lines and len(text) <= limit * max_lines:
        lines = [text[i:i + limit] for i in range(0, len(text), limit)]  # fits when cut anywhere
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        lines = [*lines[: max_lines - 1], (last[: limit - 1] if len(last) >= limit else last) + "\u2026"]
    return lines


def _wrap_at_separators(text, limit):
    chunks = [c for c in _BREAK_AFTER.split(text) if c]
    lines, line = [], ""
    for chunk in chunks:
        while len(chunk) > limit:  # a chunk longer than a line is cut where it must be
            room = limit - len(line)
            if line and room < 4:
                lines.append(line)
                line, room = "", limit
            lines.append(line + chunk[:room])
            line, chunk = "", chunk[room:]
        if line and len(line) + len(chunk.rstrip()) > limit:
            lines.append(line)
            line = ""
        line += chunk
    if line:
        lines.append(line)
    return [ln.strip() for ln in lines if ln.strip()] or [""]


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


def _progress_text(progress):
    done, total = progress
    return f"{done}/{total}"


class _Box:
    """One step's box: its text lines and the width they need."""

    def __init__(self, step, step_id, status, progress, details):
        self.step, self.step_id, self.status, self.progress = step, step_id, status, progress
        self.details = details or {}
        self.detail = _step_detail(step)
        status_line = [_status_label(status)] if status else []
        if progress is not None:
            status_line.append(_progress_text(progress))
        self.status_line = " · ".join(status_line)
        self.needs = min(MAX_NODE_WIDTH, max(
            MIN_NODE_WIDTH,
            2 * NODE_PAD_X + max(_label_width(step_id), _text_width(self.detail), _text_width(self.status_line)),
        ))

    def lay_out(self, width):
        inner = width - 2 * NODE_PAD_X
        self.width = width
        self.label_lines = wrap(self.step_id, _chars_that_fit(inner, LABEL_SIZE, LABEL_EM), MAX_LABEL_LINES)
        self.detail_lines = (wrap(self.detail, _chars_that_fit(inner, TEXT_SIZE, TEXT_EM), MAX_DETAIL_LINES)
                             if self.detail else [])
        return self.content_height()

    def content_height(self):
        return (2 * NODE_PAD_Y + len(self.label_lines) * LABEL_LINE + len(self.detail_lines) * TEXT_LINE
                + (TEXT_LINE if self.status_line else 0) + (PROGRESS_BAR + 2 if self.progress is not None else 0))

    def tooltip(self):
        lines = [f"{self.step_id} ({_status_label(self.status)})" if self.status else self.step_id]
        if self.detail:
            lines.append(self.detail)
        if self.progress is not None:
            lines.append(f"items: {_progress_text(self.progress)} done")
        description = str(self.step.get("description") or "").strip()
        if description:
            lines.append(description)
        lines += [f"{label}: {value}" for label, value in self.details.items()
                  if not str(label).startswith("_") and value not in (None, "")]
        return "\n".join(lines)


# --- layout -------------------------------------------------------------------------------------

class _Layout:
    """Where each box goes. Layers run left to right; a graph wider than `WIDE` is folded into bands of
    consecutive layers, one below the other (a long chain reads like lines of text), each band as wide
    as fits."""

    def __init__(self, layers, boxes):
        self.layers, self.boxes = layers, boxes
        widths = [max(boxes[s].needs for s in layer) for layer in layers]
        self.node_height = max(boxes[s].lay_out(widths[d]) for d, layer in enumerate(layers) for s in layer)
        pitch = self.node_height + ROW_GAP
        self.bands = self._bands(widths, PADDING)
        # Edges into a later band turn around outside the boxes: a folded drawing has wider margins.
        side = PADDING if len(self.bands) == 1 else PADDING + COLUMN_GAP / 2
        if side != PADDING:
            self.bands = self._bands(widths, side)
        self.band_of, self.band_bottom, self.positions = {}, [], {}
        top, self.width = PADDING, 0
        for number, band in enumerate(self.bands):
            tallest = max(len(layers[d]) for d in band)
            x = side
            for depth in band:
                layer = layers[depth]
                layer_top = top + (tallest - len(layer)) * pitch / 2
                for row, step_id in enumerate(layer):
                    self.positions[step_id] = (x, layer_top + row * pitch)
                    self.band_of[step_id] = number
                x += widths[depth] + COLUMN_GAP
            self.width = max(self.width, x - COLUMN_GAP + side)
            top += tallest * pitch - ROW_GAP
            self.band_bottom.append(top)
            top += BAND_GAP
        self.height = top - BAND_GAP + PADDING

    @staticmethod
    def _bands(widths, side):
        bands, band, used = [], [], 0
        for depth, width in enumerate(widths):
            extra = width + (COLUMN_GAP if band else 0)
            if band and 2 * side + used + extra > WIDE:
                bands.append(band)
                band, used, extra = [], 0, width
            band.append(depth)
            used += extra
        return [*bands, band]

    def edge(self, parent, child):
        (px, py), (cx, cy) = self.positions[parent], self.positions[child]
        x1, y1 = px + self.boxes[parent].width, py + self.node_height / 2
        x2, y2 = cx, cy + self.node_height / 2
        if self.band_of[parent] == self.band_of[child] and x2 > x1:
            bend = (x2 - x1) / 2
            return f"M {x1:g} {y1:g} C {x1 + bend:g} {y1:g}, {x2 - bend:g} {y2:g}, {x2:g} {y2:g}"
        # Into a later band: out to the right, along the gap under the parent's band, down to the child.
        gap = self.band_bottom[self.band_of[parent]] + BAND_GAP / 2
        out, into = x1 + COLUMN_GAP / 3, x2 - COLUMN_GAP / 3
        return (f"M {x1:g} {y1:g} L {out:g} {y1:g} L {out:g} {gap:g} L {into:g} {gap:g} L {into:g} {y2:g} "
                f"L {x2:g} {y2:g}")


# --- drawing ------------------------------------------------------------------------------------

def dag_svg(spec, statuses=None, *, legend=True, progress=None, details=None, links=None):
    """An SVG drawing of `spec`'s steps and dependencies, each box coloured by `statuses[step_id]`.

    `spec` is a normalised workflow spec (`steps` with `id`, `depends_on`, ...); `statuses` maps
    step ids to step statuses (missing: drawn neutral, without a status line). Optional:
    `progress` {step_id: (done, total)} shows a foreach step's items ("7/10" and a bar);
    `details` {step_id: {label: value}} goes into the box's tooltip and, as JSON, into its
    `data-details` attribute for a page to show on click (labels starting with "_" are data for
    such a page, not shown in the tooltip); `links` {step_id: url} sets the box's `data-link`.
    """
    statuses = statuses or {}
    progress = progress or {}
    details = details or {}
    links = links or {}
    steps, _, dependencies = _step_ids_and_dependencies(spec)
    if not steps:
        return ('<svg xmlns="http://www.w3.org/2000/svg" class="dac-dag" width="100%" viewBox="0 0 200 40" '
                'preserveAspectRatio="xMinYMin meet" style="max-width:200px;height:auto" role="img" '
                'aria-label="workflow without steps">'
                '<text x="16" y="24" font-family="sans-serif" font-size="12" fill="#6b7280">no steps</text></svg>')
    boxes = {}
    for step in steps:
        step_id = str(step["id"])
        raw = progress.get(step_id)
        boxes[step_id] = _Box(step, step_id, statuses.get(step_id), tuple(raw) if raw else None,
                              details.get(step_id))
    layers = step_layers(spec)
    layout = _Layout(layers, boxes)
    width, graph_height = layout.width, layout.height

    present = [s for s in STATUS_COLOURS if s in set(statuses.values())]
    legend_items = _legend_items(present) if legend else []
    legend_rows = _legend_rows(legend_items, max(width, 320) - 2 * PADDING)
    if legend_rows:
        width = max(width, 2 * PADDING + max(sum(w for _, w in row) for row in legend_rows))
    height = graph_height + len(legend_rows) * LEGEND_ROW + (6 if legend_rows else 0)
    min_width = round(width * MIN_SCALE)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dac-dag" width="100%" viewBox="0 0 {width:g} {height:g}" '
        f'preserveAspectRatio="xMinYMin meet" style="max-width:{width:g}px;min-width:{min_width}px;height:auto" '
        f'data-bands="{len(layout.bands)}" role="{"group" if details else "img"}" aria-label="workflow graph" '
        f'font-family="{FONT_FAMILY}">',
        '<defs><marker id="dac-dag-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
    ]
    for step_id, parents in dependencies.items():
        for parent in parents:
            parts.append(f'<path class="dac-dag-edge" data-from="{escape(parent)}" data-to="{escape(step_id)}" '
                         f'd="{layout.edge(parent, step_id)}" fill="none" stroke="#9ca3af" stroke-width="1.5" '
                         'marker-end="url(#dac-dag-arrow)"/>')
    for depth, layer in enumerate(layers):
        for step_id in layer:
            parts.append(_node(boxes[step_id], layout.positions[step_id], layout.node_height, depth,
                               links.get(step_id)))
    if legend_rows:
        parts.append(_legend(legend_rows, graph_height))
    parts.append("</svg>")
    return "".join(parts)


def _node(box, position, height, depth, link):
    x, y = position
    fill, stroke = status_colours(box.status)
    dashed = ' stroke-dasharray="4 3"' if box.status == "skipped" else ""
    attrs = [f'class="dac-dag-node" data-step="{escape(box.step_id)}"']
    if box.status:
        attrs.append(f'data-status="{escape(str(box.status))}"')
    attrs.append(f'data-layer="{depth}"')
    if box.progress is not None:
        attrs.append(f'data-progress="{escape(_progress_text(box.progress))}"')
    if box.details:
        attrs.append(f'data-details="{escape(json.dumps(box.details, ensure_ascii=False, default=str))}" '
                     'tabindex="0"')
    if link:
        attrs.append(f'data-link="{escape(link)}"')
    parts = [f"<g {' '.join(attrs)}>", f"<title>{escape(box.tooltip())}</title>",
             f'<rect x="{x:g}" y="{y:g}" width="{box.width:g}" height="{height:g}" rx="6" ry="6" '
             f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dashed}/>']
    text_x = x + NODE_PAD_X
    baseline = y + NODE_PAD_Y
    for line in box.label_lines:
        baseline += LABEL_LINE
        parts.append(f'<text class="dac-dag-label" x="{text_x:g}" y="{baseline - 4:g}" font-size="{LABEL_SIZE}" '
                     f'font-weight="600" fill="#111827">{escape(line)}</text>')
    for line in box.detail_lines:
        baseline += TEXT_LINE
        parts.append(f'<text class="dac-dag-detail" x="{text_x:g}" y="{baseline - 3:g}" font-size="{TEXT_SIZE}" '
                     f'fill="#4b5563">{escape(line)}</text>')
    if box.status_line:
        baseline += TEXT_LINE
        parts.append(f'<text class="dac-dag-status" x="{text_x:g}" y="{baseline - 3:g}" font-size="{TEXT_SIZE}" '
                     f'font-style="italic" fill="{stroke}">{escape(box.status_line)}</text>')
    if box.progress is not None:
        done, total = box.progress
        share = min(max(done / total, 0), 1) if total else 0
        bar_y, bar_w = y + height - NODE_PAD_Y / 2 - PROGRESS_BAR, box.width - 2 * NODE_PAD_X
        parts.append(f'<rect class="dac-dag-progress" x="{text_x:g}" y="{bar_y:g}" width="{bar_w:g}" '
                     f'height="{PROGRESS_BAR}" rx="2" fill="#ffffff" fill-opacity="0.7" stroke="{stroke}" '
                     'stroke-width="0.5"/>'
                     f'<rect x="{text_x:g}" y="{bar_y:g}" width="{bar_w * share:g}" height="{PROGRESS_BAR}" '
                     f'rx="2" fill="{stroke}"/>')
    parts.append("</g>")
    return "".join(parts)


def _legend_items(statuses):
    return [(status, 12 + 5 + _text_width(_status_label(status)) + 16) for status in statuses]


def _legend_rows(items, room):
    rows, row, used = [], [], 0
    for item in items:
        if row and used + item[1] > room:
            rows.append(row)
            row, used = [], 0
        row.append(item)
        used += item[1]
    return [*rows, row] if row else rows


def _legend(rows, top):
    parts = ['<g class="dac-dag-legend">']
    for number, row in enumerate(rows):
        x, y = PADDING, top + 4 + number * LEGEND_ROW
        for status, item_width in row:
            fill, stroke = status_colours(status)
            parts.append(
                f'<rect x="{x:g}" y="{y + 2:g}" width="12" height="12" rx="2" fill="{fill}" stroke="{stroke}"/>'
                f'<text x="{x + 17:g}" y="{y + 12:g}" font-size="{TEXT_SIZE}" fill="#374151">'
                f"{escape(_status_label(status))}</text>"
            )
            x += item_width
    parts.append("</g>")
    return "".join(parts)
