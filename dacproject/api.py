"""Cross-cutting API pieces: the error envelope, pagination, and the health check."""
import logging

import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import connection
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

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
            error_body("invalid_definition", f"{len(exc.errors)} validation error(s); nothing was registered",
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


def query_filters(request, names):
    """The named query parameters; one PostgreSQL cannot store is a 400, not a database error."""
    values = {name: request.query_params.get(name) for name in names}
    bad = [name for name, value in values.items() if value and unstorable(value)]
    if bad:
        raise exceptions.ValidationError({name: ["must not contain a NUL character or an unpaired surrogate"]
                                          for name in bad})
    return values
