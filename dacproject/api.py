"""Cross-cutting API pieces: the error envelope, pagination, and the health check."""
import logging

import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import connection
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from dacproject.ids import as_uuid
from dacproject.nul import unstorable
from orchestration.engine import EngineError
from registry.spec import SpecInvalid

logger = logging.getLogger(__name__)

DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "parse_error",
    exceptions.ValidationError: "invalid",
    exceptions.Throttled: "throttled",
}


def error_body(code, message, details=None):
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc, context):
    """Every client error as {"error": {code, message, details}} with a 4xx status."""
    if isinstance(exc, SpecInvalid):
        return Response(
            error_body("invalid_definition", f"{len(exc.errors)} validation error(s); nothing was registered"
                       + (f" (first: {exc.errors[0]})" if exc.errors else ""),
                       {"errors": [e.as_dict() for e in exc.errors], "warnings": [w.as_dict() for w in exc.warnings]}),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, EngineError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("not found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(code, "invalid request", response.data)
    else:
        response.data = error_body(code, str(getattr(exc, "detail", exc)))
    return response


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def healthz(request):
    """Liveness and readiness: the database, Redis and at least one live worker."""
    checks = {"database": _check(_database), "redis": _check(_redis), "workers": _check(_workers)}
    healthy = all(c["ok"] for c in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return JsonResponse(body, status=200 if healthy else 503)


def _check(probe):
    try:
        detail = probe()
        return {"ok": True, **({"detail": detail} if detail else {})}
    except Exception as exc:  # noqa: BLE001 - a health check reports any failure, it never raises
        logger.warning("health check %s failed: %s", probe.__name__, exc)
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis():
    redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()


def _workers():
    from dacproject.celery import app

    replies = app.control.ping(timeout=settings.DAC_HEALTH_WORKER_TIMEOUT_SECONDS)
    if not replies:
        raise RuntimeError("no worker answered")
    return f"{len(replies)} worker(s)"


def query_filters(request, names, *, choices=None, ids=()):
    """The named query parameters. A 400 naming each bad one, never a database error or a silently
    empty list: text PostgreSQL cannot store, a value outside its closed set (`choices`:
    {name: allowed values}, each named in the message), or a malformed id (`ids`: names that must
    be UUIDs). An empty value is no filter."""
    values = {name: request.query_params.get(name) for name in names}
    errors = {}
    for name, value in values.items():
        if not value:
            continue
        if unstorable(value):
            errors[name] = ["must not contain a NUL character or an unpaired surrogate"]
        elif choices and name in choices and value not in choices[name]:
            errors[name] = [f"{value[:50]!r} is not one of {', '.join(choices[name])}"]
        elif name in ids and as_uuid(value) is None:
            errors[name] = [f"{value[:50]!r} is not an id (a UUID)"]
    if errors:
        raise exceptions.ValidationError(errors)
    return values


API_PREFIXES = ("/api/", "/hooks/")


def _is_api(request):
    return request.path.startswith(API_PREFIXES)


def page_not_found(request, exception=None):
    """handler404: the JSON envelope under /api/ and /hooks/ (an unknown route, or an id no
    route accepts), Django's page elsewhere."""
    if _is_api(request):
        path = request.path if len(request.path) <= 200 else f"{request.path[:200]}..."
        return JsonResponse(error_body("not_found", f"no API resource at {path} (the routes are listed at /api/docs/)",
                                       {"path": path}), status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    """handler400 (a request Django refuses before any view: a suspicious header, too many fields)."""
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "the request was refused as malformed"), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body("permission_denied", "you do not have permission to do this"), status=403)
    return defaults.permission_denied(request, exception)


def server_error(request):
    """handler500: even a bug answers the envelope under /api/ (it is logged by Django as usual)."""
    if _is_api(request):
        return JsonResponse(error_body("server_error", "internal error; it has been logged"), status=500)
    return defaults.server_error(request)
