"""Settings, all read from the environment through one `env` object (12-factor)."""
from decimal import Decimal
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# A development key is generated per checkout when none is given, so no secret lives in code.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    _key_file = BASE_DIR / ".run" / "secret_key"
    if not _key_file.exists():
        import secrets as _secrets

        _key_file.parent.mkdir(exist_ok=True)
        _key_file.write_text(_secrets.token_urlsafe(50))
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    # django.contrib.admin, importing the apps' admin.py on the console's first use rather than at start-up.
    "dacproject.admin_site.LazyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets as static files: /api/docs/ works offline
    "registry",
    "orchestration",
    "governance",
    "metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dacproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "governance.context_processors.inbox",
            ],
        },
    },
]

WSGI_APPLICATION = "dacproject.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/dac")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_DATABASE_NAME", default="test_dac")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Celery's per-run INFO lines ("received", "succeeded", beat's "Sending due task") are dropped
    # for the beat's housekeeping tasks (CELERY_BEAT_SCHEDULE, every 1-10 s: they were most of the
    # worker and beat logs); those tasks log one INFO line themselves when they did something.
    # Every other task's lines, and all warnings and errors, stay. See dacproject.logfilters.
    "filters": {"quiet_periodic_tasks": {"()": "dacproject.logfilters.QuietPeriodicTasks"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {name: {"filters": ["quiet_periodic_tasks"]}
                for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Celery -------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# At-least-once: a message is acknowledged only after its task ran, and requeued when the
# worker process dies; the engine's conditional transitions make redelivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Engine tasks are short; a small prefetch keeps latency low without hoarding messages.
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_PREFETCH_MULTIPLIER", default=4)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_WORKER_SEND_TASK_EVENTS = True
# "sent" events cost a Redis write per publish; Flower works without them.
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
# Keep worker database connections across tasks (Celery's Django fixup otherwise reconnects for
# every task); orchestration.apps drops unusable or old ones around each task instead.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# Tasks of the capability packages (autodiscovery finds only each app's `tasks` module).
CELERY_IMPORTS = ["orchestration.events.tasks", "orchestration.spawning.tasks", "orchestration.resources.tasks",
                  "orchestration.workers.tasks", "governance.notifications.tasks", "governance.escalations.tasks"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "dac-sweep-timeouts": {
        "task": "orchestration.tasks.sweep_timeouts",
        "schedule": env.float("DAC_SWEEP_INTERVAL_SECONDS", default=10.0),
    },
    "dac-escalations-sweep": {
        "task": "governance.escalations.tasks.escalations_sweep",
        "schedule": env.float("DAC_ESCALATION_SWEEP_INTERVAL_SECONDS", default=2.0),
    },
    "dac-reconcile": {
        "task": "orchestration.tasks.reconcile",
        "schedule": env.float("DAC_RECONCILE_INTERVAL_SECONDS", default=5.0),
    },
    # Queued instances against freed slots and token quotas. A freed slot is handed on at once,
    # in the transaction that frees it: this is the safety net, and what releases quota holds.
    "dac-resources-sweep": {
        "task": "orchestration.resources.tasks.resources_sweep",
        "schedule": env.float("DAC_RESOURCES_SWEEP_INTERVAL_SECONDS", default=1.0),
    },
    # Steps and foreach items held by a worker that stopped beating go back to ready (orchestration.workers).
    "dac-workers-sweep": {
        "task": "orchestration.workers.tasks.workers_sweep",
        "schedule": env.float("DAC_WORKER_SWEEP_INTERVAL_SECONDS", default=2.0),
    },
    # Chains the audit rows committed since (governance.audit): the window in which a new audit
    # row is not yet covered by the hash chain.
    "dac-audit-seal": {
        "task": "governance.tasks.audit_seal",
        "schedule": env.float("DAC_AUDIT_SEAL_INTERVAL_SECONDS", default=2.0),
    },
}

# --- REST framework -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "dacproject.api.StandardPagination",
    "EXCEPTION_HANDLER": "dacproject.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["dacproject.parsers.JSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DAC API",
    "DESCRIPTION": "Register workflows, start and steer instances, decide parked approvals.",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "InstanceStatusEnum": "orchestration.states.InstanceStatus",
        "StepStatusEnum": "orchestration.states.StepStatus",
        "DefinitionStatusEnum": "registry.models.DefinitionStatus",
    },
}
DAC_HEALTH_WORKER_TIMEOUT_SECONDS = env.float("DAC_HEALTH_WORKER_TIMEOUT_SECONDS", default=1.0)
# `/metrics` is open when empty (a private network); set it to require `Authorization: Bearer <token>`.
DAC_METRICS_TOKEN = env.str("DAC_METRICS_TOKEN", default="")
# OpenTelemetry traces (metrics.tracing) go to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318; off when empty.
OTEL_EXPORTER_OTLP_ENDPOINT = env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="dac")
# Where the dashboard links to Flower (`make run` starts it on port 5555).
DAC_FLOWER_URL = env.str("DAC_FLOWER_URL", default="http://127.0.0.1:5555/")

