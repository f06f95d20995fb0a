"""`dac context get|set|delete KEY [VALUE]` (VALUE is JSON; text that is not JSON is a string)."""
from django.core.management.base import CommandError

from .common import actor, as_json, json_or_text

GLOBAL_SCOPE = "global"  # orchestration.context.services.GLOBAL, which imports the engine


def add_parsers(verbs):
    p = verbs.add_parser("context", help="read and write shared context")
    p.add_argument("action", choices=["get", "set", "delete"])
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", nargs="?", metavar="VALUE")
    p.add_argument("--scope", default=GLOBAL_SCOPE)
    p.add_argument("--ttl", type=int, default=None, help="seconds until the key expires (set)")
    p.add_argument("--if-version", dest="if_version", type=int, default=None,
                   help="write only if the key is at this version (0: absent)")
    p.add_argument("--as", dest="as_user", default=None)
    p.add_argument("--json", action="store_true")


def do_context(cmd, action, key, value, scope, ttl, if_version, as_user, json, **_):
    from orchestration.context import services

    if action == "get":
        entry = services.context_get(scope=scope, key=key)
        if entry is None:
            raise CommandError(f"'{key}' is not set in scope '{scope}'")
        cmd.out(as_json(entry.as_dict()) if json else as_json(entry.value))
        return
    if action == "set":
        if value is None:
            raise CommandError("context set needs a VALUE (JSON, or text taken as a string)")
        entry = services.context_set(scope=scope, key=key, value=json_or_text(value), ttl_seconds=ttl,
                                     if_version=if_version, actor=actor(as_user))
    else:
        if value is not None:
            raise CommandError("context delete takes no VALUE")
        entry = services.context_delete(scope=scope, key=key, if_version=if_version, actor=actor(as_user))
    cmd.out(as_json(entry.as_dict()) if json else f"{scope}/{key}: version {entry.version}")
