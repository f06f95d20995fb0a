from django.apps import AppConfig


def _close_old_connections(**_):
    from django.db import close_old_connections

    close_old_connections()


def _on_definitions_applied(sender, **kwargs):
    from .events.triggers import on_definitions_applied

    return on_definitions_applied(sender, **kwargs)


class OrchestrationConfig(AppConfig):
    name = "orchestration"

    def ready(self):
        # Nothing heavy is imported here: every process that sets Django up pays for it, and the CLI
        # answers in well under a second only without the engine, the action modules (requests,
        # the context services) or the spec compiler. They are imported where they are used: the
        # action modules by the first action lookup, or with orchestration.tasks (so a worker has
        # them before its first task); the trigger index by the first apply.
        from celery.signals import task_postrun, task_prerun

        from registry.signals import definitions_applied

        from .resources import checks  # noqa: F401 - registers the settings checks

        definitions_applied.connect(_on_definitions_applied, dispatch_uid="dac-triggers-follow-definitions")
        # Infrastructure only: workers reuse database connections (CELERY_DB_REUSE_MAX), so
        # broken or over-age ones are dropped around each task, as Django does around requests.
        task_prerun.connect(_close_old_connections, weak=False, dispatch_uid="dac-close-old-connections-pre")
        task_postrun.connect(_close_old_connections, weak=False, dispatch_uid="dac-close-old-connections-post")
        # A worker's main process beats its liveness row, so a killed worker's steps are recovered in seconds.
        from .workers.liveness import connect_signals

        connect_signals()
