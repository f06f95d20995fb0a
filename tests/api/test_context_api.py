"""`/api/v1/context/{scope}/{key}` (DESIGN §6.5): versions, If-Match compare-and-set, 412."""
import json

import pytest

from governance.models import AuditEntry
from orchestration.events.models import Event


class Committing:
    """The API client, running after each write what its commit would (the Redis cache write):
    these tests' transactions never commit."""

    def __init__(self, api, capture):
        self.api, self.capture = api, capture

    def get(self, url):
        return self.api.get(url)

    def put(self, url, data, content_type, **headers):
        with self.capture(execute=True):
            return self.api.put(url, data=data, content_type=content_type, **headers)

    def delete(self, url, **headers):
        with self.capture(execute=True):
            return self.api.delete(url, **headers)


@pytest.fixture
def api(api, django_capture_on_commit_callbacks):
    return Committing(api, django_capture_on_commit_callbacks)


def put(api, url, body, **headers):
    return api.put(url, data=json.dumps(body), content_type="application/json", **headers)


URL = "/api/v1/context/global/deploy.lock"


def test_put_get_versions_and_etag(api):
    first = put(api, URL, {"value": {"holder": "a"}})
    assert first.status_code == 200
    assert first.json() == {"key": "deploy.lock", "scope": "global", "value": {"holder": "a"}, "version": 1,
                            "expires_at": None}
    assert first["ETag"] == '"1"'
    got = api.get(URL)
    assert got.json()["value"] == {"holder": "a"} and got["ETag"] == '"1"'
    assert put(api, URL, {"value": 2, "ttl_seconds": 30}).json()["version"] == 2
    assert api.get(URL).json()["expires_at"] is not None
    assert AuditEntry.objects.filter(verb="context.set", actor_name="operator").count() == 2
    changed = Event.objects.filter(event_type="context.changed").order_by("timestamp")
    assert [e.payload for e in changed] == [{"key": "deploy.lock", "scope": "global", "version": v} for v in (1, 2)]


def test_if_match_is_compare_and_set(api):
    assert put(api, URL, {"value": "mine"}, HTTP_IF_MATCH="0").json()["version"] == 1  # 0: only if absent
    taken = put(api, URL, {"value": "yours"}, HTTP_IF_MATCH="0")
    assert taken.status_code == 412
    assert taken.json()["error"]["code"] == "precondition_failed"
    assert taken.json()["error"]["details"] == {"current_version": 1}
    assert put(api, URL, {"value": "next"}, HTTP_IF_MATCH='"1"').json()["version"] == 2
    assert put(api, URL, {"value": "stale"}, HTTP_IF_MATCH="1").status_code == 412
    assert api.get(URL).json()["value"] == "next"


def test_delete_then_the_key_is_gone_and_its_version_keeps_growing(api):
    put(api, URL, {"value": 1})
    assert api.delete(URL, HTTP_IF_MATCH="7").status_code == 412
    assert api.delete(URL).status_code == 204
    assert api.get(URL).status_code == 404
    assert api.delete(URL).status_code == 404
    assert put(api, URL, {"value": 1}).json()["version"] == 3


def test_scopes_and_keys_with_slashes(api):
    url = "/api/v1/context/workflow_type:support/queue/depth"
    assert put(api, url, {"value": 3}).json()["scope"] == "workflow_type:support"
    assert api.get(url).json()["key"] == "queue/depth"
    assert api.get("/api/v1/context/global/queue/depth").status_code == 404


@pytest.mark.parametrize("url, body, headers", [
    ("/api/v1/context/galaxy/k", {"value": 1}, {}),
    ("/api/v1/context/global/bad key", {"value": 1}, {}),
    (URL, {"ttl_seconds": 5}, {}),
    (URL, [1, 2], {}),
    (URL, {"value": 1, "ttl_seconds": 0}, {}),
    (URL, {"value": 1, "ttl_seconds": 10**12}, {}),
    (URL, {"value": "\ud800"}, {}),
    (URL, {"value": 1}, {"HTTP_IF_MATCH": "latest"}),
])
def test_bad_writes_are_400s_and_change_nothing(api, url, body, headers):
    response = put(api, url, body, **headers)
    assert response.status_code == 400, response.content
    assert "error" in response.json()
    assert api.get(URL).status_code == 404
