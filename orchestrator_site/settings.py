"""Baton settings: every value comes from the environment, with a safe default.

A misconfigured value stops start-up with an ImproperlyConfigured naming the variable.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BATON_VAR_DIR", BASE_DIR / "var"))


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def envfloat(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def envurl(name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip()
    if value and urlparse(value).scheme not in schemes:
        raise ImproperlyConfigured(f"{name} must be a URL starting with one of {schemes}")
    return value


def _secret_key() -> str:
    if key := os.environ.get("SECRET_KEY", "").strip():
        return key
    # Generated once per checkout into the ignored var/ directory, never committed.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        _private_var_dir()
        try:
            # Created 0600 in one step (no moment readable by others); of two processes
            # starting at once, the second reads what the first wrote.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _private_var_dir() -> None:
    """var/ holds the secret key and the SQLite files: its owner's alone."""
    VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    VAR_DIR.chmod(0o700)


DEBUG = envbool("DEBUG", "false")
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# No "daphne" app: it only adds `runserver` over ASGI (Baton serves with `daphne` and
# `runstandalone`), and loading it costs every worker a third of a second at start-up.
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "channels",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI as static files: no CDN
    "agents",
    "dashboard",
    "api",
    "stream",
    "webhooks",
    # The site itself, for `runstandalone`: the one command that wires every face together.
    "orchestrator_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout into the page that says so.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "orchestrator_site.urls"
ASGI_APPLICATION = "orchestrator_site.asgi.application"

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
                "dashboard.context_processors.baton",
            ],
        },
    }
]

try:
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{VAR_DIR / 'baton.sqlite3'}",
            conn_max_age=envint("DB_CONN_MAX_AGE", 60),
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _private_var_dir()
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Standalone mode writes from worker threads: wait for the lock instead of failing, and
    # take it up front so two writers never deadlock upgrading a read lock.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # One file per test run, so two runs on one checkout never share (and break) it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    # Parameters travel apart from the SQL: psycopg does not quote every prompt and
    # response into the statement text in Python (a tenth of a worker's CPU otherwise).
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed logins lock one username from one address out for a while: the dashboard's login
# and the admin's count together. A success forgets the failures before it.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "dashboard.views.locked_out"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dash-board"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
# Behind TLS (a proxy that sets X-Forwarded-Proto): cookies only over HTTPS, plain HTTP
# redirected, and browsers told to use nothing else for a year (HSTS). Off for `make dev`.
HTTPS = envbool("HTTPS", "false")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
# Preloading binds every subdomain for good: the domain's owner opts in.
SECURE_HSTS_PRELOAD = envbool("HSTS_PRELOAD", "false")
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Only Baton's own files run: no inline script without the request's nonce, no inline
# handler or style, no eval (htmx's is off in base.html), no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "connect-src": [SELF],  # the WebSockets too: 'self' covers ws: and wss: on this host
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# The JSON API (api/): tokens or the session, the pages' permissions, errors as RFC 9457
# problems, JSON only (the browsable API's pages would need inline script).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.auth.BearerTokenAuthentication",  # first: an anonymous request gets a 401
        "rest_framework.authentication.SessionAuthentication",  # CSRF enforced
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.Required"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.BatonSchema",
    "DEFAULT_METADATA_CLASS": None,
    "EXCEPTION_HANDLER": "api.errors.handle",
    "URL_FORMAT_OVERRIDE": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Baton API",
    "DESCRIPTION": (
        "Submit and steer jobs, read their plans, call traces and shared state, manage "
        "agents and read spend. A personal API token (dashboard → API tokens) acts as its "
        "owner, with the owner's roles. Errors are RFC 9457 problems."
    ),
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "agents.models.JobStatus",
        "SubtaskStatusEnum": "agents.models.SubtaskStatus",
        "ExperimentStatusEnum": "agents.models.ExperimentStatus",
        "BulkActionEnum": "agents.bulk_forms.ACTION_CHOICES",
    },
}

