"""`manage.py dac <verb>`: the operator's command line (DESIGN §8). Thin: verbs live in
`orchestration.cli` and call services; errors go to stderr with a non-zero exit."""
import sys

from django.core.management.base import BaseCommand, CommandError

from orchestration.cli import context, discovery, events, governance, instances, registry

# Start-up is most of what a verb costs, so the verb modules import their services (the engine, the
# spec compiler, serializers...) inside the functions that use them, and only the checks tagged
# `dac` run (the project's own settings checks): Django's full set imports the URLconf, i.e. the
# whole HTTP API and the console, which a CLI verb never needs; `manage.py check` runs them all.
CHECK_TAGS = ["dac"]


class Command(BaseCommand):
    help = ("Operate the DAC: validate, apply, run, status, escalations, approve, pause, resume, terminate, retry, "
            "emit, events, context, find, match, suggest-chain, audit.")
    requires_system_checks = CHECK_TAGS

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        for module in (registry, instances, governance, events, context, discovery):
            module.add_parsers(verbs)
        p = verbs.add_parser("audit", help="audit log tools")
        p.add_argument("action", choices=["verify"])

    def handle(self, *args, verb, **options):
        handlers = {
            "validate": registry.do_validate, "apply": registry.do_apply,
            "run": instances.do_run, "status": instances.do_status, "approve": governance.do_approve,
            "escalations": governance.do_escalations,
            "emit": events.do_emit, "events": events.do_events, "context": context.do_context,
            "find": discovery.do_find, "match": discovery.do_match, "suggest-chain": discovery.do_suggest_chain,
            "audit": do_audit,
        }
        try:
            if verb in instances.LIFECYCLE:
                return instances.do_lifecycle(self, verb, **options)
            return handlers[verb](self, **options)
        except Exception as exc:
            if _is_engine_error(exc):
                raise CommandError(exc.message) from exc
            raise

    def out(self, text):
        self.stdout.write(text)


def _is_engine_error(exc):
    """Whether `exc` is the engine's EngineError, without importing the engine for verbs that never
    load it (if one was raised, its module is loaded)."""
    errors = sys.modules.get("orchestration.engine.errors")
    return errors is not None and isinstance(exc, errors.EngineError)


def do_audit(cmd, action, **_):
    """`audit verify`: seal what is committed (unless a sealer is at it), then check the sealed chain."""
    from governance.audit import audit_seal, audit_verify

    audit_seal()
    report = audit_verify()
    if report:
        for p in report:
            cmd.stderr.write(p)
        raise CommandError(f"audit log is NOT intact: {len(report)} problem(s)")
    cmd.out(f"audit chain intact: {report.verified} entries verified ({report.awaiting_seal} awaiting seal)")
