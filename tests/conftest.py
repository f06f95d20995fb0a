"""Fixtures that run the real thing: a PostgreSQL test database, Redis, and `celery worker`
processes started for the session (never eager mode)."""
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.support.helpers import wait_until
from tests.support.stub_server import StubServer

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".run" / "test-logs"


def pytest_sessionstart(session):
    """The console's admin modules are imported on its first use (dacproject.admin_site), in the
    order Django's discovery gives; some test modules import one of them directly, which works
    only after that (governance.notifications.admin on its own meets an import cycle). So the
    console is discovered before tests are collected, as in any process that serves it."""
    from django.contrib import admin

    admin.site.discover()


@pytest.fixture(scope="session")
def stub_server():
    server = StubServer().start()
    yield server
    server.stop()


def _database_url():
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """A pool of `celery worker` processes running against the test database."""

    def __init__(self, stub_url):
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DAC_LLM_BASE_URL": f"{stub_url}/v1",
            "DB_CONN_MAX_AGE": "0",
        }
        self.procs = {}

    def start(self, *, concurrency=2, queues="default", env=None):
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        proc = self.spawn(["worker", "-l", "warning", "-c", str(concurrency), "-n", name, "-Q", queues,
                           "--without-gossip", "--without-mingle", "-E"], name.split("@")[0], env)
        hostname = name.replace("%h", os.uname().nodename)
        proc.dac_queues = queues.split(",")
        self.procs[hostname] = proc
        wait_until(lambda: self.ping(hostname), timeout=60, interval=0.5, message=f"worker {hostname} to answer")
        return hostname

    def spawn(self, args, log_name, env=None):
        """A `celery -A dacproject ...` process in its own session, so it can be killed whole."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / f"{log_name}.log", "w")
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "dacproject", *args], cwd=ROOT,
                                env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def ping(self, hostname):
        from dacproject.celery import app

        return app.control.ping(destination=[hostname], timeout=0.5)

    def stop(self, hostname, *, kill=False):
        proc = self.procs.pop(hostname)
        if kill:  # the main process and its pool children at once, as a crash would
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.terminate()
        proc.wait(timeout=60)

    def quiesce(self, timeout=30):
        """Stop consuming, let running tasks end, drop what is queued or scheduled, so the test
        database can be flushed without racing a worker's transaction (TRUNCATE would deadlock
        with it). Work a test set off (triggered chains, follow-ups, retries) cannot slip in."""
        from dacproject.celery import app

        destination = list(self.procs)
        for queue in self.queues():
            app.control.cancel_consumer(queue, destination=destination, reply=True, timeout=2)
        inspector = app.control.inspect(destination=destination, timeout=1)

        def idle():
            scheduled = [t["request"]["id"] for tasks in (inspector.scheduled() or {}).values() for t in tasks]
            if scheduled:
                app.control.revoke(scheduled, destination=destination)
            reserved = [t["id"] for tasks in (inspector.reserved() or {}).values() for t in tasks]
            if reserved:
                app.control.revoke(reserved, destination=destination)
            return not any((inspector.active() or {}).values()) and not scheduled and not reserved

        wait_until(idle, timeout=timeout, interval=0.2, message="workers to finish their tasks")
        app.control.purge()

    def resume(self):
        """Consume again after `quiesce`."""
        from dacproject.celery import app

        for queue in self.queues():
            app.control.add_consumer(queue, destination=list(self.procs), reply=True, timeout=2)

    def queues(self):
        return {"default"} | {q for proc in self.procs.values() for q in getattr(proc, "dac_queues", ())}

    def stop_all(self):
        for hostname in list(self.procs):
            self.stop(hostname)


@pytest.fixture(scope="session")
def workers(django_db_setup, django_db_blocker, stub_server):
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    pool = Workers(stub_server.url)
    pool.default = pool.start(concurrency=2)
    yield pool
    pool.stop_all()


@pytest.fixture
def live(transactional_db, workers):
    """For integration tests: committed data that the session's real workers can see."""
    workers.resume()
    yield workers
    workers.quiesce()


@pytest.fixture(autouse=True)
def _fresh_context_cache():
    """Test databases are emptied between tests; the shared-context cache in Redis must be too."""
    yield
    from orchestration.context.services import cache_clear

    cache_clear()


@pytest.fixture
def user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("operator", password="pw-operator-123")


@pytest.fixture
def api(user):
    """An API client authenticated with a token of `user` (an operator with no special permission)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def people(db, settings):
    """The cast of users and approver groups of tests/support/people.py."""
    from tests.support.people import FAST_HASHERS, create_people

    settings.PASSWORD_HASHERS = FAST_HASHERS
    return create_people()
