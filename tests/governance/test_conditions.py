"""The governance condition language: literals, operators, names, safety and malformed input.

Plain unit tests: no database, no workers.
"""
import ast
import dataclasses
import inspect
from decimal import Decimal

import pytest

from governance import conditions
from governance.conditions import FACTS, MAX_DEPTH, MAX_LENGTH, Condition, ConditionError, parse


def holds(source, **facts):
    return parse(source).evaluate(facts)


class StrictFacts:
    """Facts that fail the test when a fact outside `allowed` is read, and count the reads."""

    def __init__(self, allowed, **values):
        self.allowed, self.values, self.reads = set(allowed), values, []

    def get(self, name):
        assert name in self.allowed, f"read unneeded fact {name!r}"
        self.reads.append(name)
        return self.values.get(name)


class ItemsOnly:
    """A mapping-like object with [] but no .get()."""

    def __init__(self, **values):
        self.values = values

    def __getitem__(self, name):
        return self.values[name]


class Hostile:
    """A value whose comparisons, truth and text all raise."""

    def __eq__(self, other):
        raise RuntimeError("eq")

    def __bool__(self):
        raise RuntimeError("bool")

    def __str__(self):
        raise RuntimeError("str")

    __hash__ = object.__hash__


# -- Seed examples from the blueprints ------------------------------------------------------------

@pytest.mark.parametrize("duration, expected", [
    (14399, False), (14400, False), (14400.5, True), (Decimal("14401"), True), (None, False), ("5h", False),
])
def test_seed_workflow_duration_over_4h(duration, expected):
    condition = parse("workflow_duration > 4h")
    assert condition.evaluate({"workflow_duration": duration}) is expected
    assert condition.names == {"workflow_duration"}


@pytest.mark.parametrize("source, cost, expected", [
    ("cost_estimate > $50", Decimal("50.00"), False),
    ("cost_estimate > $50", Decimal("50.01"), True),
    ("cost_estimate > $50", 51, True),
    ("cost_estimate > $20", 20.0, False),
    ("cost_estimate > $20", 20.5, True),
    ("cost_estimate > $20", None, False),
])
def test_seed_cost_estimate(source, cost, expected):
    assert parse(source).evaluate({"cost_estimate": cost}) is expected
    assert parse(source).names == {"cost_estimate"}


@pytest.mark.parametrize("operations, expected", [
    (["deployment_to_production"], True),
    ({"review", "deployment_to_production"}, True),
    (("deployment_to_production",), True),
    ("deployment_to_production", True),
    (["review"], False),
    ("deployment_to_production_eu", False),  # a lone string is one name, not text to search in
    ([], False),
    (None, False),
])
def test_seed_operation_test(operations, expected):
    condition = parse("deployment_to_production")
    assert condition.evaluate({"operations": operations}) is expected
    assert condition.names == {"operations"}


def test_operation_test_missing_operations_fact_is_false():
    assert holds("deployment_to_production") is False


# -- Literals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("literal, value", [
    ("3", 3),
    ("3", Decimal("3.000")),
    ("2.5", 2.5),
    ("0.1", 0.1),  # exact: the float goes through str(), so 0.1 == 0.1
    ("-3", -3),
    ("30s", 30),
    ("15m", 900),
    ("4h", 14400),
    ("2d", 172800),
    ("1.5h", 5400),
    ("0.5m", 30),
    ("$50", Decimal("50")),
    ("$0.25", Decimal("0.25")),
    ("$0.25", 0.25),
    ("'single'", "single"),
    ('"double"', "double"),
    (r"'it\'s'", "it's"),
    (r'"say \"hi\""', 'say "hi"'),
    (r"'back\\slash'", "back\\slash"),
    ("''", ""),
    ("'a and b or (c)'", "a and b or (c)"),  # keywords and brackets inside strings are text
    ("true", True),
    ("false", False),
    ("null", None),
])
def test_literal_values(literal, value):
    assert holds(f"context.x == {literal}", context={"x": value}) is True
    assert holds(f"{literal} == context.x", context={"x": value}) is True


@pytest.mark.parametrize("literal, other", [
    ("3", 4), ("2.5", 2.4), ("30s", 31), ("1.5h", 5401), ("$0.25", Decimal("0.26")),
    ("'a'", "b"), ("true", False), ("false", True), ("null", 0), ("null", ""), ("0.3", 0.1 + 0.2),
])
def test_literal_differs_from_other_value(literal, other):
    assert holds(f"context.x == {literal}", context={"x": other}) is False