# --- DAC engine ---------------------------------------------------------------------------
DAC_ACTION_MODULES = env.list(
    "DAC_ACTION_MODULES",
    default=["orchestration.actions.builtins", "orchestration.actions.llm", "orchestration.context.actions",
             "examples.actions"],
)
DAC_PYTHON_ACTION_ALLOWLIST = env.list("DAC_PYTHON_ACTION_ALLOWLIST", default=[])
DAC_HTTP_ALLOWED_HOSTS = env.list("DAC_HTTP_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "::1"])
DAC_ENABLE_SHELL = env.bool("DAC_ENABLE_SHELL", default=False)
DAC_MAX_OUTPUT_BYTES = env.int("DAC_MAX_OUTPUT_BYTES", default=1024 * 1024)
# Secrets templates may read as `secrets.NAME`; values come from DAC_SECRET_<NAME> env vars.
DAC_SECRETS_ENV_PREFIX = "DAC_SECRET_"
DAC_LLM_BASE_URL = env.str("DAC_LLM_BASE_URL", default="http://127.0.0.1:8089/v1")
DAC_LLM_API_KEY = env.str("DAC_LLM_API_KEY", default="")
DAC_LLM_DEFAULT_MODEL = env.str("DAC_LLM_DEFAULT_MODEL", default="gpt-4o-mini")
DAC_LLM_TIMEOUT_SECONDS = env.float("DAC_LLM_TIMEOUT_SECONDS", default=60.0)
# USD per 1,000 tokens, exact decimals.
DAC_LLM_PRICES = {
    "gpt-4o-mini": {"input": Decimal("0.00015"), "output": Decimal("0.0006")},
    "gpt-4o": {"input": Decimal("0.0025"), "output": Decimal("0.01")},
    "claude-3-5-sonnet": {"input": Decimal("0.003"), "output": Decimal("0.015")},
}
# Workers beat a running step's heart every DAC_HEARTBEAT_INTERVAL_SECONDS; one silent for
# DAC_HEARTBEAT_STALE_SECONDS is considered lost and dispatched again by the reconciler: the
# fallback for a process hung in a live worker (a dead worker is noticed sooner, DAC_WORKER_*).
DAC_HEARTBEAT_INTERVAL_SECONDS = env.float("DAC_HEARTBEAT_INTERVAL_SECONDS", default=5.0)
DAC_HEARTBEAT_STALE_SECONDS = env.float("DAC_HEARTBEAT_STALE_SECONDS", default=30.0)
# Lost tries of a step the reconciler re-sends without charging its retry budget.
DAC_FREE_RECOVERIES = env.int("DAC_FREE_RECOVERIES", default=2)
# Each worker's main process beats its liveness row every DAC_WORKER_BEAT_SECONDS; a worker whose
# beat is DAC_WORKER_LOST_SECONDS old is lost, and the sweep (every DAC_WORKER_SWEEP_INTERVAL_SECONDS)
# sends its steps again: worst case LOST + SWEEP = 8 s after a kill -9. Keep LOST >= 3 x BEAT.
DAC_WORKER_BEAT_SECONDS = env.float("DAC_WORKER_BEAT_SECONDS", default=2.0)
DAC_WORKER_LOST_SECONDS = env.float("DAC_WORKER_LOST_SECONDS", default=6.0)
# A step `ready` this long without being claimed is assumed lost (e.g. Redis flushed) and sent
# again. Worst-case recovery = this + DAC_RECONCILE_INTERVAL_SECONDS (default 10 + 5 = 15 s).
DAC_RECONCILE_READY_AFTER_SECONDS = env.float("DAC_RECONCILE_READY_AFTER_SECONDS", default=10.0)
# Shared context entries are cached in Redis at most this long (bounds staleness if Redis missed a write).
DAC_CONTEXT_CACHE_SECONDS = env.int("DAC_CONTEXT_CACHE_SECONDS", default=60)
# The reconciler re-sends reactions of listened-to events up to this old that never reacted.
DAC_EVENT_RECONCILE_WINDOW_SECONDS = env.float("DAC_EVENT_RECONCILE_WINDOW_SECONDS", default=3600.0)
# A task that finishes a step runs a plain successor inline (no broker trip) for this long at
# most; past it, successors go back through the queue so long chains cannot hog a process.
DAC_INLINE_BUDGET_SECONDS = env.float("DAC_INLINE_BUDGET_SECONDS", default=1.0)

# --- Resources (DESIGN §6.6; orchestration/resources) -----------------------------------
# Running instances at most, over all workflows (0: no limit) and per workflow type
# ("development=10,support=5"). Over a limit a start is queued, never dropped.
DAC_MAX_RUNNING = env.int("DAC_MAX_RUNNING", default=0)
DAC_MAX_RUNNING_PER_TYPE = env.str("DAC_MAX_RUNNING_PER_TYPE", default="")
# Rate-limit buckets for a step's `rate_limit` ("llm=60/minute,search=5/second"); a blueprint's
# coordination.rate_limits adds to and overrides these.
DAC_RATE_LIMITS = env.str("DAC_RATE_LIMITS", default="")
# LLM tokens per rolling hour that blueprint coordination.resources.api_tokens shares out between
# workflow types (0: no quota).
DAC_TOKEN_QUOTA_PER_HOUR = env.int("DAC_TOKEN_QUOTA_PER_HOUR", default=0)

# --- Registry/discovery (DESIGN §6.7; registry/discovery) ----------------------------------
# Who ranks workflows for `dac match` / `workflows/match/`: `keyword` (BM25-like, deterministic)
# or `llm` (asks DAC_LLM_BASE_URL to rank the keyword matcher's top candidates; falls back to them).
DAC_MATCHER = env.str("DAC_MATCHER", default="keyword")

# --- Governance (DESIGN §7) ----------------------------------------------------------------
# Approver groups of a gate that names none (and whose blueprint names no governance.approvers).
DAC_DEFAULT_APPROVERS = env.list("DAC_DEFAULT_APPROVERS", default=["approvers"])
# Whether the user who started an instance may decide its escalations (four-eyes when off).
DAC_ALLOW_SELF_APPROVAL = env.bool("DAC_ALLOW_SELF_APPROVAL", default=False)

# --- Notifications (DESIGN §7.3; governance/notifications) --------------------------------
# Used when a workflow's blueprint has no `governance.notifications`: one webhook URL, a comma
# list of addresses, for these escalation levels.
DAC_NOTIFY_WEBHOOK_URL = env.str("DAC_NOTIFY_WEBHOOK_URL", default="")
DAC_NOTIFY_EMAILS = env.list("DAC_NOTIFY_EMAILS", default=[])
DAC_NOTIFY_LEVELS = env.list("DAC_NOTIFY_LEVELS", default=["info", "review", "approval", "intervention"])
DAC_NOTIFY_TIMEOUT_SECONDS = env.float("DAC_NOTIFY_TIMEOUT_SECONDS", default=5.0)
# A failed send is tried again after base, 2*base, 4*base... seconds (at most the max), up to MAX_TRIES.
DAC_NOTIFY_MAX_TRIES = env.int("DAC_NOTIFY_MAX_TRIES", default=5)
DAC_NOTIFY_RETRY_BASE_SECONDS = env.float("DAC_NOTIFY_RETRY_BASE_SECONDS", default=1.0)
DAC_NOTIFY_RETRY_MAX_SECONDS = env.float("DAC_NOTIFY_RETRY_MAX_SECONDS", default=300.0)
# A pending delivery due this long ago lost its message (or its worker): the reconciler sends it again.
DAC_NOTIFY_RECONCILE_AFTER_SECONDS = env.float("DAC_NOTIFY_RECONCILE_AFTER_SECONDS", default=10.0)
# Links in notifications point here.
DAC_BASE_URL = env.str("DAC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=DAC_NOTIFY_TIMEOUT_SECONDS)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="dac@localhost")
# --- end of notifications -------------------------------------------------------------------
