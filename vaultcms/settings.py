"""Django settings for VaultCMS, read from the environment (the README's Configuration lists every one)."""

import json
import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# A variable already set in the environment always wins over the .env file.
load_dotenv(BASE_DIR / ".env", override=False)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float | None) -> float | None:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


DEBUG = env_bool("VAULTCMS_DEBUG", True)

_DEV_SECRET = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("VAULTCMS_SECRET_KEY") or _DEV_SECRET
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("VAULTCMS_SECRET_KEY must be set when VAULTCMS_DEBUG is off.")

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("VAULTCMS_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "vaultcms",
    "ingest",
    "curation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "vaultcms.login_throttle.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vaultcms.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "vaultcms.wsgi.application"

# --- Database -----------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A web process and several workers share one file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN (no upgrade deadlock), and the
    # timeout makes a busy writer wait instead of raising "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
        ),
    }
    DATABASES["default"].setdefault("TEST", {})
    if os.environ.get("VAULTCMS_TEST_DB_NAME"):
        DATABASES["default"]["TEST"]["NAME"] = os.environ["VAULTCMS_TEST_DB_NAME"]
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and task queue ------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("VAULTCMS_CACHE_PREFIX", "vaultcms"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The login throttle's counters must be shared by every web process (gunicorn runs several):
# Redis when there is one, else a table in the database (created by `migrate`, see
# vaultcms/apps.py). Never LocMem: each process would count alone.
CACHES["login"] = (
    {**CACHES["default"], "KEY_PREFIX": CACHES["default"]["KEY_PREFIX"] + ":login"}
    if REDIS_URL
    else {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "vaultcms_cache",
        # Culling runs on writes; the throttle's keys expire within the login window anyway.
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }
)

Q_CLUSTER = {
    "name": os.environ.get("VAULTCMS_Q_NAME", "vaultcms"),
    "workers": env_int("VAULTCMS_WORKERS", 2),
    # A task may poll or stream results for a while; retry must exceed timeout so a
    # slow task is never handed to a second worker while the first still runs it.
    "timeout": env_int("VAULTCMS_TASK_TIMEOUT", 600),
    "retry": env_int("VAULTCMS_TASK_TIMEOUT", 600) + 60,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    "label": "Task queue",
    "sync": env_bool("VAULTCMS_Q_SYNC", False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5

# --- Curation (contract variables) --------------------------------------------
CURATION_MODEL = os.environ.get("CURATION_MODEL", "claude-haiku-4-5")
# Each vault's related-notes index, kept between jobs (rebuilt when its notes change).
CURATION_INDEX_DIR = os.environ.get("VAULTCMS_INDEX_DIR") or str(BASE_DIR / "var" / "index")
CURATION_BATCH_SIZE = env_int("CURATION_BATCH_SIZE", 100)
CURATION_POLL_SECONDS = env_int("CURATION_POLL_SECONDS", 30)
CURATION_CONCURRENCY = env_int("CURATION_CONCURRENCY", 8)
CURATION_MAX_ATTEMPTS = env_int("CURATION_MAX_ATTEMPTS", 3)
# A batch job not ended this many seconds after it started is switched to parallel real-time
# calls for its unfinished items (0: never automatically; the admin's "Switch to parallel").
CURATION_HEDGE_AFTER_SECONDS = env_float("CURATION_HEDGE_AFTER_SECONDS", 0.0)
# The first wait between two polls of a running batch (it grows to CURATION_POLL_SECONDS).
CURATION_POLL_MIN_SECONDS = env_float("CURATION_POLL_MIN_SECONDS", 2.0)
# Bytes of requests in one batch at most (the API's own ceiling is 256 MB).
CURATION_BATCH_MAX_BYTES = env_int("CURATION_BATCH_MAX_BYTES", 256 * 1024 * 1024)
# Prices per model, US$ per million tokens, over the built-in table (curation/api/pricing.py):
# JSON, e.g. {"claude-sonnet-4-6": {"input": 3, "output": 15}} (cache prices default to
# 1.25x/2x/0.1x input). A job for a model with no known price is refused before anything is sent.
_prices = os.environ.get("CURATION_PRICES", "").strip()
try:
    CURATION_PRICES = json.loads(_prices) if _prices else {}
except ValueError as _exc:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"CURATION_PRICES is not valid JSON ({_exc})") from None
# The most a job may cost, in US$, unless its creator sets another: a job estimated over it is
# refused, one reaching it while it runs stops sending (its unsent items end canceled). 0: none.
try:
    CURATION_MAX_JOB_COST = Decimal(os.environ.get("CURATION_MAX_JOB_COST", "").strip() or "10")
except ArithmeticError:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("CURATION_MAX_JOB_COST must be a number of US dollars") from None
# Parallel mode: tries per attempt on 429/529/5xx/timeouts before the attempt counts as errored.
CURATION_PARALLEL_RETRIES = env_int("CURATION_PARALLEL_RETRIES", 4)
# The SDK's own retries and timeout for real-time calls (batch creates are never retried).
CURATION_SDK_MAX_RETRIES = env_int("CURATION_SDK_MAX_RETRIES", 2)
CURATION_TIMEOUT_SECONDS = env_float("CURATION_TIMEOUT_SECONDS", 120.0)
# Seconds a worker's task works on a job before handing over to a fresh task
# (unset: half of VAULTCMS_TASK_TIMEOUT).
CURATION_TASK_BUDGET = env_float("CURATION_TASK_BUDGET", None)
# A running job's lease (curation/engine/recovery.py): its run renews it every quarter of
# this; when its worker dies the lease lapses after this long and the sweep (about every 30 s)
# queues the job again.
CURATION_LEASE_SECONDS = env_float("CURATION_LEASE_SECONDS", 20.0)
# How long a task queued for a job may wait for a worker before the sweep queues another.
CURATION_QUEUED_SECONDS = env_float("CURATION_QUEUED_SECONDS", 60.0)
# Tag consolidation: tags per request at most; a longer tag list is sent in parts (one job item
# each), so one answer never has to cover thousands of tags.
CURATION_CONSOLIDATION_TAGS = env_int("CURATION_CONSOLIDATION_TAGS", 400)
# How long opening a note's review page holds it for that moderator (renewed on reload).
REVIEW_LOCK_SECONDS = env_int("REVIEW_LOCK_SECONDS", 600)

# --- Vault import --------------------------------------------------------------
VAULTCMS_MAX_NOTE_BYTES = env_int("VAULTCMS_MAX_NOTE_BYTES", 2 * 1024 * 1024)

# --- URL ingest (ingest/url_ingest.py) --------------------------------------------
# Private/loopback addresses are refused unless allowed (tests point it at a local server).
VAULTCMS_URL_INGEST_ALLOW_PRIVATE = env_bool("VAULTCMS_URL_INGEST_ALLOW_PRIVATE", False)
VAULTCMS_URL_INGEST_TIMEOUT = env_float("VAULTCMS_URL_INGEST_TIMEOUT", 15.0)
VAULTCMS_URL_INGEST_MAX_BYTES = env_int("VAULTCMS_URL_INGEST_MAX_BYTES", 5 * 1024 * 1024)

# --- Auth, i18n, static ------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
# Failed admin logins allowed per username and address within the window (then 429).
VAULTCMS_LOGIN_ATTEMPTS = env_int("VAULTCMS_LOGIN_ATTEMPTS", 5)
VAULTCMS_LOGIN_WINDOW_SECONDS = env_int("VAULTCMS_LOGIN_WINDOW_SECONDS", 15 * 60)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("VAULTCMS_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Production hardening (checked by `manage.py check --deploy`) -------------------
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("VAULTCMS_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("VAULTCMS_SECURE_COOKIES", True)
    SECURE_SSL_REDIRECT = env_bool("VAULTCMS_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("VAULTCMS_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("VAULTCMS_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# Error reports (the DEBUG page, error e-mails) never show an API key.
DEFAULT_EXCEPTION_REPORTER = "vaultcms.logs.RedactingExceptionReporter"
# Even with DEBUG on (the demo), a 500 shows the plain page with a request id, never Django's
# technical page (settings, environment, local variables), unless a developer turns this on.
VAULTCMS_DEBUG_PAGES = env_bool("VAULTCMS_DEBUG_PAGES", False)

# --- Logging: one line per event, never crashing on a filename's characters ---------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {
            "()": "vaultcms.logs.OneLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "filters": {
        "redact_secrets": {"()": "vaultcms.logs.RedactSecrets"},
    },
    "handlers": {
        "console": {
            "class": "vaultcms.console.SafeStreamHandler",
            "formatter": "line",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("VAULTCMS_LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "httpx": {"level": "WARNING"},
        "django-q": {"level": os.environ.get("VAULTCMS_Q_LOG_LEVEL", "WARNING")},
    },
}