REDIS_URL = envurl("REDIS_URL", "", ("redis", "rediss", "unix"))
BROKER_SCHEMES = ("redis", "rediss", "unix", "amqp", "amqps")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 times reads out after 5 s by default, which cuts channels_redis's
            # blocking reads and drops idle WebSockets with 1011.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
    # RabbitMQ (amqp://) keeps its queues on disk; Redis stays the channel layer, limiter
    # and event feed. Celery itself also reads this variable, so it is honoured here too.
    CELERY_BROKER_URL = envurl("CELERY_BROKER_URL", REDIS_URL, BROKER_SCHEMES)
    if CELERY_BROKER_URL.startswith("amqp"):
        # Durable quorum queues, each publish confirmed once stored; a topic exchange lets
        # Celery's native delayed delivery carry the retries' countdowns (Celery's guide).
        CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
        CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
        CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
else:
    if os.environ.get("CELERY_BROKER_URL", "").strip():
        # Celery would take it over memory://, and the limiter and live pages need Redis.
        raise ImproperlyConfigured("CELERY_BROKER_URL needs REDIS_URL set as well")
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    # The memory transport polls once a second by default: far too slow for a live board.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.01}

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the database connection around every task unless this is
# set: a new PostgreSQL connection per step. Keep them (tasks.py still drops broken ones).
CELERY_DB_REUSE_MAX = envint("CELERY_DB_REUSE_MAX", 10000, minimum=0)

LLM_BASE_URL = envurl("LLM_BASE_URL", "https://api.holysheep.ai/v1", ("http", "https")).rstrip("/")
LLM_API_KEY = os.environ.get("LLM_API_KEY", "").strip()
LLM_MAX_CONCURRENCY = envint("LLM_MAX_CONCURRENCY", 10, minimum=1)
LLM_TIMEOUT_S = envfloat("LLM_TIMEOUT_S", 120, minimum=1)
# Subtask calls stream their text (`stream: true`) while a page watches their job, so it
# shows the text as it arrives; a provider that does not stream is asked plainly.
LLM_STREAM = envbool("LLM_STREAM", "true")
# The LLM judge's model when its scorer names none (blank: an agent's default model).
JUDGE_MODEL = os.environ.get("JUDGE_MODEL", "").strip()

# How many subtasks one plan may hold, and how much of each upstream result a prompt carries.
PLAN_MAX_SUBTASKS = envint("PLAN_MAX_SUBTASKS", 12, minimum=1)
# Jobs one user may submit per hour (0: no limit).
JOB_SUBMISSIONS_PER_HOUR = envint("JOB_SUBMISSIONS_PER_HOUR", 120, minimum=0)
PROMPT_DEPENDENCY_CHARS = envint("PROMPT_DEPENDENCY_CHARS", 4000, minimum=100)
# A claimed step's lease: renewed while it runs (agents.leases), taken back once it lapses.
# Queued work nobody claimed within a lease is sent again (its message may be lost).
LEASE_S = envfloat("LEASE_S", 15, minimum=3)
RECONCILE_EVERY_S = envfloat("RECONCILE_EVERY_S", 2, minimum=0.1)
# How often a step (planning, a subtask attempt, a tool call, synthesis, a webhook delivery)
# is taken back from a lost or crashed worker; the next take-back fails it, with the cause.
STEP_MAX_TAKEBACKS = envint("STEP_MAX_TAKEBACKS", 5, minimum=1)
# Live events are coalesced over this window: one render per group for all its changes.
LIVE_WINDOW_S = envfloat("LIVE_WINDOW_S", 0.05, minimum=0.0)
# An outbox row (agents.outbox) this old was left by a process killed before it relayed the
# event: a reconciler pass relays it.
OUTBOX_GRACE_S = envfloat("OUTBOX_GRACE_S", 2, minimum=0.0)

