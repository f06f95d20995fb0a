"""Celery work that a transition produces, sent only after its transaction commits."""
import logging
import threading
from dataclasses import dataclass, field

from django.db import transaction

from orchestration.gathering import gathered, gathering

logger = logging.getLogger(__name__)
_batch = threading.local()
# Dispatches gathered by `dispatches_batched` go out at most this many at a time.
BATCH_FLUSH = 25


def dispatches_batched():
    """Gather the step dispatches of many committed transactions (a reaction task starting a
    batch of instances) and publish them as groups: one producer for many messages, and the
    first ones leave after at most BATCH_FLUSH starts."""
    return gathering(_batch, _publish_dispatches)


def _publish_dispatches(dispatches):
    from orchestration import canvas

    if not dispatches:
        return
    try:
        canvas.dispatch_signature(dispatches).apply_async()
    except Exception:  # noqa: BLE001 - the broker may be down; the reconciler recovers
        logger.exception("could not publish %d dispatch(es) after commit; the reconciler will retry",
                         len(dispatches))


@dataclass
class Effects:
    dispatches: list = field(default_factory=list)  # [canvas.StepDispatch]
    revoke_task_ids: list = field(default_factory=list)
    compensation: tuple | None = None  # (instance_id, [step_run_id, ...])
    # A step held `pending` for the calling task to claim inline (advance's `inline_queue`).
    inline: object = None

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
        batch = gathered(_batch)
        if self.dispatches and batch is not None:
            batch.extend(self.dispatches)
            if len(batch) >= BATCH_FLUSH:
                _publish_dispatches(batch[:])
                batch.clear()
        elif self.dispatches:
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
