"""Canvas building is pure: these run without a broker."""
from celery.canvas import Signature, _chain, chord, group

from orchestration.canvas import StepDispatch, compensation_signature, dispatch_signature


def test_single_ready_step_is_one_task_with_its_queue_and_time_limits():
    sig = dispatch_signature([StepDispatch(step_run_id=7, attempt=2, queue="gpu", timeout_seconds=30)])
    assert isinstance(sig, Signature)
    assert sig.task == "orchestration.tasks.run_step"
    assert sig.args == (7, 2)
    assert sig.immutable
    assert sig.options["queue"] == "gpu"
    assert sig.options["soft_time_limit"] == 30
    assert sig.options["time_limit"] > 30


def test_steps_ready_together_go_out_as_one_group():
    sig = dispatch_signature([StepDispatch(1, 1), StepDispatch(2, 1), StepDispatch(3, 1)])
    assert isinstance(sig, group)
    assert [t.args for t in sig.tasks] == [(1, 1), (2, 1), (3, 1)]


def test_foreach_step_is_a_chord_joined_by_its_step():
    sig = dispatch_signature([StepDispatch(5, 1, items=((0, 1), (1, 1), (2, 1)))])
    assert isinstance(sig, chord)
    assert [t.args for t in sig.tasks] == [(5, 0, 1), (5, 1, 1), (5, 2, 1)]
    assert sig.body.task == "orchestration.tasks.join_items"
    assert sig.body.args == (5,)


def test_max_parallel_splits_items_into_that_many_chained_lanes():
    sig = dispatch_signature([StepDispatch(5, 1, items=tuple((i, 1) for i in range(5)), max_parallel=2)])
    lanes = sig.tasks
    assert len(lanes) == 2
    assert all(isinstance(lane, _chain) for lane in lanes)
    assert [[t.args[1] for t in lane.tasks] for lane in lanes] == [[0, 2, 4], [1, 3]]


def test_max_parallel_above_item_count_runs_all_items_at_once():
    sig = dispatch_signature([StepDispatch(5, 1, items=((0, 1), (1, 1)), max_parallel=10)])
    assert [t.task for t in sig.tasks] == ["orchestration.tasks.run_item"] * 2


def test_chord_and_plain_step_ready_together_share_one_group():
    sig = dispatch_signature([StepDispatch(1, 1), StepDispatch(2, 1, items=((0, 1), (1, 1)))])
    assert isinstance(sig, group)
    assert isinstance(sig.tasks[1], chord)


def test_compensation_is_a_chain_in_the_given_order_ending_with_the_finaliser():
    sig = compensation_signature("abc", [9, 4, 1])
    assert [t.task.rsplit(".", 1)[1] for t in sig.tasks] == ["compensate_step"] * 3 + ["finish_failed"]
    assert [t.args for t in sig.tasks] == [(9,), (4,), (1,), ("abc",)]


def test_a_redispatched_foreach_runs_only_the_given_items_at_their_next_attempt():
    sig = dispatch_signature([StepDispatch(5, 1, items=((2, 3), (4, 1)))])
    assert [t.args for t in sig.tasks] == [(5, 2, 3), (5, 4, 1)]


def test_instance_priority_is_inverted_for_redis_where_celery_serves_zero_first():
    urgent, normal, low = (dispatch_signature([StepDispatch(1, 1, priority=p)]) for p in (9, 5, 2))
    assert (urgent.options["priority"], normal.options["priority"], low.options["priority"]) == (0, 4, 7)


def test_a_retry_carries_its_backoff_as_a_countdown():
    assert dispatch_signature([StepDispatch(1, 2, countdown=4.5)]).options["countdown"] == 4.5


def test_a_wait_for_step_is_one_parking_task_without_time_limits():
    sig = dispatch_signature([StepDispatch(3, 1, kind="wait", timeout_seconds=30)])
    assert sig.task == "orchestration.events.tasks.park_wait"
    assert sig.args == (3, 1)
    assert "soft_time_limit" not in sig.options


def test_a_spawn_step_is_one_child_start():
    sig = dispatch_signature([StepDispatch(4, 2, kind="spawn")])
    assert (sig.task, sig.args) == ("orchestration.spawning.tasks.spawn_child", (4, None, 2))


def test_a_spawn_foreach_is_a_group_of_child_starts_one_per_given_item():
    sig = dispatch_signature([StepDispatch(4, 1, kind="spawn", items=((0, 1), (1, 1), (3, 2)))])
    assert isinstance(sig, group)
    assert [(t.task, t.args) for t in sig.tasks] == [("orchestration.spawning.tasks.spawn_child", (4, 0, 1)),
                                                     ("orchestration.spawning.tasks.spawn_child", (4, 1, 1)),
                                                     ("orchestration.spawning.tasks.spawn_child", (4, 3, 2))]


def test_a_rate_limited_step_carries_its_bucket_and_cost_as_a_keyword():
    sig = dispatch_signature([StepDispatch(6, 1, rate_limit=("llm", 2))])
    assert (sig.task, sig.args, sig.kwargs) == ("orchestration.tasks.run_step", (6, 1), {"rate_limit": ("llm", 2)})


def test_a_step_without_a_rate_limit_has_no_keywords():
    assert dispatch_signature([StepDispatch(6, 1)]).kwargs == {}


def test_every_item_of_a_rate_limited_foreach_carries_the_limit():
    sig = dispatch_signature([StepDispatch(5, 1, items=((0, 1), (1, 1)), max_parallel=1, rate_limit=("api", 1))])
    (lane,) = sig.tasks
    assert [(t.args, t.kwargs) for t in lane.tasks] == [((5, 0, 1), {"rate_limit": ("api", 1)}),
                                                         ((5, 1, 1), {"rate_limit": ("api", 1)})]
