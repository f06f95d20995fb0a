"""A worker's liveness row: its main process beats it while the worker runs (orchestration.workers)."""
from django.db import models


class WorkerBeat(models.Model):
    """One running `celery worker`, by its node name (what attempts record as their `worker`).

    Both times are the database's clock, so liveness is judged with one clock whatever the hosts'.
    The row is deleted at a clean shutdown; a killed worker's row stays, and goes stale.
    """

    hostname = models.CharField(max_length=200, unique=True)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()

    def __str__(self):
        return f"{self.hostname} (pid {self.pid})"