# Where Baton's pages are, as seen from outside: webhook payloads link to jobs with it.
PUBLIC_URL = envurl("PUBLIC_URL", "http://127.0.0.1:8000", ("http", "https")).rstrip("/")
# Webhooks: endpoints on private, loopback or link-local addresses are refused (at
# registration and at each delivery) unless this is true. A failed delivery is tried again
# after WEBHOOK_RETRY_BASE_S × 2^n s plus jitter, WEBHOOK_MAX_ATTEMPTS times in all.
WEBHOOK_ALLOW_PRIVATE = envbool("WEBHOOK_ALLOW_PRIVATE", "false")
# Hosts the built-in http_get tool may fetch from (none by default); private addresses are
# refused unless TOOL_HTTP_ALLOW_PRIVATE (tests).
TOOL_HTTP_ALLOWLIST = envlist("TOOL_HTTP_ALLOWLIST", "")
TOOL_HTTP_ALLOW_PRIVATE = envbool("TOOL_HTTP_ALLOW_PRIVATE", "false")
# One http_get, connection to last byte, ends within this many seconds.
TOOL_HTTP_DEADLINE_S = envfloat("TOOL_HTTP_DEADLINE_S", 10, minimum=0.1)
# An MCP server (registered in the dashboard) has this long to list its tools or answer a call.
MCP_TIMEOUT_S = envfloat("MCP_TIMEOUT_S", 30, minimum=1)
# MCP servers on private, loopback or link-local addresses are refused unless this is true.
MCP_ALLOW_PRIVATE = envbool("MCP_ALLOW_PRIVATE", "false")


def envorigins(name: str) -> dict[str, list[str]]:
    """`VAR=origin,origin OTHER=origin` (entries apart by spaces or ;): where each token
    variable may be sent."""
    bound: dict[str, list[str]] = {}
    for entry in os.environ.get(name, "").replace(";", " ").split():
        var, _, listed = entry.partition("=")
        origins = [origin.strip().rstrip("/") for origin in listed.split(",") if origin.strip()]
        try:
            parts = [urlparse(origin) for origin in origins]
            valid = all(p.scheme in ("http", "https") and p.hostname and p.port != 0 for p in parts)
        except ValueError:
            valid = False
        if not (var.startswith("MCP_") and origins and valid) or any(p.path for p in parts):
            raise ImproperlyConfigured(
                f"{name} takes MCP_VAR=https://host[:port],… entries, not {entry!r}"
            )
        bound[var] = origins
    return bound


# An MCP server's token variable (auth_env) is sent only to the origins listed for it here:
# MCP_TOKEN_ORIGINS="MCP_DEMO_TOKEN=https://mcp.example.com,http://127.0.0.1:9000".
MCP_TOKEN_ORIGINS = envorigins("MCP_TOKEN_ORIGINS")
# A step waiting for an operator's approval (agents.approvals): after APPROVAL_TIMEOUT_S
# seconds (0: it waits for ever) the reconciler takes APPROVAL_TIMEOUT_ACTION, "reject" (a
# model call's subtask fails; a tool call's error goes to the model) or "approve".
APPROVAL_TIMEOUT_S = envfloat("APPROVAL_TIMEOUT_S", 0, minimum=0)
APPROVAL_TIMEOUT_ACTION = os.environ.get("APPROVAL_TIMEOUT_ACTION", "").strip().lower() or "reject"
if APPROVAL_TIMEOUT_ACTION not in ("reject", "approve"):
    raise ImproperlyConfigured(
        f"APPROVAL_TIMEOUT_ACTION must be reject or approve, not {APPROVAL_TIMEOUT_ACTION!r}"
    )
WEBHOOK_MAX_ATTEMPTS = envint("WEBHOOK_MAX_ATTEMPTS", 5, minimum=1)
WEBHOOK_RETRY_BASE_S = envfloat("WEBHOOK_RETRY_BASE_S", 1.0, minimum=0.0)
WEBHOOK_TIMEOUT_S = envfloat("WEBHOOK_TIMEOUT_S", 10, minimum=0.1)
# Server-Sent Events (/api/v1/events): a comment this often keeps idle connections open.
SSE_KEEPALIVE_S = envfloat("SSE_KEEPALIVE_S", 15, minimum=0.1)
# Streams one web process holds, in all and per user (beyond: 429 with Retry-After); a
# client resuming more than SSE_REPLAY_MAX events back gets `resync` instead of a replay.
SSE_MAX_STREAMS = envint("SSE_MAX_STREAMS", 1000, minimum=1)
SSE_MAX_PER_USER = envint("SSE_MAX_PER_USER", 10, minimum=1)
SSE_REPLAY_MAX = envint("SSE_REPLAY_MAX", 1000, minimum=1)

