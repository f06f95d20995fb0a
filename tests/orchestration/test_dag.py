"""The DAG drawing is pure: a spec and statuses in, well-formed, escaped SVG out."""
import json
import xml.etree.ElementTree as ET

import pytest

from orchestration.dag import (
    MIN_SCALE,
    NO_STATUS_COLOURS,
    STATUS_COLOURS,
    dag_svg,
    status_colours,
    step_depths,
    step_layers,
    wrap,
)
from orchestration.states import StepStatus

SVG = "{http://www.w3.org/2000/svg}"


def spec(*steps):
    return {"id": "wf", "steps": [{"id": sid, "action": "noop", "depends_on": list(deps)} for sid, deps in steps]}


DIAMOND = spec(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]))


def nodes(svg):
    """{step_id: <g> element} of a drawing, parsed as XML (so it must be well-formed)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return {g.get("data-step"): g for g in root.iter(f"{SVG}g") if g.get("class") == "dac-dag-node"}


def rect(node):
    return node.find(f"{SVG}rect")


def lines(node, kind):
    """The text lines of one kind (dac-dag-label, dac-dag-detail, dac-dag-status) of a box."""
    return [t.text for t in node.iter(f"{SVG}text") if t.get("class") == kind]


def view_box(svg):
    root = ET.fromstring(svg)
    x, y, width, height = (float(v) for v in root.get("viewBox").split())
    assert (x, y) == (0, 0)
    return root, width, height


def test_layers_follow_topological_depth():
    assert step_depths(DIAMOND) == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert step_layers(DIAMOND) == [["a"], ["b", "c"], ["d"]]


def test_a_step_sits_after_its_deepest_dependency_not_its_first():
    shape = spec(("start", []), ("long1", ["start"]), ("long2", ["long1"]), ("join", ["start", "long2"]))
    assert step_depths(shape) == {"start": 0, "long1": 1, "long2": 2, "join": 3}


def test_independent_roots_share_the_first_layer():
    shape = spec(("x", []), ("y", []), ("z", ["x", "y"]))
    assert step_layers(shape) == [["x", "y"], ["z"]]


def test_layer_order_follows_the_dependencies_to_keep_edges_short():
    # b2 depends on the second root, b1 on the first: drawn in that order, though listed the other way.
    shape = spec(("r1", []), ("r2", []), ("b2", ["r2"]), ("b1", ["r1"]))
    assert step_layers(shape) == [["r1", "r2"], ["b1", "b2"]]


def test_boxes_are_placed_left_to_right_by_layer():
    drawn = nodes(dag_svg(DIAMOND))
    x = {sid: float(rect(g).get("x")) for sid, g in drawn.items()}
    assert x["a"] < x["b"] == x["c"] < x["d"]
    assert {sid: g.get("data-layer") for sid, g in drawn.items()} == {"a": "0", "b": "1", "c": "1", "d": "2"}
    b_y, c_y = float(rect(drawn["b"]).get("y")), float(rect(drawn["c"]).get("y"))
    assert b_y != c_y


def test_one_edge_per_dependency():
    root = ET.fromstring(dag_svg(DIAMOND))
    paths = [p for p in root.iter(f"{SVG}path") if p.get("class") == "dac-dag-edge"]
    assert {(p.get("data-from"), p.get("data-to")) for p in paths} == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert all(p.get("marker-end") == "url(#dac-dag-arrow)" for p in paths)


@pytest.mark.parametrize("status", [s.value for s in StepStatus])
def test_every_step_status_has_its_own_colour(status):
    drawn = nodes(dag_svg(DIAMOND, {"a": status}))
    fill, stroke = STATUS_COLOURS[status]
    assert rect(drawn["a"]).get("fill") == fill
    assert rect(drawn["a"]).get("stroke") == stroke
    assert drawn["a"].get("data-status") == status
    assert status.replace("_", " ") in "".join(drawn["a"].itertext())


def test_colours_differ_between_the_main_statuses():
    main = ["pending", "ready", "running", "completed", "failed", "waiting_approval", "cancelled", "compensated"]
    assert len({STATUS_COLOURS[s][0] for s in main}) == len(main)


def test_boxes_are_coloured_by_their_own_status():
    statuses = {"a": "completed", "b": "failed", "c": "running", "d": "pending"}
    drawn = nodes(dag_svg(DIAMOND, statuses))
    for sid, status in statuses.items():
        assert rect(drawn[sid]).get("fill") == STATUS_COLOURS[status][0]


def test_a_step_without_status_is_drawn_neutral():
    drawn = nodes(dag_svg(DIAMOND, {"a": "completed"}))
    assert rect(drawn["d"]).get("fill") == NO_STATUS_COLOURS[0]
    assert drawn["d"].get("data-status") is None
    assert status_colours("no-such-status") == NO_STATUS_COLOURS


def test_legend_lists_the_statuses_present():
    root = ET.fromstring(dag_svg(DIAMOND, {"a": "completed", "b": "failed"}))
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "dac-dag-legend")
    assert [t.text for t in legend.iter(f"{SVG}text")] == ["completed", "failed"]
    assert not any(g.get("class") == "dac-dag-legend" for g in ET.fromstring(dag_svg(DIAMOND)).iter(f"{SVG}g"))


def test_labels_are_escaped():
    hostile = {"id": "wf", "steps": [
        {"id": "<script>alert(1)</script>", "action": 'x" onload="alert(2)', "depends_on": []},
        {"id": "b&c", "action": "noop", "depends_on": ["<script>alert(1)</script>"]},
    ]}
    svg = dag_svg(hostile, {"<script>alert(1)</script>": "running"})
    assert "<script" not in svg
    assert 'onload="' not in svg
    assert "&lt;script&gt;" in svg
    assert "b&amp;c" in svg
    drawn = nodes(svg)  # still well-formed XML
    assert set(drawn) == {"<script>alert(1)</script>", "b&c"}
    assert drawn["<script>alert(1)</script>"].find(f"{SVG}title").text.startswith("<script>alert(1)</script>")


def test_step_detail_names_action_agent_spawn_and_flags():
    shape = {"id": "wf", "steps": [
        {"id": "a", "action": "http.request", "depends_on": [], "approval": {"type": "x"}},
        {"id": "b", "agent": "reviewer", "action": "review", "depends_on": ["a"], "foreach": "{{ x }}"},
        {"id": "c", "spawn": {"workflow": "child-flow"}, "depends_on": ["a"]},
        {"id": "d", "wait_for": {"event": "pr.merged"}, "depends_on": ["a"]},
    ]}
    drawn = nodes(dag_svg(shape))
    detail = {sid: "".join(lines(g, "dac-dag-detail")) for sid, g in drawn.items()}
    assert detail == {"a": "http.request · approval", "b": "reviewer.review · foreach",
                      "c": "spawn child-flow", "d": "wait for pr.merged"}


def test_empty_and_cyclic_specs_still_draw():
    assert "no steps" in dag_svg({"id": "wf", "steps": []})
    assert "no steps" in dag_svg({})
    cyclic = spec(("a", ["b"]), ("b", ["a"]), ("c", []))
    assert set(nodes(dag_svg(cyclic))) == {"a", "b", "c"}
    assert step_depths(cyclic) == {"c": 0, "a": 1, "b": 1}


def test_unknown_dependencies_are_ignored():
    assert step_depths(spec(("a", ["ghost"]))) == {"a": 0}


def test_no_script_and_no_external_resources():
    svg = dag_svg(DIAMOND, {"a": "completed"})
    assert "<script" not in svg
    assert "href" not in svg.replace("url(#dac-dag-arrow)", "")


# --- scaling to the container, readable from 2 to 200 steps (issue 10, point 3) ---------------------

# The shape of examples/software-company.yaml's software-development (7 steps, 6 layers, a foreach).
SOFTWARE_DEVELOPMENT = {"id": "software-development", "steps": [
    {"id": "plan", "agent": "product-manager", "action": "plan", "depends_on": []},
    {"id": "code", "agent": "developer", "action": "write_code", "depends_on": ["plan"], "foreach": "{{ x }}",
     "description": "One developer agent per task, at most two at a time."},
    {"id": "open_pr", "agent": "release-manager", "action": "open_pr", "depends_on": ["code"]},
    {"id": "review", "agent": "reviewer", "action": "review", "depends_on": ["open_pr"]},
    {"id": "request_changes", "agent": "developer", "action": "address_feedback", "depends_on": ["review"]},
    {"id": "merge", "agent": "release-manager", "action": "merge", "depends_on": ["review"],
     "approval": {"type": "code_merge"}},
    {"id": "deploy_dev", "agent": "devops", "action": "deploy", "depends_on": ["merge"], "approval": False},
]}
RUNNING = {"plan": "completed", "code": "running", "open_pr": "pending", "review": "pending",
           "request_changes": "pending", "merge": "pending", "deploy_dev": "pending"}
# The admin's content column at 1400 px with the sidebar open is about 1,000 px wide.
CONTENT_AT_1400_WITH_SIDEBAR = 1000


def style(root):
    return dict(item.split(":", 1) for item in root.get("style").split(";") if item)


def test_the_drawing_scales_to_its_container_with_a_view_box_and_no_fixed_size():
    svg = dag_svg(SOFTWARE_DEVELOPMENT, RUNNING)
    root, width, height = view_box(svg)
    assert root.get("width") == "100%"
    assert root.get("height") is None  # follows the width through the view box's aspect ratio
    assert root.get("preserveAspectRatio") == "xMinYMin meet"
    css = style(root)
    # never blown up past its natural size, never shrunk below MIN_SCALE of it (the wrapper scrolls then)
    assert css["max-width"] == f"{width:g}px"
    assert css["min-width"] == f"{round(width * MIN_SCALE)}px"
    assert css["height"] == "auto"
    assert width > 0 and height > 0


def test_the_seven_step_example_fits_1400_px_with_the_sidebar_open_at_a_readable_size():
    root, width, _ = view_box(dag_svg(SOFTWARE_DEVELOPMENT, RUNNING))
    assert root.get("data-bands") == "1"  # one row of layers, as the workflow reads
    # its narrowest allowed rendering fits the content column: no horizontal scroll
    assert round(width * MIN_SCALE) <= CONTENT_AT_1400_WITH_SIDEBAR
    # and the scale it gets there keeps 13 px labels at 10 px or more
    assert 13 * min(1, CONTENT_AT_1400_WITH_SIDEBAR / width) >= 10


def test_labels_are_not_cut_below_forty_characters_and_boxes_widen_to_them():
    short = nodes(dag_svg(spec(("a", []), ("b", ["a"]))))
    assert float(rect(short["a"]).get("width")) < 150
    for length in (12, 22, 30, 40):
        step_id = ("step_" + "abcdefghij" * 4)[:length]
        drawn = nodes(dag_svg(spec((step_id, []))))
        assert "".join(lines(drawn[step_id], "dac-dag-label")) == step_id  # whole, on one or two lines
        assert "\u2026" not in "".join(drawn[step_id].itertext())
    wide = nodes(dag_svg(spec(("request_changes_from_the_author", []))))
    assert float(rect(wide["request_changes_from_the_author"]).get("width")) > float(rect(short["a"]).get("width"))


def test_a_very_long_id_is_cut_in_the_box_but_whole_in_the_tooltip():
    long_id = "a_really_long_step_identifier_" * 4
    drawn = nodes(dag_svg(spec((long_id, []))))
    label = lines(drawn[long_id], "dac-dag-label")
    assert len(label) == 2 and label[-1].endswith("\u2026")
    assert drawn[long_id].find(f"{SVG}title").text.startswith(long_id)


def test_wrap_breaks_after_separators_and_cuts_only_what_does_not_fit():
    assert wrap("request_changes", 26, 2) == ["request_changes"]
    assert wrap("developer.address_feedback · foreach", 26, 2) == ["developer.address_feedback", "· foreach"]
    assert wrap("a_really_long_step_identifier_that_fits", 26, 2) == ["a_really_long_step_", "identifier_that_fits"]
    assert wrap("x" * 60, 26, 2) == ["x" * 26, "x" * 25 + "\u2026"]


def test_a_foreach_step_shows_its_item_progress():
    drawn = nodes(dag_svg(SOFTWARE_DEVELOPMENT, RUNNING, progress={"code": (7, 10)}))
    code = drawn["code"]
    assert code.get("data-progress") == "7/10"
    assert lines(code, "dac-dag-status") == ["running · 7/10"]
    assert "items: 7/10 done" in code.find(f"{SVG}title").text
    box, track, bar = code.findall(f"{SVG}rect")
    assert track.get("class") == "dac-dag-progress"
    assert float(bar.get("width")) == pytest.approx(0.7 * float(track.get("width")))
    assert drawn["plan"].get("data-progress") is None
    # without a status (a definition's drawing) the progress still shows
    assert lines(nodes(dag_svg(DIAMOND, progress={"b": (0, 3)}))["b"], "dac-dag-status") == ["0/3"]


def test_details_go_into_the_tooltip_and_a_data_attribute_and_links_into_data_link():
    details = {"code": {"status": "running", "attempts": "2", "duration": "3.4s", "_elapsed": 3.4}}
    drawn = nodes(dag_svg(SOFTWARE_DEVELOPMENT, RUNNING, details=details, links={"code": "/admin/steprun/7/"}))
    code = drawn["code"]
    assert json.loads(code.get("data-details")) == details["code"]
    assert code.get("tabindex") == "0" and code.get("data-link") == "/admin/steprun/7/"
    tooltip = code.find(f"{SVG}title").text
    assert "attempts: 2" in tooltip and "duration: 3.4s" in tooltip
    assert "_elapsed" not in tooltip  # data for the page, not text
    assert "One developer agent per task" in tooltip  # the step's description
    assert drawn["plan"].get("data-details") is None and drawn["plan"].get("tabindex") is None


def test_hostile_details_and_links_are_escaped():
    hostile = '"><script>alert(1)</script><g onclick="x'
    svg = dag_svg(DIAMOND, {"a": "failed"}, details={"a": {"error": hostile, hostile: "1"}},
                  links={"a": 'javascript:alert(1)" onmouseover="x'}, progress={"a": (1, 2)})
    assert "<script" not in svg and 'onclick="' not in svg and 'onmouseover="' not in svg
    drawn = nodes(svg)  # well-formed
    assert json.loads(drawn["a"].get("data-details"))["error"] == hostile
    assert drawn["a"].get("data-link") == 'javascript:alert(1)" onmouseover="x'  # an attribute value, inert


@pytest.mark.parametrize("shape,folded", [
    ("chain", True),  # 200 layers of one: folded into bands, read like lines of text
    ("fan", False),  # 1 -> 198 -> 1: three columns
    ("grid", True),  # 20 layers of 10
    ("mixed", None),
])
def test_two_hundred_steps_draw_at_sane_dimensions(shape, folded):
    if shape == "chain":
        steps = [(f"step_{i:03d}", [f"step_{i - 1:03d}"] if i else []) for i in range(200)]
    elif shape == "fan":
        steps = [("start", []), *((f"work_item_{i:03d}", ["start"]) for i in range(198)),
                 ("join", [f"work_item_{i:03d}" for i in range(198)])]
    elif shape == "grid":
        steps = [(f"s{layer:02d}_{row}", [f"s{layer - 1:02d}_{r}" for r in range(10)] if layer else [])
                 for layer in range(20) for row in range(10)]
    else:
        steps = [(f"task_{i:03d}_with_a_longer_name", [f"task_{j:03d}_with_a_longer_name" for j in (i // 2, i // 3)
                                                       if j < i]) for i in range(200)]
    statuses = {sid: ["completed", "running", "pending", "failed"][i % 4] for i, (sid, _) in enumerate(steps)}
    svg = dag_svg(spec(*steps), statuses, progress={steps[1][0]: (3, 10)})
    root, width, height = view_box(svg)
    drawn = nodes(svg)
    assert len(drawn) == 200
    if folded is not None:
        assert (int(root.get("data-bands")) > 1) is folded
    # sane: never wider than a screen at its smallest allowed scale; at most as tall as 200 boxes stacked
    # (198 parallel steps are one column: the wrapper scrolls down them like a list)
    assert width * MIN_SCALE <= CONTENT_AT_1400_WITH_SIDEBAR
    node_height = float(rect(next(iter(drawn.values()))).get("height"))
    assert height <= 200 * (node_height + 14) + 100
    # readable: text sizes never below 11 px, shrunk at most to MIN_SCALE
    assert min(float(t.get("font-size")) for t in root.iter(f"{SVG}text")) >= 11
    assert 11 * MIN_SCALE >= 8
    # every box inside the view box, none overlapping its neighbour
    boxes = sorted((float(rect(g).get("x")), float(rect(g).get("y")), float(rect(g).get("width")),
                    float(rect(g).get("height"))) for g in drawn.values())
    assert all(x >= 0 and y >= 0 and x + w <= width and y + h <= height for x, y, w, h in boxes)
    assert len({(x, y) for x, y, _, _ in boxes}) == 200


def test_the_legend_wraps_to_the_drawing_instead_of_widening_it():
    statuses = {sid: status for sid, status in zip(("a", "b", "c", "d"), ("completed", "failed", "running",
                                                                        "waiting_approval"), strict=True)}
    root, width, _ = view_box(dag_svg(spec(("a", []), ("b", []), ("c", []), ("d", [])), statuses))
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "dac-dag-legend")
    ys = {float(r.get("y")) for r in legend.iter(f"{SVG}rect")}
    assert len(ys) >= 1
    assert all(float(r.get("x")) + 12 <= width for r in legend.iter(f"{SVG}rect"))


def test_edges_into_a_later_band_run_along_the_gap_between_bands():
    chain = spec(*((f"step_{i:02d}", [f"step_{i - 1:02d}"] if i else []) for i in range(30)))
    root, _, _ = view_box(dag_svg(chain))
    assert int(root.get("data-bands")) >= 2
    drawn = nodes(dag_svg(chain))
    first_band = {sid for sid, g in drawn.items() if float(rect(g).get("y")) == float(rect(drawn["step_00"]).get("y"))}
    last = max(first_band)
    following = f"step_{int(last[-2:]) + 1:02d}"
    edge = next(p for p in root.iter(f"{SVG}path") if p.get("data-to") == following)
    assert edge.get("d").count(" L ") == 5  # out, down, back, down, in
