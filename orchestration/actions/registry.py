"""The action registry, the `@action` decorator and the `ctx` handed to every action."""
import importlib
import inspect
from dataclasses import dataclass, field

from django.conf import settings


class ActionError(Exception):
    """Raised by an action to fail its attempt with a clear message (retry applies)."""


class ActionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ActionSpec:
    name: str
    func: object
    risk: str = "auto"
    output_schema: dict | None = None
    description: str = ""


_ACTIONS: dict[str, ActionSpec] = {}
PYTHON_PREFIX = "python:"


def action(name, *, risk="auto", output_schema=None, description=""):
    """Register `func(ctx, **inputs)` as the action `name`."""

    def register(func):
        _ACTIONS[name] = ActionSpec(name, func, risk, output_schema, description or (func.__doc__ or "").strip())
        return func

    return register


_loaded = False


def load_action_modules():
    """Import DAC_ACTION_MODULES, whose `@action`s register themselves. Done on the first lookup
    (and by a worker as it starts: orchestration.tasks), not at Django start-up: they import the
    engine and HTTP clients that most processes never need."""
    global _loaded
    for module in settings.DAC_ACTION_MODULES:
        importlib.import_module(module)
    _loaded = True


def _actions():
    if not _loaded:
        load_action_modules()
    return _ACTIONS


def _python_target(name):
    path = name[len(PYTHON_PREFIX):]
    module, _, func = path.rpartition(".")
    return module, func


def python_action_allowed(name):
    module, func = _python_target(name)
    allow = settings.DAC_PYTHON_ACTION_ALLOWLIST
    return bool(module and func) and any(module == m or module.startswith(m + ".") for m in allow)


def is_known(name):
    if name.startswith(PYTHON_PREFIX):
        return python_action_allowed(name)
    return name in _actions()


def get(name):
    """The ActionSpec for `name`; `python:` callables are imported on demand."""
    if name.startswith(PYTHON_PREFIX):
        if not python_action_allowed(name):
            raise ActionNotFound(f"python action '{name}' is not in DAC_PYTHON_ACTION_ALLOWLIST")
        module, func = _python_target(name)
        target = getattr(importlib.import_module(module), func, None)
        if not callable(target):
            raise ActionNotFound(f"'{name}' is not a callable")
        return ActionSpec(name, _plain_callable(target))
    try:
        return _actions()[name]
    except KeyError:
        raise ActionNotFound(f"unknown action '{name}'") from None


def _plain_callable(target):
    """A `python:` callable takes its inputs as keywords; it may also accept `ctx`."""
    wants_ctx = "ctx" in inspect.signature(target).parameters

    def call(ctx, **inputs):
        return target(ctx=ctx, **inputs) if wants_ctx else target(**inputs)

    return call


def names():
    return sorted(_actions())


@dataclass
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: object = 0
    model: str = ""


@dataclass
class ActionContext:
    """What an action sees of the engine: identity, heartbeat, usage and event emission."""

    instance_id: str
    workflow: str
    step_id: str
    attempt: int
    item_index: int | None = None
    heartbeat_fn: object = None
    usage: Usage = field(default_factory=Usage)
    emitted: list = field(default_factory=list)

    def heartbeat(self):
        if self.heartbeat_fn:
            self.heartbeat_fn()

    def report_usage(self, *, tokens_in=0, tokens_out=0, model="", cost_usd=None):
        from orchestration.costs import cost_of

        self.usage.tokens_in += int(tokens_in)
        self.usage.tokens_out += int(tokens_out)
        self.usage.model = model or self.usage.model
        cost = cost_usd if cost_usd is not None else cost_of(model, tokens_in, tokens_out)
        self.usage.cost_usd = self.usage.cost_usd + cost

    def emit(self, event_type, payload=None, *, correlation_id=None, priority=None):
        """Queue an event; it is published when the step's completion is committed, with the
        instance's correlation id unless one is given."""
        self.emitted.append({"event": event_type, "payload": payload or {}, "correlation_id": correlation_id,
                             "priority": priority})
