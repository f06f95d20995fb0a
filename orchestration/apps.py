from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "orchestration"

    def ready(self):
        from .actions.registry import load_action_modules

        load_action_modules()
