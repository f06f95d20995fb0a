"""End-to-end engine semantics (DESIGN §4) on real workers, PostgreSQL and Redis."""
import pytest

from governance.escalations.services import step_decide
from orchestration.models import StepAttempt, StepRun
from tests.support.helpers import apply_spec, finished, start, step

pytestmark = pytest.mark.integration


def statuses(instance):
    return dict(StepRun.objects.filter(instance_id=instance.id).values_list("step_id", "status"))


def test_a_slow_branch_does_not_delay_an_independent_one(live):
    apply_spec({"id": "branches", "steps": [
        {"id": "root", "action": "noop"},
        {"id": "slow", "action": "sleep", "with": {"seconds": 2}, "depends_on": ["root"]},
        {"id": "fast1", "action": "noop", "depends_on": ["root"]},
        {"id": "fast2", "action": "noop", "depends_on": ["fast1"]},
        {"id": "fast3", "action": "noop", "depends_on": ["fast2"]},
        {"id": "end", "action": "noop", "depends_on": ["slow", "fast3"]},
    ]})
    instance = finished(start("branches"))
    assert instance.status == "completed"
    slow, fast3, end = step(instance, "slow"), step(instance, "fast3"), step(instance, "end")
    # No layer barrier: the fast chain's third step is done while the slow sibling still runs.
    assert fast3.finished_at < slow.finished_at
    assert end.started_at >= slow.finished_at


def test_when_skips_and_skips_propagate_but_a_merge_runs_after_exclusive_choice(live):
    apply_spec({"id": "choice", "steps": [
        {"id": "decide", "action": "echo", "with": {"route": "{{ context.route }}"}},
        {"id": "left", "action": "echo", "with": {"side": "L"}, "depends_on": ["decide"],
         "when": "{{ steps.decide.output.route == 'left' }}"},
        {"id": "right", "action": "echo", "with": {"side": "R"}, "depends_on": ["decide"],
         "when": "{{ steps.decide.output.route == 'right' }}"},
        {"id": "after_right", "action": "noop", "depends_on": ["right"]},
        {"id": "merge", "action": "echo", "depends_on": ["left", "right"],
         "with": {"got": "{{ (steps.left.output or steps.right.output).side }}"}},
    ]})
    instance = finished(start("choice", {"route": "left"}))
    assert instance.status == "completed"
    assert statuses(instance) == {"decide": "completed", "left": "completed", "right": "skipped",
                                  "after_right": "skipped", "merge": "completed"}
    assert step(instance, "merge").output == {"got": "L"}


def test_join_any_starts_on_the_first_completed_dependency(live):
    apply_spec({"id": "race", "steps": [
        {"id": "quick", "action": "echo", "with": {"who": "quick"}},
        {"id": "slow", "action": "sleep", "with": {"seconds": 2}},
        {"id": "first", "action": "echo", "join": "any", "depends_on": ["quick", "slow"],
         "with": {"winner": "{{ steps.quick.output.who if steps.quick.status == 'completed' else 'slow' }}"}},
    ]})
    instance = finished(start("race"))
    assert instance.status == "completed"
    assert step(instance, "first").output == {"winner": "quick"}
    assert step(instance, "first").finished_at < step(instance, "slow").finished_at


def test_foreach_keeps_item_order_and_respects_max_parallel(live):
    apply_spec({"id": "mapper", "steps": [
        {"id": "each", "action": "sleep", "foreach": "{{ context.waits }}", "max_parallel": 2,
         "with": {"seconds": "{{ item }}"}},
        {"id": "total", "action": "echo", "depends_on": ["each"],
         "with": {"n": "{{ steps.each.output | length }}", "first": "{{ steps.each.output[0].slept }}"}},
    ]})
    waits = [0.4, 0.1, 0.3, 0.0, 0.2]
    instance = finished(start("mapper", {"waits": waits}))
    assert instance.status == "completed"
    assert step(instance, "each").output == [{"slept": w} for w in waits]
    assert step(instance, "total").output == {"n": 5, "first": 0.4}
    spans = sorted((a.started_at, a.finished_at) for a in StepAttempt.objects.filter(step_run__step_id="each",
                                                                                     step_run__instance_id=instance.id))
    overlapping = max(sum(1 for s, f in spans if s <= start_ < f) for start_, _ in spans)
    assert overlapping <= 2