def test_durations_are_seconds_and_money_is_usd():
    assert holds("workflow_duration >= 30s and workflow_duration < 1m", workflow_duration=45)
    assert holds("workflow_duration == 2d", workflow_duration=2 * 86400)
    assert holds("cost_estimate <= $0.25", cost_estimate=Decimal("0.25"))
    assert not holds("cost_estimate < $0.25", cost_estimate=0.25)


def test_literals_alone_use_truthiness():
    assert holds("true") is True
    assert holds("false") is False
    assert holds("null") is False
    assert holds("0") is False
    assert holds("'x'") is True
    assert holds("''") is False


# -- Operators ------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, below, equal, above", [
    ("==", False, True, False),
    ("!=", True, False, True),
    ("<", True, False, False),
    ("<=", True, True, False),
    (">", False, False, True),
    (">=", False, True, True),
])
def test_comparison_operators(op, below, equal, above):
    for tokens, expected in ((9, below), (10, equal), (11, above)):
        assert holds(f"tokens_used {op} 10", tokens_used=tokens) is expected, (op, tokens)
    for text, expected in (("b", below), ("c", equal), ("d", above)):
        assert holds(f"step {op} 'c'", step=text) is expected, (op, text)


def test_operators_need_no_spaces():
    assert holds("workflow_duration>4h", workflow_duration=20000)
    assert holds("cost_estimate>=$1", cost_estimate=1)
    assert holds("step=='a'and(tokens_used!=3)", step="a", tokens_used=4)


def test_and_or_not():
    assert holds("true and true") is True
    assert holds("true and false") is False
    assert holds("false or true") is True
    assert holds("false or false") is False
    assert holds("not false") is True
    assert holds("not not true") is True
    assert holds("true and true and false") is False
    assert holds("false or false or true") is True


def test_and_or_on_values_use_truthiness():
    assert holds("context.a and context.b", context={"a": "x", "b": [1]}) is True
    assert holds("context.a or context.b", context={"a": "", "b": 0}) is False
    assert holds("not context.a", context={"a": {}}) is True


def test_precedence_and_binds_tighter_than_or():
    assert holds("true or false and false") is True  # true or (false and false)
    assert holds("false and false or true") is True  # (false and false) or true
    assert holds("(true or false) and false") is False


def test_precedence_not_binds_tighter_than_and():
    assert holds("not false and false") is False  # (not false) and false
    assert holds("not (false and false)") is True


def test_precedence_comparison_binds_tighter_than_and_or():
    assert holds("tokens_used > 5 and step == 'a' or step == 'b'", tokens_used=1, step="b") is True
    assert holds("tokens_used > 5 and (step == 'a' or step == 'b')", tokens_used=1, step="b") is False


def test_precedence_comparison_binds_tighter_than_not():
    # As in Python: `not step == 'x'` is `not (step == 'x')`.
    assert holds("not step == 'x'", step="y") is True
    assert holds("not step == 'x'", step="x") is False
    assert holds("not (step == 'x')", step="y") is True
    assert holds("not context.flag == false", context={"flag": True}) is True


def test_parentheses_nest():
    assert holds("((tokens_used > 1) and (not (step == 'a' or step == 'b')))", tokens_used=2, step="c") is True
    assert holds("(((true)))") is True


@pytest.mark.parametrize("source, expected", [
    ("'a' in context.tags", True),
    ("'z' in context.tags", False),
    ("'z' not in context.tags", True),
    ("'a' not in context.tags", False),
    ("1 in context.numbers", True),  # 1 == 1.0 exactly
    ("2.5 in context.numbers", True),
    ("'1' in context.numbers", False),  # a string is never a number
    ("'prod' in workflow", True),  # substring
    ("'staging' in workflow", False),
    ("'region' in context", True),  # mapping keys
    ("'tags' in context.labels", False),
    ("'eu' in context.labels", True),
    ("3 in workflow", False),
    ("'a' in context.missing", False),
    ("'a' not in context.missing", True),
    ("'a' in tokens_used", False),
    ("step in context.tags", True),
    ("context.tags in context.tags", False),
])
def test_membership(source, expected):
    facts = {
        "workflow": "deploy-prod",
        "step": "b",
        "tokens_used": 7,
        "context": {"tags": ["a", "b"], "numbers": [1.0, Decimal("2.5")], "region": "eu", "labels": {"eu": 1}},
    }
    assert parse(source).evaluate(facts) is expected


# -- Names ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FACTS - {"context"}))
def test_each_known_fact_is_read_by_name(name):
    assert holds(f"{name} == 'v'", **{name: "v"}) is True
    assert holds(f"{name} == null") is True  # missing fact is null
    assert parse(name).names == {name}


