"""The cost ledger (DESIGN §6.6): each attempt's tokens and USD, added to its instance's totals and
to the minute row of its workflow, in exact decimals.

`usage_record` runs in the transaction of the conditional update that records the attempt's
outcome, and only when that update took effect: a redelivered outcome finds the attempt recorded
already and adds nothing, so each attempt counts once.
"""
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.utils import timezone

from orchestration.models import WorkflowInstance

from .models import UsageLedger

# The columns' scale (numeric(18, 6)), rounded as PostgreSQL rounds the attempt's own row.
MICRO_USD = Decimal("0.000001")
_INSTANCE = WorkflowInstance._meta.db_table
_LEDGER = UsageLedger._meta.db_table

# One round trip: the instance's totals (returned, for its budget) and the workflow's minute row.
_RECORD_SQL = f"""
WITH totals AS (
    UPDATE {_INSTANCE}
       SET tokens_in = tokens_in + %(tokens_in)s, tokens_out = tokens_out + %(tokens_out)s,
           cost_usd = cost_usd + %(cost_usd)s
     WHERE id = %(instance_id)s
     RETURNING tokens_in, tokens_out, cost_usd
), minute AS (
    INSERT INTO {_LEDGER} AS l (minute, workflow, workflow_type, tokens_in, tokens_out, cost_usd, attempts)
    VALUES (%(minute)s, %(workflow)s, %(workflow_type)s, %(tokens_in)s, %(tokens_out)s, %(cost_usd)s, 1)
    ON CONFLICT ON CONSTRAINT uniq_usage_minute_workflow
       DO UPDATE SET tokens_in = l.tokens_in + EXCLUDED.tokens_in, tokens_out = l.tokens_out + EXCLUDED.tokens_out,
                     cost_usd = l.cost_usd + EXCLUDED.cost_usd, attempts = l.attempts + 1
)
SELECT tokens_in, tokens_out, cost_usd FROM totals
"""


def has_usage(usage):
    """Whether an attempt reported anything to count (most steps do not: they cost no query)."""
    return usage is not None and bool(usage.tokens_in or usage.tokens_out or usage.cost_usd)


def usage_record(*, instance, plan, usage):
    """Add an attempt's usage to `instance` (locked by the caller; its totals are updated in place)
    and to the ledger. Returns whether there was anything to add."""
    if not has_usage(usage):
        return False
    params = {
        "instance_id": instance.id, "tokens_in": int(usage.tokens_in), "tokens_out": int(usage.tokens_out),
        # An action may report a float cost: through str, it is the decimal it printed as.
        "cost_usd": Decimal(str(usage.cost_usd or 0)).quantize(MICRO_USD, rounding=ROUND_HALF_UP),
        "minute": timezone.now().replace(second=0, microsecond=0),
        "workflow": plan.spec["id"], "workflow_type": plan.spec.get("type") or "",
    }
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_SQL, params)
        instance.tokens_in, instance.tokens_out, instance.cost_usd = cursor.fetchone()
    return True
