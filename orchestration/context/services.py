"""Shared context (DESIGN §6.5): JSON values under (scope, key), durable in PostgreSQL and read
through Redis; every write grows the key's version, and a write may require the version it read
(compare-and-set, for locks and counters). Every write publishes `context.changed`.

PostgreSQL is the truth: writes lock the row, and the cache is written after commit with the new
version, by a script that never replaces a newer cached version with an older one. A cache entry
lives at most DAC_CONTEXT_CACHE_SECONDS, which bounds how stale a read can be if Redis missed an
update. A deleted or expired key keeps its row (absent), so versions never repeat.
"""
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dacproject.ids import as_uuid
from dacproject.nul import UNSTORABLE, unstorable_path
from dacproject.redis_client import RedisError
from dacproject.redis_client import client as _redis
from governance.audit import actor_parts, audit_record
from orchestration.engine.errors import InvalidRequest, NotFound, PreconditionFailed
from orchestration.events.publish import Draft, publish
from registry.spec.checker import YEAR_SECONDS

from .models import SharedValue

logger = logging.getLogger(__name__)

GLOBAL = "global"
SCOPE_RE = re.compile(r"^(global|workflow_type:[a-z0-9_-]{1,50}|instance:[0-9a-fA-F-]{32,36})$")
KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$")
MAX_VALUE_BYTES = 256 * 1024
_CACHE_PREFIX = "dac:ctx:"
# KEYS[1] entry; ARGV: payload, version, ttl seconds. Writes unless a newer version is cached.
_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and tonumber(decoded['version']) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Entry:
    scope: str
    key: str
    value: object
    version: int
    expires_at: datetime | None = None

    def as_dict(self):
        return {"key": self.key, "scope": self.scope, "value": self.value, "version": self.version,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


def check_address(scope, key):
    if not isinstance(scope, str) or not SCOPE_RE.match(scope):
        raise InvalidRequest(f"scope {scope!r} must be 'global', 'workflow_type:<type>' or 'instance:<id>'",
                             details={"field": "scope"})
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise InvalidRequest(f"key {key!r} must be 1-200 letters, digits or _ . : / - (starting with a letter, "
                             "digit or _)", details={"field": "key"})


def _check_value(value, ttl_seconds, if_version):
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"value is not JSON: {exc}", details={"field": "value"}) from None
    if unstorable_path(value, "value"):
        raise InvalidRequest(f"{unstorable_path(value, 'value')} {UNSTORABLE}",
                             details={"field": "value"})
    if len(encoded.encode()) > MAX_VALUE_BYTES:
        raise InvalidRequest(f"value is over {MAX_VALUE_BYTES} bytes of JSON", details={"field": "value"})
    bounds = (("ttl_seconds", ttl_seconds, 1, YEAR_SECONDS), ("if_version", if_version, 0, 2**62))
    for name, number, low, high in bounds:
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)
                                   or not low <= number <= high):
            raise InvalidRequest(f"{name} must be a whole number from {low} to {high}", details={"field": name})


def _present(row, now):
    return row is not None and not row.deleted and (row.expires_at is None or row.expires_at > now)


def _entry(row):
    return Entry(row.scope, row.key, row.value, row.version, row.expires_at)


def context_get(*, scope, key):
    """The live entry, or None when the key is absent or expired (read from Redis when cached)."""
    check_address(scope, key)
    now = timezone.now()
    cached = _cache_read(scope, key)
    if cached is not None:
        if cached["absent"] or (cached["expires_at"] and datetime.fromisoformat(cached["expires_at"]) <= now):
            return None
        expires = datetime.fromisoformat(cached["expires_at"]) if cached["expires_at"] else None
        return Entry(scope, key, cached["value"], cached["version"], expires)
    row = SharedValue.objects.filter(scope=scope, key=key).first()
    if row is None:
        _cache_write(scope, key, None, 0, None, absent=True)
        return None
    present = _present(row, now)
    _cache_write(scope, key, row.value if present else None, row.version, row.expires_at, absent=not present)
    return _entry(row) if present else None


def _locked_row(scope, key):
    # The row exists from the first write on (absent until set), so concurrent first writes
    # serialise on its lock instead of racing on the unique index.
    SharedValue.objects.bulk_create([SharedValue(scope=scope, key=key, value=None, version=0, deleted=True)],
                                    ignore_conflicts=True)
    return SharedValue.objects.select_for_update().get(scope=scope, key=key)


