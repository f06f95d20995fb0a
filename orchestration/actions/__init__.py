"""Actions: the units of work steps run. Register with `@action("name")`."""
from .registry import ActionContext, action

__all__ = ("action", "ActionContext")