def test_foreach_over_an_empty_list_completes_with_an_empty_output(live):
    apply_spec({"id": "empty-map", "steps": [{"id": "each", "action": "echo", "foreach": [], "with": {"x": 1}}]})
    instance = finished(start("empty-map"))
    assert instance.status == "completed"
    assert step(instance, "each").output == []


def test_a_failing_foreach_item_fails_the_step_after_its_retries(live):
    apply_spec({"id": "map-fail", "steps": [
        {"id": "each", "action": "fail", "foreach": [0, 5, 0], "with": {"times": "{{ item }}"},
         "retry": {"max_attempts": 2, "backoff": "fixed", "base_seconds": 0.1, "jitter": False}},
    ]})
    instance = finished(start("map-fail"))
    assert instance.status == "failed"
    run = step(instance, "each")
    assert run.status == "failed"
    assert list(run.error["items"]) == ["1"]
    assert StepAttempt.objects.filter(step_run=run, item_index=1).count() == 2


def test_retries_are_recorded_per_attempt_and_then_succeed(live):
    apply_spec({"id": "flaky", "steps": [
        {"id": "f", "action": "fail", "with": {"times": 2, "message": "boom"},
         "retry": {"max_attempts": 3, "backoff": "exponential", "base_seconds": 0.2, "jitter": False}},
    ]})
    instance = finished(start("flaky"))
    assert instance.status == "completed"
    attempts = list(StepAttempt.objects.filter(step_run__instance_id=instance.id).order_by("number"))
    assert [(a.number, a.status, a.error_type) for a in attempts] == [
        (1, "failed", "ActionError"), (2, "failed", "ActionError"), (3, "succeeded", "")]
    assert attempts[0].error_message == "boom" and "ActionError" in attempts[0].traceback
    assert all(a.worker for a in attempts)
    # Exponential backoff: 0.2 s then 0.4 s between attempts (scheduled by countdown).
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4
    assert step(instance, "f").attempts == 3


def test_retries_exhausted_fail_the_instance_with_the_error(live):
    apply_spec({"id": "hopeless", "steps": [
        {"id": "f", "action": "fail", "with": {"message": "always"}, "retry": {"max_attempts": 2, "base_seconds": 0}},
        {"id": "never", "action": "noop", "depends_on": ["f"]},
    ]})
    instance = finished(start("hopeless"))
    assert instance.status == "failed"
    assert instance.error["step"] == "f" and instance.error["message"] == "always"
    assert statuses(instance) == {"f": "failed", "never": "cancelled"}


def test_timeout_seconds_fails_the_attempt_and_retry_applies(live):
    apply_spec({"id": "slowpoke", "steps": [
        {"id": "s", "action": "sleep", "with": {"seconds": 30}, "timeout_seconds": 1,
         "retry": {"max_attempts": 2, "base_seconds": 0}},
    ]})
    instance = finished(start("slowpoke"), timeout=40)
    assert instance.status == "failed"
    attempts = StepAttempt.objects.filter(step_run__instance_id=instance.id).order_by("number")
    assert [a.error_type for a in attempts] == ["TimeoutError", "TimeoutError"]
    assert all((a.finished_at - a.started_at).total_seconds() < 5 for a in attempts)


def test_on_error_continue_lets_dependents_run(live):
    apply_spec({"id": "tolerant", "steps": [
        {"id": "optional", "action": "fail", "on_error": "continue"},
        {"id": "next", "action": "echo", "with": {"prev": "{{ steps.optional.status }}"}, "depends_on": ["optional"]},
    ]})
    instance = finished(start("tolerant"))
    assert instance.status == "completed"
    assert step(instance, "next").output == {"prev": "failed"}


def test_saga_compensates_completed_steps_in_reverse_completion_order(live):
    apply_spec({"id": "saga", "steps": [
        {"id": "charge", "action": "demo.charge", "with": {"amount": 5},
         "compensate": {"action": "demo.refund", "with": {"charge_id": "{{ steps.charge.output.charge_id }}"}}},
        {"id": "reserve", "action": "demo.reserve", "depends_on": ["charge"],
         "compensate": {"action": "demo.release", "with": {"reservation": "{{ steps.reserve.output.reservation }}"}}},
        {"id": "notify", "action": "noop", "depends_on": ["charge"]},
        {"id": "ship", "action": "fail", "with": {"message": "no courier"}, "depends_on": ["reserve", "notify"]},
    ]})
    instance = finished(start("saga"))
    assert instance.status == "failed"
    assert statuses(instance) == {"charge": "compensated", "reserve": "compensated", "notify": "completed",
                                  "ship": "failed"}
    charge, reserve = step(instance, "charge"), step(instance, "reserve")
    assert reserve.completed_seq > charge.completed_seq
    assert reserve.compensated_at < charge.compensated_at


