from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"

    def ready(self):
        from registry.signals import definitions_applied

        definitions_applied.connect(_policies_follow_definitions, dispatch_uid="dac-governance-policies")


def _policies_follow_definitions(sender, **kwargs):
    """A blueprint's rules hold for the next step everywhere once its apply commits."""
    from django.db import transaction

    from .escalations.policy import policies_changed

    transaction.on_commit(policies_changed)
