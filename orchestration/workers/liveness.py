"""The beat of a worker's main process: a daemon thread keeps its WorkerBeat row fresh.

The row is written when the worker has set up (`celeryd_after_setup`), before its pool forks and
its consumer takes a message, so a worker has its row before it can claim anything, and what still
runs under its name then is a previous process's (services.worker_register). It is deleted at a
clean shutdown (`worker_shutdown`). Only the thread uses the database afterwards, on its own
connection; a forked pool process never touches it (psycopg closes a connection only in the
process that opened it). Nothing heavy is imported until a worker starts: every Django process
loads this module.
"""
import logging
import os
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

logger = logging.getLogger(__name__)

# While the database cannot be reached, try again this often rather than every beat interval, so
# that when it is back every worker beats again at once (see services: after an outage).
RETRY_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 5.0

_running = None


class Liveness:
    """The beating thread of one worker process."""

    def __init__(self, hostname):
        self.hostname = hostname
        self.pid = os.getpid()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dac-worker-beat", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._thread.join(STOP_TIMEOUT_SECONDS)

    def _run(self):
        from .services import worker_beat, worker_forget

        failing = False
        while not self._stopping.wait(RETRY_SECONDS if failing else settings.DAC_WORKER_BEAT_SECONDS):
            try:
                close_old_connections()  # drops a connection the database closed, or one past its age
                worker_beat(hostname=self.hostname, pid=self.pid)
            except Exception:  # noqa: BLE001 - the thread must outlive any error, or the live worker looks dead
                if not failing:
                    logger.warning("worker %s: cannot write its beat; retrying", self.hostname, exc_info=True)
                failing = True
                connection.close()
                continue
            if failing:
                logger.warning("worker %s: beating again", self.hostname)
            failing = False
        try:
            worker_forget(hostname=self.hostname, pid=self.pid)
        except DatabaseError:  # the row goes stale instead: its steps are recovered a few seconds later
            logger.warning("worker %s: could not delete its beat row", self.hostname, exc_info=True)
        finally:
            connection.close()


def _worker_started(sender, **_):
    """`celeryd_after_setup` (sender: the worker's node name): register, then beat."""
    from .services import worker_register

    global _running
    try:
        recovered = worker_register(hostname=sender, pid=os.getpid())
        if any(recovered.values()):
            logger.warning("worker %s: recovered what its previous process left running: %s", sender, recovered)
    except DatabaseError:
        logger.warning("worker %s: cannot register its beat yet", sender, exc_info=True)
    finally:
        connection.close()  # the pool forks next: it must not inherit this thread's connection
    _running = Liveness(sender).start()


def _worker_stopping(**_):
    if _running is not None:
        _running.stop()


def connect_signals():
    """Called from orchestration's AppConfig.ready: every worker beats."""
    from celery.signals import celeryd_after_setup, worker_shutdown

    celeryd_after_setup.connect(_worker_started, weak=False, dispatch_uid="dac-worker-liveness-start")
    worker_shutdown.connect(_worker_stopping, weak=False, dispatch_uid="dac-worker-liveness-stop")
