from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self):
        from .signals import definitions_applied

        definitions_applied.connect(_caches_follow_definitions, dispatch_uid="dac-registry-changes")


def _caches_follow_definitions(sender, **kwargs):
    """What was applied holds for the next step everywhere once the apply commits."""
    from django.db import transaction

    from .changes import registry_changed

    transaction.on_commit(registry_changed)
