"""Built-in actions (DESIGN §5)."""
import fnmatch
import resource
import subprocess
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings

from .registry import ActionError, action


@action("noop")
def noop(ctx, **inputs):
    """Does nothing and returns nothing."""
    return None


@action("echo")
def echo(ctx, **inputs):
    """Returns its inputs."""
    return inputs


@action("sleep")
def sleep(ctx, *, seconds=1, **_):
    """Blocks for `seconds` (simulates work), heart-beating every second."""
    deadline = time.monotonic() + float(seconds)
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        ctx.heartbeat()
    return {"slept": float(seconds)}


@action("fail")
def fail(ctx, *, message="failed on purpose", times=None, **_):
    """Fails; with `times: N` only the first N attempts fail."""
    if times is None or ctx.attempt <= int(times):
        raise ActionError(message)
    return {"attempt": ctx.attempt}


def _host_allowed(host):
    return any(fnmatch.fnmatch(host, pattern) for pattern in settings.DAC_HTTP_ALLOWED_HOSTS)


@action("http.request")
def http_request(ctx, *, url, method="GET", headers=None, json=None, data=None, params=None, timeout=30,
                 raise_for_status=True):
    """An HTTP call to an allow-listed host; returns status, headers and body (parsed JSON if any)."""
    host = urlsplit(url).hostname or ""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ActionError(f"only http and https URLs are allowed, got {url!r}")
    if not _host_allowed(host):
        raise ActionError(f"host '{host}' is not allowed (DAC_HTTP_ALLOWED_HOSTS)")
    response = requests.request(method.upper(), url, headers=headers, json=json, data=data, params=params,
                                timeout=float(timeout), allow_redirects=False)
    content_type = response.headers.get("content-type", "")
    body = response.json() if "json" in content_type and response.content else response.text
    if raise_for_status and response.status_code >= 400:
        raise ActionError(f"{method.upper()} {url} answered {response.status_code}")
    return {"status": response.status_code, "headers": dict(response.headers), "body": body}


@action("shell.run")
def shell_run(ctx, *, argv, timeout=60, memory_mb=512, cwd=None, env=None):
    """Runs a program (argv only, never through a shell) with time and memory limits."""
    if not settings.DAC_ENABLE_SHELL:
        raise ActionError("shell.run is disabled (set DAC_ENABLE_SHELL=true to enable it)")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ActionError("argv must be a non-empty list of strings")
    limit = int(memory_mb) * 1024 * 1024

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=float(timeout), cwd=cwd, env=env,
                              preexec_fn=limit_memory, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ActionError(f"{argv[0]} exceeded {timeout}s") from exc
    if done.returncode != 0:
        raise ActionError(f"{argv[0]} exited with {done.returncode}: {done.stderr[-2000:]}")
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


@action("event.emit")
def event_emit(ctx, *, event, payload=None, correlation_id=None, priority=None):
    """Publishes an event when the step completes (with the instance's correlation id unless given)."""
    from registry.spec.checker import parse_priority

    if priority is not None and parse_priority(priority) is None:
        raise ActionError(f"priority must be low, normal, high, critical or 0..9, got {priority!r}")
    ctx.emit(event, payload or {}, correlation_id=correlation_id,
             priority=None if priority is None else parse_priority(priority))
    return {"event": event}
