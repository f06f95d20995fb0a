"""How a notification leaves: a Slack-compatible JSON POST, or a plain-text email through Django's
email backend. Both say the same facts (level, title, workflow, state, deadline, links).

A sender raises `DeliveryFailed` with a message that is safe to store and show: credentials and
query strings of URLs (where webhook tokens usually live) and the SMTP password are scrubbed.
"""
import datetime
import json
import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.core.mail import EmailMessage

from governance.escalations.selectors import escalation_as_dict

from .models import Channel

ERROR_MAX_CHARS = 1000
BODY_SNIPPET_CHARS = 200
HIDDEN = "***"
# user:password@ in any URL, and a query string after a URL or a path.
_CREDENTIALS = re.compile(r"(?<=//)[^/\s@'\"]+@")
_QUERY = re.compile(r"(?<=[\w/.\-])\?[^\s'\"()<>]+")


class DeliveryFailed(Exception):
    """A send that did not go through. Its message is already scrubbed of secrets."""


def send(delivery):
    """Send one delivery (with its escalation). Returns normally only when the target accepted it."""
    if delivery.channel == Channel.WEBHOOK:
        send_webhook(delivery)
    elif delivery.channel == Channel.EMAIL:
        send_email(delivery)
    else:
        raise DeliveryFailed(f"unknown channel {delivery.channel!r}")


def event_header(event):
    return f"governance.escalation.{event}"


# --- the message --------------------------------------------------------------------------------

def links(escalation):
    base = settings.DAC_BASE_URL.rstrip("/")
    return {"console": f"{base}/admin/governance/escalation/{escalation.id}/change/",
            "api": f"{base}/api/v1/escalations/{escalation.id}/"}


def state(escalation, event):
    """What happened, in a word or three: 'pending', 'approved by alice', 'expired'."""
    if event == "expired":
        return "expired"
    if event == "resolved":
        outcome = escalation.resolution or "resolved"
        return f"{outcome} by {escalation.resolved_by}" if escalation.resolved_by else outcome
    return escalation.status


def _line(value):
    """User-written text (titles) on one line, so it can neither break a header nor forge a line."""
    return " ".join(str(value).split())


def _deadline(escalation):
    return escalation.deadline.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if escalation.deadline else None


def text_line(escalation, event):
    """`[DAC] approval escalation: Deploy to production | workflow deploy | pending | deadline ...`"""
    heading = {"created": "escalation", "resolved": "escalation resolved", "expired": "escalation expired"}
    parts = [f"[DAC] {escalation.level} {heading.get(event, event)}: {_line(escalation.title)}"]
    if escalation.workflow:
        parts.append(f"workflow {escalation.workflow}")
    parts.append(_line(state(escalation, event)))
    if _deadline(escalation):
        parts.append(f"deadline {_deadline(escalation)}")
    return " | ".join(parts)


def subject(escalation, event):
    """`[DAC] approval: Deploy to production (pending)`"""
    outcome = (escalation.resolution or "resolved") if event == "resolved" else state(escalation, event)
    return f"[DAC] {escalation.level}: {_line(escalation.title)} ({_line(outcome)})"[:250]


def email_body(escalation, event, delivery_id):
    facts = [
        ("Level", escalation.level), ("Type", escalation.type), ("Status", escalation.status),
        ("Workflow", escalation.workflow), ("Instance", escalation.instance_id), ("Step", escalation.step_id),
        ("Deadline", _deadline(escalation)), ("Approvers", ", ".join(escalation.approvers or [])),
    ]
    if event == "resolved":
        facts.append(("Resolution", state(escalation, event)))
    lines = [text_line(escalation, event), ""]
    lines += [f"{name + ':':<12}{value}" for name, value in facts if value]
    if escalation.description:
        lines += ["", escalation.description.strip()]
    urls = links(escalation)
    lines += ["", f"Console:    {urls['console']}", f"API:        {urls['api']}", "",
              f"-- DAC notification {delivery_id} ({event_header(event)})"]
    return "\n".join(lines) + "\n"


def _slack_escape(text):
    """Slack reads <...> as links and mentions: escape them as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_body(escalation, event):
    return {"text": _slack_escape(text_line(escalation, event)), "escalation": escalation_as_dict(escalation),
            "links": links(escalation)}


# --- sending ------------------------------------------------------------------------------------

def send_webhook(delivery):
    url = delivery.target
    body = json.dumps(webhook_body(delivery.escalation, delivery.event), default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "dac-notifications",
               "X-DAC-Delivery": str(delivery.id), "X-DAC-Event": event_header(delivery.event)}
    try:
        # No redirects: a moved hook is a configuration error, and a redirect could carry the body elsewhere.
        response = requests.post(url, data=body, headers=headers, timeout=settings.DAC_NOTIFY_TIMEOUT_SECONDS,
                                 allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryFailed(scrub(f"{type(exc).__name__}: {exc}", url=url)) from None
    with response:
        if not 200 <= response.status_code < 300:
            snippet = _line(response.text[:BODY_SNIPPET_CHARS])
            raise DeliveryFailed(scrub(f"HTTP {response.status_code} {response.reason or ''}: {snippet}".strip(),
                                       url=url))


def send_email(delivery):
    escalation = delivery.escalation
    domain = urlsplit(settings.DAC_BASE_URL).hostname or "localhost"
    message = EmailMessage(
        subject=subject(escalation, delivery.event),
        body=email_body(escalation, delivery.event, delivery.id),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.target],
        # One Message-ID per delivery: a retried send that did arrive the first time is one mail to clients.
        headers={"X-DAC-Delivery": str(delivery.id), "X-DAC-Event": event_header(delivery.event),
                 "Message-ID": f"<dac-notification-{delivery.id}@{domain}>"},
    )
    try:
        sent = message.send(fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - smtplib, socket, ssl and header errors are all a failed send
        raise DeliveryFailed(scrub(f"{type(exc).__name__}: {exc}", secrets=[settings.EMAIL_HOST_PASSWORD])) from None
    if not sent:
        raise DeliveryFailed("the email backend sent nothing")


# --- secrets out of errors ------------------------------------------------------------------------

def redact_url(url):
    """`https://user:pw@host/path?token=x` -> `https://host/path` (for showing a target)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return HIDDEN
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def scrub(text, *, url=None, secrets=()):
    """`text` without the URL's credentials and query, the given secrets, or any `user:pw@`."""
    hidden = [s for s in secrets if s]
    if url:
        try:
            parts = urlsplit(url)
            hidden += [parts.query, parts.fragment, parts.password or "", parts.username or ""]
        except ValueError:
            pass
    for value in sorted({v for v in hidden if len(v) >= 4}, key=len, reverse=True):
        for form in (value, unquote(value), quote(value, safe="")):
            text = text.replace(form, HIDDEN)
    text = _CREDENTIALS.sub(HIDDEN + "@", text)
    text = _QUERY.sub("?" + HIDDEN, text)
    return text[:ERROR_MAX_CHARS]
