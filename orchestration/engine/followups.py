"""Work that follows a commit (a parent to tell that its child ended, say). Outside a worker task
it goes to the queue; inside one (`run_step` wraps its work in `followups_here`) it runs in that
process once the task's own work is done, saving a broker trip, and goes to the queue instead if
it fails there."""
import logging
import threading

from orchestration.gathering import gathered, gathering

logger = logging.getLogger(__name__)
_local = threading.local()


def followups_here():
    return gathering(_local, _run_all)


def _run_all(pending):
    for run, send in pending:
        try:
            run()
        except Exception:  # noqa: BLE001 - the queue gets it instead (and the reconciler after that)
            logger.warning("a follow-up failed in this task; sending it to the queue", exc_info=True)
            send()


def follow_up(run, send):
    """From an on_commit callback: `run()` here at the end of the current task, or `send()` now."""
    pending = gathered(_local)
    if pending is None:
        send()
    else:
        pending.append((run, send))
