"""Who is told about an escalation: the blueprint's `governance.notifications`, else the env defaults.

Entries look like `{channel: webhook, url: ..., levels: [...]}` or `{channel: email, to: [...], levels:
[...]}`; no `levels` means every level. A workflow without a blueprint, or whose blueprint lists no
`notifications` (absent; an empty list is an explicit "notify nobody"), falls back to DAC_NOTIFY_WEBHOOK_URL /
DAC_NOTIFY_EMAILS for DAC_NOTIFY_LEVELS. `dac apply` validates entries (registry/spec/governance.py);
they are checked again here so a bad stored one is skipped instead of breaking an escalation.
"""
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from governance.escalations.states import EscalationLevel

from .models import Channel, NotificationDelivery

logger = logging.getLogger(__name__)

LEVELS = tuple(EscalationLevel.values)
TARGET_MAX = NotificationDelivery._meta.get_field("target").max_length


@dataclass(frozen=True)
class Target:
    channel: str
    target: str  # a URL for a webhook, one address for email (one delivery per recipient)


def targets_for(escalation):
    """The distinct targets to notify about `escalation`, in configuration order.

    Read from the database at each call, on purpose: escalations are rare, it is one indexed query,
    and a cache would keep notifying the old targets after `dac apply` changed them.
    """
    entries = blueprint_notifications(escalation.workflow)
    if entries is None:
        entries = default_entries()
    seen, targets = set(), []
    for entry in entries:
        for target in _entry_targets(entry, escalation.level, workflow=escalation.workflow):
            if target not in seen:
                seen.add(target)
                targets.append(target)
    return targets


def blueprint_notifications(workflow):
    """The `governance.notifications` list of the workflow's blueprint, or None when it has none."""
    from registry.models import WorkflowDefinition

    if not workflow:
        return None
    row = (WorkflowDefinition.objects.filter(key=workflow, blueprint__isnull=False)
           .values_list("blueprint__spec__governance", flat=True).first())
    entries = row.get("notifications") if isinstance(row, dict) else None
    if entries is None:
        return None
    return entries if isinstance(entries, list) else [entries]


def default_entries():
    levels = list(settings.DAC_NOTIFY_LEVELS)
    entries = []
    if settings.DAC_NOTIFY_WEBHOOK_URL:
        entries.append({"channel": Channel.WEBHOOK, "url": settings.DAC_NOTIFY_WEBHOOK_URL, "levels": levels})
    if settings.DAC_NOTIFY_EMAILS:
        entries.append({"channel": Channel.EMAIL, "to": list(settings.DAC_NOTIFY_EMAILS), "levels": levels})
    return entries


def _entry_targets(entry, level, *, workflow):
    """The targets of one entry if it covers `level`; a malformed entry is logged and skipped
    (the escalation itself must never fail because a notification is misconfigured)."""
    problems = entry_errors(entry)
    if problems:
        logger.warning("ignoring a notifications entry of workflow %r: %s", workflow, "; ".join(problems))
        return []
    if level not in _levels(entry):
        return []
    if entry["channel"] == Channel.WEBHOOK:
        return [Target(Channel.WEBHOOK.value, entry["url"].strip())]
    return [Target(Channel.EMAIL.value, address) for address in _addresses(entry)]


def _levels(entry):
    levels = entry.get("levels")
    if levels is None:
        return LEVELS
    return [levels] if isinstance(levels, str) else list(levels)


def _addresses(entry):
    to = entry.get("to")
    if isinstance(to, str):
        to = to.split(",")
    return [address.strip() for address in to if isinstance(address, str) and address.strip()]


def entry_errors(entry):
    """What is wrong with one notifications entry (empty when it is usable)."""
    if not isinstance(entry, dict):
        return ["must be a mapping with channel and url or to"]
    channel = entry.get("channel")
    if channel not in Channel.values:
        return [f"channel must be one of {', '.join(Channel.values)}, not {channel!r}"]
    problems = []
    levels = entry.get("levels")
    if levels is not None:
        if isinstance(levels, str):
            levels = [levels]
        if not isinstance(levels, list) or any(level not in LEVELS for level in levels):
            problems.append(f"levels must be a list of {', '.join(LEVELS)}")
    if channel == Channel.WEBHOOK:
        url = entry.get("url")
        parts = urlsplit(url.strip()) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append("a webhook needs an http(s) url")
        elif len(url.strip()) > TARGET_MAX:
            problems.append(f"url is longer than {TARGET_MAX} characters")
    else:
        to = entry.get("to")
        if not isinstance(to, (str, list)) or not _addresses(entry):
            problems.append("an email entry needs `to`: a list of addresses")
        else:
            for address in _addresses(entry):
                try:
                    validate_email(address)
                except ValidationError:
                    problems.append(f"{address!r} is not an email address")
    return problems

