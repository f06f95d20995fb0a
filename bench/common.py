"""What every benchmark shares: the bench database and Redis, its worker, polling and statistics."""
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/dac"  # as dacproject/settings.py
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BENCH_DB_NAME = "dac_bench"
BENCH_REDIS_DB = "10"

# --- Environment: the bench database and Redis, set before Django starts ------------------------

def _replace_path(url, path):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def bench_urls():
    """BENCH_DATABASE_URL / BENCH_REDIS_URL win; else DATABASE_URL / REDIS_URL (or the defaults)
    with the database swapped for dac_bench and Redis database 10."""
    db = os.environ.get("BENCH_DATABASE_URL") or _replace_path(
        os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, f"/{BENCH_DB_NAME}")
    rd = os.environ.get("BENCH_REDIS_URL") or _replace_path(
        os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL, f"/{BENCH_REDIS_DB}")
    return db, rd


def ensure_database(db_url):
    """Create the bench database when it does not exist (connecting to `postgres` to do so)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(db_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            print(f"bench: creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def migrate(env):
    # --skip-checks: the bench needs the schema, not the URL/admin checks of a tree others may be editing.
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks", "-v", "0"],
                   cwd=ROOT, env=env, check=True)


# --- Workers ------------------------------------------------------------------------------------

class Worker:
    """One `celery -A dacproject worker` process in its own session, with the bench's no-op task."""

    def __init__(self, env, *, name, concurrency=2, pool=None, queues="default", conf=()):
        self.env = env
        self.conf = list(conf)
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.hostname = f"{self.name}@{platform.node()}"
        self.args = ["worker", "-l", "warning", "-n", f"{self.name}@%h", "-Q", queues, "-c", str(concurrency),
                     "--without-gossip", "--without-mingle", "--include", "bench.tasks"]
        if pool:
            self.args += ["--pool", pool]
        self.proc = None

    def start(self):
        OUT.mkdir(parents=True, exist_ok=True)
        log = open(OUT / f"worker-{self.name.split('-')[0]}.log", "w")
        if self.conf:  # what-if: Celery settings overridden in the worker process only (bench/worker.py)
            command = [sys.executable, "-m", "bench.worker", *self.conf, "--", *self.args[1:]]
        else:
            command = [sys.executable, "-m", "celery", "-A", "dacproject", *self.args]
        self.proc = subprocess.Popen(command, cwd=ROOT,
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        from dacproject.celery import app

        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[self.hostname], timeout=0.5):
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.hostname} exited ({self.proc.returncode}); see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.hostname} did not answer a ping in 60 s; see {log.name}")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def processes(self):
        """The worker's main process and its pool processes (Linux /proc)."""
        pids, found = [self.proc.pid], []
        while pids:
            pid = pids.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").iterdir():  # children of every thread
                pids += [int(c) for c in (task / "children").read_text().split()]
        return found

    def cpu_seconds(self):
        """user + system CPU of the worker and its pool processes so far (Linux /proc; None elsewhere)."""
        tick = os.sysconf("SC_CLK_TCK")
        try:
            total = 0
            for pid in self.processes():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            return total / tick
        except (OSError, ValueError, IndexError):
            return None

    def rss_mb(self):
        """Resident memory of the worker and its pool processes (VmRSS summed: pages the pool shares
        with the main process after fork count in each), in MiB; None off Linux."""
        try:
            total_kb = 0
            for pid in self.processes():
                status = Path(f"/proc/{pid}/status").read_text()
                total_kb += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            return total_kb / 1024
        except (OSError, ValueError, StopIteration):
            return None

    def kill(self):
        """kill -9 of the whole worker (its session: the main process and its pool processes), as a
        crash of the machine or container would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # warm shutdown: the main process stops its pool children
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class Beat:
    """`celery beat` with the project's schedule (the reconciler, the sweeps), in its own session."""

    def __init__(self, env):
        self.env = env
        self.proc = None

    def start(self):
        OUT.mkdir(parents=True, exist_ok=True)
        log = open(OUT / "beat.log", "w")
        # The DatabaseScheduler keeps its state in the bench database; -s only keeps beat's file out of the tree.
        self.proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "dacproject", "beat", "-l", "warning",
                                      "-s", str(OUT / "beat-schedule")], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def tasks_run(hostname, task_name):
    """How many `task_name` tasks a worker has run since it started (its `inspect stats`)."""
    from dacproject.celery import app

    stats = app.control.inspect(destination=[hostname], timeout=1).stats() or {}
    return (stats.get(hostname) or {}).get("total", {}).get(task_name, 0)


# --- Small helpers --------------------------------------------------------------------------------

def _db_errors():
    from django.db import InterfaceError, OperationalError

    return OperationalError, InterfaceError


def wait_until(predicate, *, timeout, interval=0.05, what="condition"):
    """Poll `predicate`; a dropped database connection (someone restarted PostgreSQL) is reopened."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except _db_errors():
            connection.close()
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def resilient(measure, tries=3):
    """Run one measurement; if the database went away under it (this machine is shared, and
    test suites restart PostgreSQL), wait a little and measure again."""
    from django.db import connection

    for attempt in range(1, tries + 1):
        try:
            return measure()
        except _db_errors() as exc:
            if attempt == tries:
                raise
            print(f"bench: database error ({str(exc).strip()[:80]}); measuring again")
            connection.close()
            time.sleep(3)


def median(values):
    return statistics.median(values) if values else None


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def ms(seconds):
    return seconds * 1000.0


def rnd(value, digits=3):
    return None if value is None else round(value, digits)


def register(spec):
    import yaml

    from registry import services as registry

    compiled = registry.compile_source(yaml.safe_dump(spec, sort_keys=False), file=f"bench/{spec['id']}.yaml")
    registry.definitions_apply(compiled=compiled, actor="bench")


def reset_state(redis_client):
    """Empty the bench database's instance tables and the bench Redis database (no worker runs yet)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE orchestration_workflowinstance, orchestration_event, governance_auditentry, "
                       "orchestration_concurrencypool CASCADE")
    redis_client.flushdb()


def start_instance(workflow):
    from orchestration import engine

    return engine.instance_start(workflow=workflow, context={}, actor="bench")


def wait_finished(ids, *, timeout):
    from orchestration.models import WorkflowInstance
    from orchestration.states import INSTANCE_TERMINAL

    ids = list(ids)
    wait_until(lambda: WorkflowInstance.objects.filter(id__in=ids, status__in=INSTANCE_TERMINAL).count() == len(ids),
               timeout=timeout, interval=0.05, what=f"{len(ids)} instance(s) to finish")
    bad = WorkflowInstance.objects.filter(id__in=ids).exclude(status="completed").values_list("id", "status", "error")
    if bad:
        raise RuntimeError(f"instances did not complete: {list(bad)[:3]}")
