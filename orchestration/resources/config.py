"""The limits in force: the environment's, with every applied blueprint's coordination sections
over them (DESIGN §6.6). Cached per process under the registry's change number in Redis, which
every `dac apply` bumps, so a re-applied blueprint holds for the next step everywhere."""
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from django.conf import settings

from registry.changes import registry_version
from registry.spec.resources import PERIODS, parse_env_rate_limits, parse_env_type_limits


@dataclass(frozen=True)
class Bucket:
    name: str
    limit: int
    per: str

    @property
    def refill_per_second(self):
        return self.limit / PERIODS[self.per]


@dataclass(frozen=True)
class ResourceConfig:
    buckets: dict = field(default_factory=dict)  # {name: Bucket}
    token_shares: dict = field(default_factory=dict)  # {workflow type: tokens per hour}


@lru_cache(maxsize=1)
def type_limits():
    """DAC_MAX_RUNNING_PER_TYPE as {type: limit} (checked at start-up by `checks`)."""
    return parse_env_type_limits(settings.DAC_MAX_RUNNING_PER_TYPE)


def env_buckets():
    return parse_env_rate_limits(settings.DAC_RATE_LIMITS)


_cache = {"version": None, "config": None}


def resource_config():
    """The buckets and token shares in force (blueprints applied later override earlier ones)."""
    version = registry_version()
    if version is None or version != _cache["version"] or _cache["config"] is None:
        _cache["config"], _cache["version"] = _load(), version
    return _cache["config"]


def _load():
    from registry.models import Blueprint

    buckets = {name: Bucket(name, **b) for name, b in env_buckets().items()}
    percents = {}
    for spec in Blueprint.objects.order_by("updated_at").values_list("spec", flat=True):
        coordination = (spec or {}).get("coordination") or {}
        rate_limits = coordination.get("rate_limits") or {}
        shares = (coordination.get("resources") or {}).get("api_tokens") or {}
        if isinstance(rate_limits, dict):
            buckets.update({name: Bucket(name, b["limit"], b["per"]) for name, b in rate_limits.items()
                            if isinstance(b, dict) and {"limit", "per"} <= b.keys()})
        if isinstance(shares, dict):
            percents.update(shares)
    quota = settings.DAC_TOKEN_QUOTA_PER_HOUR
    token_shares = {}
    if quota:
        for workflow_type, percent in percents.items():
            try:
                token_shares[workflow_type] = int(Decimal(quota) * Decimal(str(percent).rstrip("%")) / 100)
            except ArithmeticError:
                continue  # a spec stored before shares were checked: ignored, as validation now refuses it
    return ResourceConfig(buckets=buckets, token_shares=token_shares)
