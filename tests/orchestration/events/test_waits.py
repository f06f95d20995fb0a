"""Which events a parked `wait_for` accepts (pure checks and the database lookup)."""
from django.utils import timezone

from orchestration.events.models import Event, EventWait
from orchestration.events.waits import event_fits, first_matching_event

SINCE = timezone.now() - timezone.timedelta(minutes=5)


def wait(match, correlation_id=""):
    return EventWait(event_type="reply", match=match, correlation_id=correlation_id, since=SINCE)


def event(payload, correlation_id="c", event_type="reply", ttl=None):
    return Event(event_type=event_type, payload=payload, correlation_id=correlation_id, ttl_seconds=ttl,
                 timestamp=timezone.now())


def test_match_values_are_literal_so_a_rendered_star_matches_only_a_star():
    assert not event_fits(wait({"customer": "*"}), event({"customer": "acme"}))
    assert event_fits(wait({"customer": "*"}), event({"customer": "*"}))
    assert event_fits(wait({"ref": "ORD-[1]"}), event({"ref": "ORD-[1]"}))


def test_type_correlation_time_and_expiry_all_count():
    assert event_fits(wait({}, "c"), event({}, "c"))
    assert not event_fits(wait({}, "c"), event({}, "d"))
    assert not event_fits(wait({}), event({}, event_type="other"))
    late = event({})
    late.timestamp = SINCE - timezone.timedelta(seconds=1)  # before the instance started
    assert not event_fits(wait({}), late)
    stale = event({}, ttl=1)
    stale.timestamp = timezone.now() - timezone.timedelta(seconds=5)
    assert not event_fits(wait({}), stale)


def test_the_lookup_finds_the_match_behind_any_number_of_other_events(db):
    now = timezone.now()
    Event.objects.bulk_create(Event(event_type="reply", payload={"order": n, "tags": ["x"]}, correlation_id="c",
                                    timestamp=now) for n in range(300))
    found = first_matching_event(wait({"order": 299, "tags": "x"}))
    assert found is not None and found.payload["order"] == 299
    assert first_matching_event(wait({"order": [298, 299]})).payload["order"] in (298, 299)
    assert first_matching_event(wait({"order": 300})) is None
    assert first_matching_event(wait({"tags.0": "x", "order": 5})).payload["order"] == 5
