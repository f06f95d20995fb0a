"""A step's `rate_limit` must name a bucket in force (its blueprint's, DAC_RATE_LIMITS, or an
applied blueprint's) and cost no more than the bucket holds; otherwise nothing is registered."""
import pytest

from registry import services
from tests.support.helpers import apply_yaml

from .test_bad_input import rejected

BUCKETS = """
name: buckets
coordination:
  rate_limits: {llm: {limit: 60, per: minute}}
workflows: []
"""


def workflow(key, cost=1, *, kind="action: noop"):
    return f"""
id: limited
steps:
  - {{id: call, {kind}, rate_limit: {{key: {key}, cost: {cost}}}}}
"""


def only_error(exc):
    (error,) = exc.errors
    return error


def test_an_unknown_bucket_names_the_step_field_and_the_known_buckets(baseline, settings):
    settings.DAC_RATE_LIMITS = "search=5/second"
    apply_yaml(BUCKETS)
    error = only_error(rejected(workflow("nope")))
    assert (error.step, error.field) == ("call", "rate_limit.key")
    assert "unknown rate-limit bucket 'nope' (known: llm, search)" in error.message
    assert "coordination.rate_limits" in error.message and "DAC_RATE_LIMITS" in error.message


def test_with_no_bucket_anywhere_the_message_says_so(baseline, settings):
    settings.DAC_RATE_LIMITS = ""
    assert "(known: none)" in only_error(rejected(workflow("llm"))).message


def test_buckets_from_the_environment_and_applied_blueprints_are_known(baseline, settings):
    settings.DAC_RATE_LIMITS = "search=5/second"
    apply_yaml(BUCKETS)
    services.compile_source(workflow("search", 5), file="env.yaml")
    services.compile_source(workflow("llm", 60), file="applied.yaml")


def test_a_cost_above_the_bucket_limit_could_never_run(baseline, settings):
    settings.DAC_RATE_LIMITS = "search=5/second"
    error = only_error(rejected(workflow("search", 6)))
    assert (error.step, error.field) == ("call", "rate_limit.cost")
    assert "more than bucket 'search' ever holds (limit 5)" in error.message


def test_a_blueprint_may_use_its_own_buckets_and_their_limit_counts(baseline):
    text = """
name: own-buckets
coordination:
  rate_limits: {slow: {limit: 2, per: second}}
workflows:
  - id: uses-own
    steps: [{id: call, action: noop, rate_limit: {key: slow, cost: COST}}]
"""
    services.definitions_apply(compiled=services.compile_source(text.replace("COST", "2")), actor="test")
    error = only_error(rejected(text.replace("COST", "3")))
    assert (error.workflow, error.step, error.field) == ("uses-own", "call", "rate_limit.cost")


def test_a_blueprint_that_drops_a_bucket_its_workflow_uses_is_refused(baseline):
    apply_yaml("""
name: dropping
coordination:
  rate_limits: {gone: {limit: 5, per: second}}
workflows:
  - id: still-uses-it
    steps: [{id: call, action: noop, rate_limit: {key: gone}}]
""")
    error = only_error(rejected("""
name: dropping
workflows:
  - id: still-uses-it
    steps: [{id: call, action: noop, rate_limit: {key: gone}}]
"""))
    assert (error.workflow, error.step, error.field) == ("still-uses-it", "call", "rate_limit.key")


@pytest.mark.parametrize("kind", ["wait_for: {event: go}", "spawn: {workflow: existing-flow}"])
def test_only_action_steps_take_tokens(baseline, settings, kind):
    settings.DAC_RATE_LIMITS = "search=5/second"
    error = only_error(rejected(workflow("search", kind=kind)))
    assert (error.step, error.field) == ("call", "rate_limit")
