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
        """Publish after commit. A failed publish is logged, never raised: the change is committed,
        the work stays in the database, and the reconciler sends it again."""
        from dacproject.celery import app
        from orchestration import canvas

        sends = []
        if self.dispatches:
            sends.append(("dispatch", lambda: canvas.dispatch_signature(self.dispatches).apply_async()))
        if self.compensation:
            sends.append(("compensation", lambda: canvas.compensation_signature(*self.compensation).apply_async()))
        if self.revoke_task_ids:
            sends.append(("revoke", lambda: app.control.revoke(self.revoke_task_ids, terminate=True)))
        for what, send in sends:
            try:
                send()
            except Exception:  # noqa: BLE001 - the broker may be down; the reconciler recovers
                logger.exception("could not publish %s after commit; the reconciler will retry", what)