def test_output_over_the_size_limit_fails_the_attempt(live, settings):
    apply_spec({"id": "bigout", "steps": [
        {"id": "big", "action": "echo", "with": {"blob": "{{ 'x' * 2000000 }}"}},
    ]})
    instance = finished(start("bigout"))
    run = step(instance, "big")
    assert run.status == "failed"
    assert "DAC_MAX_OUTPUT_BYTES" in run.error["message"]


def test_output_schema_violations_fail_the_attempt(live):
    apply_spec({"id": "schema", "steps": [
        {"id": "s", "action": "echo", "with": {"score": "high"},
         "output_schema": {"type": "object", "required": ["score", "verdict"],
                           "properties": {"score": {"type": "number"}}}},
    ]})
    instance = finished(start("schema"))
    message = step(instance, "s").error["message"]
    assert "output_schema" in message and "'verdict' is a required property" in message
    assert "score: 'high' is not of type 'number'" in message


def test_attempts_record_resolved_inputs_with_secrets_masked(live):
    apply_spec({"id": "secretive", "steps": [
        {"id": "call", "action": "echo", "with": {"auth": "Bearer {{ secrets.TEST_TOKEN }}", "n": "{{ 1 + 1 }}"}},
    ]})
    instance = finished(start("secretive"))
    attempt = StepAttempt.objects.get(step_run__instance_id=instance.id)
    assert attempt.inputs == {"auth": "Bearer ***", "n": 2}
    assert attempt.output == {"auth": "Bearer ***", "n": 2}
    assert step(instance, "call").output == {"auth": "Bearer ***", "n": 2}


def test_a_template_error_at_run_time_fails_the_step_with_its_message(live):
    apply_spec({"id": "needs-ctx", "steps": [{"id": "s", "action": "echo", "with": {"u": "{{ context.url.host }}"}}]})
    instance = finished(start("needs-ctx"))
    assert instance.status == "failed"
    assert "url" in step(instance, "s").error["message"]


def test_an_approval_gated_foreach_step_renders_items_before_parking_and_runs_them_once_approved(live):

    apply_spec({"id": "gated-map", "steps": [
        {"id": "each", "action": "echo", "foreach": "{{ context.xs }}", "with": {"n": "{{ item }}"}, "approval": True},
    ]})
    instance = start("gated-map", {"xs": [3, 1, 2]})
    from tests.support.helpers import step_reaches

    assert step_reaches(instance, "each", "waiting_approval").item_count == 3
    step_decide(instance_id=instance.id, step_id="each", decision="approve", actor="t")
    instance = finished(instance)
    assert step(instance, "each").output == [{"n": 3}, {"n": 1}, {"n": 2}]


def test_emitted_event_payloads_render_templates_including_the_steps_own_output(live):
    from orchestration.models import Event

    apply_spec({"id": "emitter", "steps": [
        {"id": "a", "action": "echo", "with": {"x": 4},
         "emit": [{"event": "done", "payload": {"x": "{{ steps.a.output.x }}", "who": "{{ context.who }}"}}, "plain"]},
    ]})
    instance = finished(start("emitter", {"who": "me"}))
    events = {e.event_type: e for e in Event.objects.filter(source_instance_id=instance.id)}
    assert events["done"].payload == {"x": 4, "who": "me"}
    assert events["plain"].payload == {}
    assert events["done"].source_workflow == "emitter"


def test_an_output_postgresql_cannot_store_fails_the_attempt_clearly(live):
    apply_spec({"id": "nul-out", "steps": [{"id": "s", "action": "python:tests.support.pyactions.nul"}]})
    instance = finished(start("nul-out"))
    assert "output.text contains a NUL character" in step(instance, "s").error["message"]


@pytest.mark.parametrize("value, fragment", [("nan", "not storable JSON"), ("inf", "not storable JSON")])
def test_inputs_postgresql_cannot_store_fail_the_attempt_clearly(live, value, fragment):
    apply_spec({"id": "nan-in", "steps": [{"id": "s", "action": "echo", "with": {"x": "{{ context.v | float }}"}}]})
    instance = finished(start("nan-in", {"v": value}))
    assert instance.status == "failed"
    assert fragment in step(instance, "s").error["message"]
