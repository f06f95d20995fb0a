import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.integration


def test_healthz_reports_database_redis_and_live_workers(live):
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "redis": True, "workers": True}


def test_healthz_is_503_naming_the_failing_dependency(live, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = APIClient().get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False and "Connection" in checks["redis"]["detail"]
    assert checks["database"]["ok"] is True
