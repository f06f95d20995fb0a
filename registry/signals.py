"""Signals of the registry: capabilities that derive state from definitions listen to them."""
from django.dispatch import Signal

# Sent by `definitions_apply` inside its transaction with `compiled` (the applied document) and
# `blueprint` (the Blueprint row, or None). A receiver that raises undoes the whole apply.
definitions_applied = Signal()
