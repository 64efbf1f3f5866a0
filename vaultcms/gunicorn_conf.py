"""gunicorn settings for the `web` process, read from the environment like everything else.

Used as `gunicorn vaultcms.wsgi --config python:vaultcms.gunicorn_conf` (see Procfile).
"""

import os
from pathlib import Path

from dotenv import load_dotenv

# The same rule as settings.py: a variable already in the environment wins over .env.
load_dotenv(Path(__file__).resolve().parent.parent / ".env", override=False)


def _bind() -> str:
    explicit = os.environ.get("VAULTCMS_BIND", "").strip()
    if explicit:
        return explicit
    port = os.environ.get("PORT", "").strip() or "8000"
    return f"127.0.0.1:{port}"


bind = [_bind()]
workers = int(os.environ.get("VAULTCMS_WEB_WORKERS") or os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(os.environ.get("VAULTCMS_WEB_THREADS") or 1)
timeout = int(os.environ.get("VAULTCMS_WEB_TIMEOUT") or 60)
graceful_timeout = 20
# Trust X-Forwarded-* only from a proxy on this machine (the usual nginx/caddy in front).
forwarded_allow_ips = os.environ.get("VAULTCMS_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("VAULTCMS_LOG_LEVEL", "info").lower()
# No query strings in the access log: they can carry search terms from note text.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'

# gunicorn's own loggers go through the same one-line, key-redacting handler as Django's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {
            "()": "vaultcms.logs.OneLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "filters": {"redact_secrets": {"()": "vaultcms.logs.RedactSecrets"}},
    "handlers": {
        "console": {
            "class": "vaultcms.console.SafeStreamHandler",
            "formatter": "line",
            "filters": ["redact_secrets"],
        },
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# gunicorn's runtime control socket is one fixed path per user: two instances (a second
# site, the test suite) would fight over it, and nothing here uses it.
control_socket_disable = os.environ.get("VAULTCMS_GUNICORN_CONTROL_SOCKET", "") == ""
if not control_socket_disable:
    control_socket = os.environ["VAULTCMS_GUNICORN_CONTROL_SOCKET"]
