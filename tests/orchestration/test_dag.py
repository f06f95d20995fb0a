"""The DAG drawing is pure: a spec and statuses in, well-formed, escaped SVG out."""
import xml.etree.ElementTree as ET

import pytest

from orchestration.dag import NO_STATUS_COLOURS, STATUS_COLOURS, dag_svg, status_colours, step_depths, step_layers
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


def test_long_ids_are_cut_in_the_box_but_whole_in_the_tooltip():
    long_id = "a_really_long_step_identifier_that_does_not_fit"
    drawn = nodes(dag_svg(spec((long_id, []))))
    texts = [t.text for t in drawn[long_id].iter(f"{SVG}text")]
    assert texts[0].endswith("\u2026") and len(texts[0]) < len(long_id)
    assert drawn[long_id].find(f"{SVG}title").text.startswith(long_id)


def test_step_detail_names_action_agent_spawn_and_flags():
    shape = {"id": "wf", "steps": [
        {"id": "a", "action": "http.request", "depends_on": [], "approval": {"type": "x"}},
        {"id": "b", "agent": "reviewer", "action": "review", "depends_on": ["a"], "foreach": "{{ x }}"},
        {"id": "c", "spawn": {"workflow": "child-flow"}, "depends_on": ["a"]},
        {"id": "d", "wait_for": {"event": "pr.merged"}, "depends_on": ["a"]},
    ]}
    drawn = nodes(dag_svg(shape))
    detail = {sid: list(g.iter(f"{SVG}text"))[1].text for sid, g in drawn.items()}
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
