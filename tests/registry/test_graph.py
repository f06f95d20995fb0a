"""Unit tests of the pure graph helpers over {step_id: [dependency ids]} (no database)."""
import pytest

from registry.spec import graph

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def edges_of(path):
    """Consecutive pairs of a reported cycle: (parent, child) in the direction work flows."""
    return list(zip(path, path[1:], strict=False))


# --- find_cycle -------------------------------------------------------------------------------

@pytest.mark.parametrize("deps", [
    {},
    {"a": []},
    DIAMOND,
    {"a": [], "b": ["a"], "c": ["b"], "x": [], "y": ["x", "c"]},
    {"b": ["a"], "a": []},  # a dependent listed before its dependency
], ids=["empty", "single", "diamond", "two-chains", "out-of-order"])
def test_find_cycle_returns_none_for_acyclic_graphs(deps):
    assert graph.find_cycle(deps) is None


def test_find_cycle_reports_a_three_cycle_as_a_closed_path_in_flow_order():
    # a depends on c, b on a, c on b: work would flow a -> b -> c -> a
    assert graph.find_cycle({"a": ["c"], "b": ["a"], "c": ["b"]}) == ["a", "b", "c", "a"]


def test_find_cycle_self_loop():
    assert graph.find_cycle({"a": [], "b": ["b"]}) == ["b", "b"]


def test_find_cycle_two_cycle():
    assert graph.find_cycle({"x": ["y"], "y": ["x"]}) == ["x", "y", "x"]


def test_find_cycle_leaves_out_the_acyclic_lead_in():
    deps = {"start": [], "a": ["start", "c"], "b": ["a"], "c": ["b"], "end": ["c"]}
    cycle = graph.find_cycle(deps)
    assert cycle == ["a", "b", "c", "a"]
    assert "start" not in cycle and "end" not in cycle


def test_find_cycle_path_follows_real_edges():
    deps = {"s1": [], "s2": ["s1", "s5"], "s3": ["s2"], "s4": ["s3"], "s5": ["s4"], "s6": ["s5"]}
    cycle = graph.find_cycle(deps)
    assert cycle[0] == cycle[-1]
    assert len(set(cycle)) == len(cycle) - 1 == 4
    for parent, child in edges_of(cycle):
        assert parent in deps[child]


def test_find_cycle_in_a_later_component():
    deps = {"ok1": [], "ok2": ["ok1"], "p": ["q"], "q": ["p"]}
    assert graph.find_cycle(deps) == ["p", "q", "p"]


def test_find_cycle_tolerates_parents_that_are_not_nodes():
    # unknown dependencies are reported separately; the cycle search must not crash on them
    assert graph.find_cycle({"a": ["ghost"]}) is None
    assert graph.find_cycle({"a": ["ghost", "b"], "b": ["a"]}) == ["a", "b", "a"]


# --- ancestors --------------------------------------------------------------------------------

def test_ancestors_of_a_diamond():
    assert graph.ancestors(DIAMOND) == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"a", "b", "c"}}


def test_ancestors_are_transitive_along_a_long_chain():
    deps = {f"s{i}": ([f"s{i - 1}"] if i else []) for i in range(300)}
    result = graph.ancestors(deps)
    assert result["s299"] == {f"s{i}" for i in range(299)}
    assert result["s0"] == set()


def test_ancestors_of_separate_components_do_not_mix():
    result = graph.ancestors({"a": [], "b": ["a"], "x": [], "y": ["x"]})
    assert result["b"] == {"a"}
    assert result["y"] == {"x"}


# --- descendants ------------------------------------------------------------------------------

def test_descendants_exclude_the_roots():
    assert graph.descendants(DIAMOND, ["a"]) == {"b", "c", "d"}
    assert graph.descendants(DIAMOND, ["b"]) == {"d"}


def test_descendants_of_a_sink_or_of_nothing_are_empty():
    assert graph.descendants(DIAMOND, ["d"]) == set()
    assert graph.descendants(DIAMOND, []) == set()


def test_descendants_of_several_roots_are_their_union():
    deps = {"a": [], "b": ["a"], "x": [], "y": ["x"], "z": ["y"]}
    assert graph.descendants(deps, ["a", "x"]) == {"b", "y", "z"}
    assert graph.descendants(deps, ["y"]) == {"z"}


def test_descendants_include_a_root_that_is_downstream_of_another_root():
    assert graph.descendants(DIAMOND, ["a", "b"]) == {"b", "c", "d"}


# --- sinks ------------------------------------------------------------------------------------

def test_sinks_of_a_diamond():
    assert graph.sinks(DIAMOND) == ["d"]


def test_sinks_keep_definition_order():
    deps = {"z": [], "m": [], "a": ["m"], "k": []}
    assert graph.sinks(deps) == ["z", "a", "k"]


def test_every_node_of_an_unconnected_graph_is_a_sink():
    assert graph.sinks({"a": [], "b": [], "c": []}) == ["a", "b", "c"]
    assert graph.sinks({}) == []