def _check_version(row, if_version, now, scope, key):
    current = row.version if _present(row, now) else 0
    if if_version is not None and if_version != current:
        state = f"is at version {current}" if current else "does not exist (version 0)"
        raise PreconditionFailed(f"'{key}' in scope '{scope}' {state}, not version {if_version}",
                                 details={"current_version": current})


def _actor_audit(actor, verb, row, details):
    """People's writes are audited; a workflow's are recorded by its step attempt instead."""
    if actor is not None:
        audit_record(actor=actor, verb=verb, target_type="context", target_id=f"{row.scope}/{row.key}",
                     details={"version": row.version, **details})


@transaction.atomic
def context_set(*, scope, key, value, actor=None, ttl_seconds=None, if_version=None, source_workflow="",
                source_instance=None):
    """Write a value (version + 1); with `if_version`, only if that is the current version (0: absent)."""
    check_address(scope, key)
    _check_value(value, ttl_seconds, if_version)
    now = timezone.now()
    row = _locked_row(scope, key)
    _check_version(row, if_version, now, scope, key)
    row.value, row.version, row.deleted = value, row.version + 1, False
    row.expires_at = now + timezone.timedelta(seconds=ttl_seconds) if ttl_seconds else None
    row.source_workflow, row.source_instance = source_workflow or "", as_uuid(source_instance)
    row.updated_by = _actor_name(actor)
    row.save()
    _changed(row, source_workflow, source_instance)
    _actor_audit(actor, "context.set", row, {"ttl_seconds": ttl_seconds})
    transaction.on_commit(lambda: _cache_write(scope, key, value, row.version, row.expires_at, absent=False))
    return _entry(row)


@transaction.atomic
def context_delete(*, scope, key, actor=None, if_version=None):
    """Remove a key (its version still grows); NotFound when it is absent."""
    check_address(scope, key)
    _check_value(None, None, if_version)
    now = timezone.now()
    row = SharedValue.objects.select_for_update().filter(scope=scope, key=key).first()
    if not _present(row, now):
        raise NotFound(f"'{key}' is not set in scope '{scope}'")
    _check_version(row, if_version, now, scope, key)
    row.value, row.version, row.deleted, row.updated_by = None, row.version + 1, True, _actor_name(actor)
    row.save()
    _changed(row, "", None, deleted=True)
    _actor_audit(actor, "context.delete", row, {})
    transaction.on_commit(lambda: _cache_write(scope, key, None, row.version, None, absent=True))
    return _entry(row)


def _changed(row, source_workflow, source_instance, deleted=False):
    payload = {"key": row.key, "scope": row.scope, "version": row.version}
    if deleted:
        payload["deleted"] = True
    publish([Draft("context.changed", payload, source_workflow=source_workflow or "",
                   source_instance_id=as_uuid(source_instance))])


def _actor_name(actor):
    return actor_parts(actor)[1] if actor is not None else "workflow"


# --- the Redis read path -----------------------------------------------------------------------
def _cache_key(scope, key):
    return f"{_CACHE_PREFIX}{scope}\x1f{key}"


def _cache_read(scope, key):
    try:
        raw = _redis().get(_cache_key(scope, key))
        return json.loads(raw) if raw else None
    except (RedisError, ValueError):
        logger.warning("shared context cache unavailable; reading %s/%s from PostgreSQL", scope, key)
        return None


def _cache_write(scope, key, value, version, expires_at, *, absent):
    ttl = settings.DAC_CONTEXT_CACHE_SECONDS
    if expires_at is not None:
        ttl = max(1, min(ttl, int((expires_at - timezone.now()).total_seconds()) + 1))
    payload = json.dumps({"value": value, "version": version, "absent": absent,
                          "expires_at": expires_at.isoformat() if expires_at else None})
    try:
        _redis().eval(_SET_IF_NEWER, 1, _cache_key(scope, key), payload, version, int(ttl))
    except RedisError:
        logger.warning("could not cache shared context %s/%s; readers fall back to PostgreSQL", scope, key)


def cache_clear():
    """Drop every cached entry (tests that recreate the database; operators after a restore)."""
    client = _redis()
    keys = list(client.scan_iter(match=f"{_CACHE_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)


class SharedView(dict):
    """`shared.<key>` in templates: global-scope keys, read lazily (only those a template names)."""

    def __missing__(self, key):
        try:
            entry = context_get(scope=GLOBAL, key=key)
        except InvalidRequest:
            entry = None
        if entry is None:
            raise KeyError(key)
        self[key] = entry.value
        return entry.value
