"""Logging filters (settings.LOGGING)."""
import logging

SENDING_DUE_TASK = "Scheduler: Sending due task"  # celery.beat's line, args (entry name, task name)


class QuietPeriodicTasks(logging.Filter):
    """Drops Celery's own INFO lines about the beat's housekeeping tasks: the worker's "Task ...
    received" (celery.worker.strategy) and "Task ... succeeded in ...: {...}" (celery.app.trace),
    and beat's "Scheduler: Sending due task ..." (celery.beat).

    Why: these tasks (CELERY_BEAT_SCHEDULE: the reconciler, the sweeps, the audit sealer) run
    every 1 to 10 seconds, so those lines were most of the worker's and beat's logs (295 of 953
    lines in five minutes) and said nothing. Each of these tasks logs one INFO line itself when
    it did something (orchestration.periodic). Their warnings and errors (a failure, a retry)
    still pass, and so does every line about any other task: steps, events, notifications,
    scheduled workflow triggers.

    `tasks`: the task names to quiet; by default those of settings.CELERY_BEAT_SCHEDULE.
    """

    def __init__(self, name="", tasks=None):
        super().__init__(name)
        self._tasks = frozenset(tasks) if tasks is not None else None

    @property
    def tasks(self):
        if self._tasks is None:  # read on first use, once settings are surely loaded
            from django.conf import settings

            self._tasks = frozenset(entry["task"] for entry in getattr(settings, "CELERY_BEAT_SCHEDULE", {}).values())
        return self._tasks

    def filter(self, record):
        if record.levelno > logging.INFO:
            return True
        return task_of(record) not in self.tasks


def task_of(record):
    """The task a Celery log record is about, or None."""
    data = getattr(record, "data", None)  # celery.app.trace and celery.worker.strategy pass their context as `data`
    if isinstance(data, dict):
        return data.get("name")
    if isinstance(record.msg, str) and record.msg.startswith(SENDING_DUE_TASK):
        args = record.args if isinstance(record.args, tuple) else ()
        return args[1] if len(args) == 2 else None
    return None
