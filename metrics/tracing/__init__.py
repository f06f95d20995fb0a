"""OpenTelemetry traces of instances and step attempts: optional, on when OTEL_EXPORTER_OTLP_ENDPOINT is set.

One trace per correlation id, a span per instance ("instance <workflow>") and per step attempt
("step <step id>"), emitted when each ends (`spans`), with ids derived from the database (`ids`)
and the trace context carried through Celery messages (`celery`).

OpenTelemetry is imported only when tracing is turned on, so without its packages DAC runs as
before. The engine calls the hooks below inside its transactions; while tracing is off they cost
one check of `_emitter`.
"""
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

_emitter = None  # spans.Emitter while this process traces


def instance_ended(instance_id):
    """Engine hook: an instance reached a terminal status in the current transaction."""
    if _emitter is not None:
        _emitter.instance_ended(instance_id)


def attempt_ended(step_run_id, item_index, number):
    """Engine hook: attempt `number` of a step (or of foreach item `item_index`) was recorded as
    succeeded or failed in the current transaction."""
    if _emitter is not None:
        _emitter.attempt_ended(step_run_id, item_index, number)


def setup():
    """From MetricsConfig.ready, in every process: trace it if OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    if not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return
    try:
        from . import celery as messages
        from .spans import Emitter
    except ImportError as exc:
        logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s): no traces", exc)
        return
    messages.connect(pool_processes=True)
    enable(Emitter.otlp())


def install(exporter):
    """For tests: trace this process into `exporter` (e.g. the SDK's InMemorySpanExporter), each
    span as it ends; `uninstall()` turns it off again."""
    from . import celery as messages
    from .spans import Emitter

    messages.connect()
    enable(Emitter.synchronous(exporter))


def uninstall():
    from . import celery as messages

    messages.disconnect()
    disable()


def enable(emitter):
    """Emit through `emitter` from now on, replacing (and shutting down) this process's previous one."""
    global _emitter
    disable()
    _emitter = emitter


def disable():
    """Stop tracing in this process, exporting what is still batched."""
    global _emitter
    emitter, _emitter = _emitter, None
    if emitter is not None:
        emitter.shutdown()
