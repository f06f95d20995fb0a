"""Celery work that a transition produces, sent only after its transaction commits."""
import logging
from dataclasses import dataclass, field

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass
class Effects:
    dispatches: list = field(default_factory=list)  # [canvas.StepDispatch]
    revoke_task_ids: list = field(default_factory=list)
    compensation: tuple | None = None  # (instance_id, [step_run_id, ...])

    def __bool__(self):
        return bool(self.dispatches or self.revoke_task_ids or self.compensation)

    def send_on_commit(self):
        if self:
            transaction.on_commit(self._send)

    def _send(self):
        from dacproject.celery import app
        from orchestration import canvas

        # A lost publish is not lost work: the steps stay `ready` in the database and the
        # reconciler dispatches them again.
        if self.dispatches:
            canvas.dispatch_signature(self.dispatches).apply_async()
        if self.compensation:
            canvas.compensation_signature(*self.compensation).apply_async()
        if self.revoke_task_ids:
            app.control.revoke(self.revoke_task_ids, terminate=True)
