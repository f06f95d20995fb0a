"""Reads of resource use (DESIGN §6.6): the cost ledger rolled up, a type's tokens in the last
hour, and the resource usage the dashboard shows. Sums are taken by PostgreSQL, in exact decimals.
"""
from django.db import connection
from django.db.models import F, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from orchestration.models import WorkflowInstance
from orchestration.states import InstanceStatus as I

from .models import ConcurrencyPool, UsageLedger

GROUPINGS = {"day": TruncDay("minute"), "workflow": F("workflow"), "type": F("workflow_type")}
HOUR = timezone.timedelta(hours=1)


def cost_ledger(*, since, until, group_by="day"):
    """Usage between `since` (inclusive) and `until` (exclusive), per day, workflow or type:
    [{<group_by>, tokens_in, tokens_out, cost_usd (Decimal), attempts}], in key order."""
    if group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPINGS)}, got {group_by!r}")
    rows = (UsageLedger.objects.filter(minute__gte=since, minute__lt=until)
            .annotate(group=GROUPINGS[group_by]).values("group")
            .annotate(tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost_usd=Sum("cost_usd"),
                      attempts=Sum("attempts"))
            .order_by("group"))
    return [{group_by: row["group"].date() if group_by == "day" else row["group"], "tokens_in": row["tokens_in"],
             "tokens_out": row["tokens_out"], "cost_usd": row["cost_usd"], "attempts": row["attempts"]}
            for row in rows]


def _last_hour():
    """The rolling hour as ledger minutes: the current minute and the 59 before it."""
    return timezone.now() - HOUR


def type_tokens_last_hour(workflow_type):
    """Tokens (in + out) the type spent in the last rolling hour (the ledger's type/minute index)."""
    used = UsageLedger.objects.filter(workflow_type=workflow_type, minute__gt=_last_hour()).aggregate(
        used=Sum(F("tokens_in") + F("tokens_out")))["used"]
    return used or 0


_QUEUED_PER_KEY_SQL = f"""
SELECT key, count(*) FROM {WorkflowInstance._meta.db_table}, unnest(slot_keys) AS key
 WHERE status = %s AND NOT holds_slots GROUP BY key
"""


def resource_usage():
    """What the dashboard shows of the limits: {"pools": [{key, limit, running, queued}],
    "buckets": [{name, limit, per, tokens}], "tokens": [{type, used_last_hour, share}]}."""
    from .config import resource_config
    from .ratelimits import bucket_levels

    with connection.cursor() as cursor:
        cursor.execute(_QUEUED_PER_KEY_SQL, [I.QUEUED])
        queued = dict(cursor.fetchall())
    pools = [{"key": key, "limit": limit, "running": in_use, "queued": queued.get(key, 0)}
             for key, limit, in_use in ConcurrencyPool.objects.order_by("key").values_list("key", "limit", "in_use")]
    shares = resource_config().token_shares
    used = dict(UsageLedger.objects.filter(minute__gt=_last_hour()).exclude(workflow_type="")
                .values("workflow_type").annotate(used=Sum(F("tokens_in") + F("tokens_out")))
                .values_list("workflow_type", "used"))
    tokens = [{"type": t, "used_last_hour": used.get(t, 0), "share": shares.get(t)}
              for t in sorted(shares.keys() | used.keys())]
    return {"pools": pools, "buckets": bucket_levels(), "tokens": tokens}