def test_bare_context_is_the_dict():
    assert holds("context", context={"a": 1}) is True
    assert holds("context", context={}) is False
    assert parse("context").names == {"context"}


@pytest.mark.parametrize("source, expected", [
    ("context.a.b == 1", True),
    ("context.items.0 == 'x'", True),
    ("context.items.1.name == 'n'", True),
    ("context.items.2 == null", True),  # index out of range
    ("context.items.x == null", True),  # a name on a list
    ("context.missing == null", True),
    ("context.missing.deeper == null", True),
    ("context.a.b.c == null", True),  # b is a number
    ("context.a.b == '1'", False),
    ("context.with-hyphen == 'h'", True),
    ("context.0 == 'zero'", True),  # digit keys are plain keys on mappings
    ("context.tuple.1 == 2", True),
])
def test_context_paths(source, expected):
    context = {
        "a": {"b": 1},
        "items": ["x", {"name": "n"}],
        "with-hyphen": "h",
        "0": "zero",
        "tuple": (1, 2),
    }
    condition = parse(source)
    assert condition.evaluate({"context": context}) is expected
    assert condition.names == {"context"}


@pytest.mark.parametrize("context", [None, "text", 5, [1, 2]])
def test_context_paths_on_non_mapping_context_are_null(context):
    assert holds("context.a == null", context=context) is True


def test_hyphenated_operation_names_are_not_arithmetic():
    condition = parse("deploy-prod")
    assert condition.evaluate({"operations": ["deploy-prod"]}) is True
    assert condition.evaluate({"operations": ["deploy"]}) is False


def test_operation_test_combined_with_facts():
    condition = parse("deploy-prod and cost_estimate > $20 or not review")
    assert condition.names == {"operations", "cost_estimate"}
    assert condition.evaluate({"operations": ["deploy-prod"], "cost_estimate": 21}) is True
    assert condition.evaluate({"operations": ["deploy-prod", "review"], "cost_estimate": 19}) is False
    assert condition.evaluate({"operations": [], "cost_estimate": 19}) is True


def test_operation_names_in_a_mapping_are_its_keys():
    assert holds("review", operations={"review": True}) is True


def test_keywords_are_case_sensitive_and_whole_words():
    assert holds("notice", operations=["notice"]) is True  # not "not ice"
    assert holds("android", operations=["android"]) is True
    assert holds("True", operations=["True"]) is True  # an operation named True, not the constant


# -- Never raising, whatever the facts ----------------------------------------------------------

@pytest.mark.parametrize("source, facts, expected", [
    ("workflow == 5", {"workflow": "5"}, False),
    ("workflow != 5", {"workflow": "5"}, True),
    ("cost_estimate > 5", {"cost_estimate": None}, False),
    ("cost_estimate < 5", {"cost_estimate": None}, False),
    ("cost_estimate != 5", {"cost_estimate": None}, True),
    ("cost_estimate == null", {"cost_estimate": 0}, False),
    ("step < 3", {"step": "a"}, False),
    ("step >= 3", {"step": "a"}, False),
    ("tokens_used == true", {"tokens_used": 1}, False),  # a bool is not a number
    ("tokens_used == 1", {"tokens_used": True}, False),
    ("context.x > 1", {"context": {"x": [2]}}, False),
    ("context.x < 'b'", {"context": {"x": {"a": 1}}}, False),
    ("workflow_duration > 1", {"workflow_duration": float("nan")}, False),
    ("workflow_duration == workflow_duration", {"workflow_duration": float("nan")}, False),
    ("workflow_duration > 1", {"workflow_duration": float("inf")}, False),
    ("cost_estimate < 1", {"cost_estimate": Decimal("NaN")}, False),
    ("cost_estimate == 1", {"cost_estimate": Decimal("sNaN")}, False),
    ("tokens_used > 1", {"tokens_used": 10 ** 5000}, False),  # too long for str(): not a number
])
def test_type_mismatches_are_false_not_errors(source, facts, expected):
    assert parse(source).evaluate(facts) is expected


WEIRD_VALUES = [
    None, True, False, 0, -1, 2.5, float("nan"), float("inf"), Decimal("NaN"), Decimal("sNaN"), Decimal("-0"),
    "", "x", [], [1, "a", None], (), set(), {}, {"a": {"b": [1]}}, b"bytes", object(), Hostile(), 10 ** 5000,
]
PROBES = [
    "workflow_duration > 4h", "cost_estimate <= $50", "tokens_used == 3", "step != 'a'", "workflow >= 'm'",
    "operation == null", "context.a.b.0 == 1", "context", "workflow_type in context", "'a' not in step",
    "step in context.a", "deploy-prod", "not context.a or context.b and tokens_used", "workflow_type < operation",
]


