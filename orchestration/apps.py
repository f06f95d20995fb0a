from django.apps import AppConfig


def _close_old_connections(**_):
    from django.db import close_old_connections

    close_old_connections()


class OrchestrationConfig(AppConfig):
    name = "orchestration"

    def ready(self):
        from celery.signals import task_postrun, task_prerun

        from registry.signals import definitions_applied

        from .actions.registry import load_action_modules
        from .events.triggers import on_definitions_applied
        from .resources import checks  # noqa: F401 - registers the settings checks

        load_action_modules()
        definitions_applied.connect(on_definitions_applied, dispatch_uid="dac-triggers-follow-definitions")
        # Infrastructure only: workers reuse database connections (CELERY_DB_REUSE_MAX), so
        # broken or over-age ones are dropped around each task, as Django does around requests.
        task_prerun.connect(_close_old_connections, weak=False, dispatch_uid="dac-close-old-connections-pre")
        task_postrun.connect(_close_old_connections, weak=False, dispatch_uid="dac-close-old-connections-post")