# Observability. GET /metrics answers only a scraper bearing METRICS_TOKEN (unset: no
# /metrics at all). Counters of every process on this host (web, workers) are files in
# PROMETHEUS_MULTIPROC_DIR, summed at scrape: prometheus_client reads the variable when it is
# first imported, so it is set here, before anything imports it.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()
METRICS_DIR = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip() or VAR_DIR / "prometheus")
if METRICS_DIR.parent == VAR_DIR:
    _private_var_dir()
METRICS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)  # other users read no counters
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
# Traces of every step and LLM call go over OTLP/HTTP to this collector; unset, tracing is off.
OTEL_EXPORTER_OTLP_ENDPOINT = envurl("OTEL_EXPORTER_OTLP_ENDPOINT", "", ("http", "https"))
OTEL_SERVICE_NAME = os.environ.get("OTEL_SERVICE_NAME", "").strip() or "baton"
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or "text"
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # Failed logins and lockouts are warnings; a successful login is no news.
        "axes": {"level": "WARNING"},
    },
}
if LOG_FORMAT == "json":  # one object per line, with the job and subtask a line is about
    LOGGING["formatters"] = {"json": {"()": "agents.telemetry.JsonFormatter"}}
    LOGGING["filters"] = {"step_ids": {"()": "agents.telemetry.StepIds"}}
    LOGGING["handlers"]["console"] |= {"formatter": "json", "filters": ["step_ids"]}

# --- Quality in allocation (agents.quality, agents.allocation) ---------------------------
# Scores credited to an agent per specialty (QualitySample rows) count over the last
# QUALITY_WINDOW_H hours; the allocator adds QUALITY_WEIGHT × (shrunk mean − 0.5), at most
# ±QUALITY_WEIGHT / 2, and nothing for an agent with fewer than QUALITY_MIN_SAMPLES scores
# (newcomers still get work). A process reads the means again every QUALITY_CACHE_S seconds.
QUALITY_WINDOW_H = envint("QUALITY_WINDOW_H", 24 * 7, minimum=1)
QUALITY_CACHE_S = envfloat("QUALITY_CACHE_S", 10.0, minimum=0.0)
QUALITY_WEIGHT = envfloat("QUALITY_WEIGHT", 40.0, minimum=0.0)
QUALITY_MIN_SAMPLES = envint("QUALITY_MIN_SAMPLES", 5, minimum=1)
# A mean below QUALITY_ALERT_BELOW (over at least QUALITY_MIN_SAMPLES scores) raises
# agent.quality_dropped once (a webhook event) and a notice on the agents page; the
# reconciler looks every QUALITY_CHECK_EVERY_S seconds.
QUALITY_ALERT_BELOW = envfloat("QUALITY_ALERT_BELOW", 0.5, minimum=0.0)
if QUALITY_ALERT_BELOW > 1:
    raise ImproperlyConfigured("QUALITY_ALERT_BELOW must be between 0 and 1")
QUALITY_CHECK_EVERY_S = envfloat("QUALITY_CHECK_EVERY_S", 60.0, minimum=0.0)
# The agents page's quality chart: hourly means over the last QUALITY_CHART_H hours.
QUALITY_CHART_H = envint("QUALITY_CHART_H", 24, minimum=1)

# --- Recurring and safe submission (agents.schedules, agents.idempotency, agents.bulk) -----
# Every worker (and the standalone process) looks for due schedules every SCHEDULE_TICK_S
# seconds; a due time later than SCHEDULE_MISSED_AFTER_S counts as missed (nothing ran) and
# the schedule's on_missed policy applies to it.
SCHEDULE_TICK_S = envfloat("SCHEDULE_TICK_S", 0.5, minimum=0.05)
SCHEDULE_MISSED_AFTER_S = envfloat("SCHEDULE_MISSED_AFTER_S", 60.0, minimum=1.0)
# The same Idempotency-Key with the same request within this many seconds gets the same job.
IDEMPOTENCY_KEY_TTL_S = envint("IDEMPOTENCY_KEY_TTL_S", 24 * 3600, minimum=60)
# At most this many jobs in one bulk cancel, retry or re-run.
BULK_MAX_JOBS = envint("BULK_MAX_JOBS", 5000, minimum=1)