@pytest.mark.parametrize("value", WEIRD_VALUES, ids=lambda value: type(value).__name__)
def test_evaluation_never_raises(value):
    facts = dict.fromkeys(FACTS | {"operations"}, value)
    for source in PROBES:
        assert parse(source).evaluate(facts) in (True, False), source
        assert parse(source).evaluate({"context": {"a": value, "b": {"c": value}}}) in (True, False), source


@pytest.mark.parametrize("facts", [None, {}, ItemsOnly(), ItemsOnly(tokens_used=3), [], "nonsense"])
def test_odd_facts_containers(facts):
    expected = isinstance(facts, ItemsOnly) and bool(facts.values)
    assert parse("tokens_used == 3").evaluate(facts) is expected


# -- Lazy fact lookup -------------------------------------------------------------------------------

def test_only_needed_facts_are_read():
    facts = StrictFacts({"cost_estimate"}, cost_estimate=60)
    assert parse("cost_estimate > $50").evaluate(facts) is True
    assert facts.reads == ["cost_estimate"]


def test_short_circuit_skips_unneeded_facts():
    assert parse("false and cost_estimate > $50").evaluate(StrictFacts(set())) is False
    assert parse("true or cost_estimate > $50").evaluate(StrictFacts(set())) is True
    facts = StrictFacts({"tokens_used"}, tokens_used=10)
    assert parse("tokens_used > 5 or workflow_duration > 1h or deploy").evaluate(facts) is True
    facts = StrictFacts({"step"}, step="a")
    assert parse("step == 'b' and (context.x or deploy)").evaluate(facts) is False


def test_operation_test_reads_only_operations():
    facts = StrictFacts({"operations"}, operations=["deploy"])
    assert parse("deploy").evaluate(facts) is True
    assert facts.reads == ["operations"]


def test_context_path_reads_only_context():
    facts = StrictFacts({"context"}, context={"a": [5]})
    assert parse("context.a.0 == 5 and context.a.0 > 1").evaluate(facts) is True
    assert facts.reads == ["context"]


def test_each_fact_is_read_once_per_evaluation():
    facts = StrictFacts({"workflow_duration"}, workflow_duration=7200)
    condition = parse("workflow_duration > 1h and workflow_duration < 4h and not (workflow_duration == 3h)")
    assert condition.evaluate(facts) is True
    assert condition.evaluate(facts) is True
    assert facts.reads == ["workflow_duration", "workflow_duration"]  # once per evaluate() call


@pytest.mark.parametrize("source, names", [
    ("workflow_duration > 4h", {"workflow_duration"}),
    ("context.a == step", {"context", "step"}),
    ("context", {"context"}),
    ("deploy or review", {"operations"}),
    ("true and 3 > 2", set()),
    ("'deploy' in context.ops and tokens_used > 1 and operation == workflow_type",
     {"context", "tokens_used", "operation", "workflow_type"}),
])
def test_names_lists_the_facts_read(source, names):
    assert parse(source).names == frozenset(names)
    assert isinstance(parse(source).names, frozenset)


# -- Parse API: caching, immutability, safety ------------------------------------------------------

def test_parse_is_cached_and_conditions_are_immutable():
    condition = parse("tokens_used > 3")
    assert parse("tokens_used > 3") is condition
    assert isinstance(condition, Condition)
    assert condition.source == "tokens_used > 3"
    with pytest.raises(dataclasses.FrozenInstanceError):
        condition.source = "true"
    assert condition == Condition("tokens_used > 3", frozenset({"tokens_used"}), ("literal", True))  # by source
    assert hash(condition) == hash(parse("tokens_used > 3"))


def test_limits_allow_the_maximum():
    assert parse("a" * MAX_LENGTH).names == {"operations"}
    assert holds("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH) is True
    assert holds("not " * MAX_DEPTH + "true") is True  # an even count
    long_chain = " or ".join(["x"] * 199 + ["y"])  # flat, so evaluation does not recurse 200 deep
    assert len(long_chain) <= MAX_LENGTH and holds(long_chain, operations=["y"]) is True


def test_module_never_evaluates_text():
    tree = ast.parse(inspect.getsource(conditions))
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not called & {"eval", "exec", "compile", "__import__"}
    assert "literal_eval" not in attributes


# -- Malformed conditions ------------------------------------------------------------------------

MALFORMED = [
    (">", 0, "unexpected '>'"),
    ("a >", 3, "unexpected end of condition"),
    ("workflow_duration > > 4h", 20, "unexpected '>'"),
    ("(a", 2, "expected ')', found end of condition"),
    ("(a b)", 3, "expected ')', found 'b'"),
    ("a)", 1, "unexpected ')'"),
    ("()", 1, "unexpected ')'"),
    ("'unterminated", 0, "unterminated string"),
    ('step == "open', 8, "unterminated string"),
    (r"'escaped end\'", 0, "unterminated string"),
    ("4x", 0, "invalid literal '4x'"),
    ("4hours > 1", 0, "invalid literal '4hours'"),
    ("1.2.3", 0, "invalid literal '1.2.3'"),
    ("tokens_used > 5-3", 14, "invalid literal '5-3'"),
    ("1.", 0, "invalid literal '1.'"),
    ("$", 0, "expected an amount after '$'"),
    ("cost_estimate > $x", 16, "expected an amount after '$'"),
    ("$5x", 0, "invalid literal '$5x'"),
    ("$1,000", 2, "unexpected ','"),
    (".5", 0, "unexpected '.'"),
    ("a < b < c", 6, "comparisons cannot be chained"),
    ("a == b != c", 7, "comparisons cannot be chained"),
    ("a in b in c", 7, "comparisons cannot be chained"),
    ("foo.bar", 0, "unknown path 'foo.bar'"),
    ("cost_estimate.x > 1", 0, "unknown path 'cost_estimate.x'"),
    ("step == operations.first", 8, "unknown path 'operations.first'"),
    ("context.", 7, "expected a key after 'context.'"),
    ("context..a", 7, "expected a key after 'context.'"),
    ("and", 0, "unexpected 'and'"),
    ("or a", 0, "unexpected 'or'"),
    ("not", 3, "unexpected end of condition"),
    ("in", 0, "unexpected 'in'"),
    ("not in x", 4, "unexpected 'in'"),
    ("a and", 5, "unexpected end of condition"),
    ("a or or b", 5, "unexpected 'or'"),
    ("a b", 2, "unexpected 'b'"),
    ("a not b", 2, "unexpected 'not'"),
    ("a = b", 2, "unexpected '='"),
    ("a == == b", 5, "unexpected '=='"),
    ("a - b", 2, "unexpected '-'"),
    ("a && b", 2, "unexpected '&'"),
    ("step == 'a'\n)", 12, "unexpected ')'"),
    ("a @ b", 2, "unexpected '@'"),
    ("", 0, "empty condition"),
    ("   ", 0, "empty condition"),
    ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), MAX_DEPTH, "nesting deeper than 50"),
    ("not " * (MAX_DEPTH + 1) + "a", 4 * MAX_DEPTH, "nesting deeper than 50"),
    ("(" * 400 + "a" + ")" * 400, MAX_DEPTH, "nesting deeper than 50"),  # not a RecursionError
    ("(not " * 30 + "a" + ")" * 30, 5 * 25, "nesting deeper than 50"),
    ("a or " * 400, MAX_LENGTH, "limit is 1000"),
    ("x" * (MAX_LENGTH + 1), MAX_LENGTH, "limit is 1000"),
]


@pytest.mark.parametrize("source, position, message", MALFORMED, ids=lambda value: repr(value)[:40])
def test_malformed_conditions_are_rejected_with_a_position(source, position, message):
    with pytest.raises(ConditionError) as caught:
        parse(source)
    error = caught.value
    assert error.position == position
    assert message in str(error)
    assert "\n" not in str(error)
    if len(source) <= MAX_LENGTH:
        assert f"at position {position} in {source!r}" in str(error)


def test_error_message_reads_well():
    with pytest.raises(ConditionError) as caught:
        parse("workflow_duration > > 4h")
    assert str(caught.value) == "unexpected '>' at position 20 in 'workflow_duration > > 4h'"
    assert caught.value.message == str(caught.value)


@pytest.mark.parametrize("source", [None, 5, 4.5, b"true", ["true"], {"a": 1}])
def test_non_strings_are_rejected(source):
    with pytest.raises(ConditionError, match="must be a string") as caught:
        parse(source)
    assert caught.value.position is None
    assert isinstance(caught.value, ValueError)


def test_error_is_a_value_error_with_optional_position():
    assert ConditionError("bad").position is None
    assert ConditionError("bad", 3).position == 3
    assert str(ConditionError("bad", 3)) == "bad"
