"""Log lines as operators need them: one line per event, never carrying an API key."""

import copy
import logging
import os
import re
import sys
import uuid

from django.conf import settings
from django.template import loader
from django.views.debug import ExceptionReporter

# Anthropic keys look like sk-ant-api03-...; match the family, whatever follows the prefix.
KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")
MASK = "[redacted]"
# Shorter configured values are not redacted one by one: replacing every "abc" would garble
# the log without protecting anything a real key needs.
MIN_SECRET_LENGTH = 8


def configured_secrets() -> list[str]:
    """The secret values configured right now (read each time, so a rotated key is covered)."""
    values = [os.environ.get("ANTHROPIC_API_KEY", "").strip()]
    return [v for v in values if len(v) >= MIN_SECRET_LENGTH]


def redact(text: str) -> str:
    """`text` with every configured secret and anything shaped like an Anthropic key masked."""
    if not text:
        return text
    for secret in configured_secrets():
        text = text.replace(secret, MASK)
    return KEY_PATTERN.sub(MASK, text)


class RedactSecrets(logging.Filter):
    """Rewrites a record so no handler after it can print a key.

    Attach it to handlers, not loggers: a logger's filters do not see records that
    propagate up from child loggers, a handler's filters see them all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed %-format: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class OneLineFormatter(logging.Formatter):
    """Folds a multi-line message or traceback into one line, so one event is one line.

    Line-oriented tools (grep, journald, a log shipper) then never split a traceback
    from the event that raised it.
    """

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno < logging.ERROR and (record.exc_info or record.exc_text):
            # Below ERROR an exception is control flow (Django logs every 403/404 with one):
            # its last line says what happened, the frames are noise.
            record = copy.copy(record)
            text = record.exc_text or self.formatException(record.exc_info)
            record.exc_text = text.strip().splitlines()[-1] if text.strip() else ""
            record.exc_info = None
        return " | ".join(line for line in super().format(record).splitlines() if line.strip())


errors_log = logging.getLogger("vaultcms.errors")


def error_page(request, exc_type=None) -> str:
    """The plain 500 page with a fresh request id, which is logged beside the error."""
    request_id = uuid.uuid4().hex[:12]
    name = exc_type.__name__ if exc_type is not None else "error"
    method = getattr(request, "method", "") or "-"
    path = getattr(request, "path", "") or "-"
    errors_log.error("request_id=%s %s %s %s", request_id, method, path, name)
    return loader.render_to_string("500.html", {"request_id": request_id})


def server_error(request):
    """handler500: the plain page with a request id (DEBUG off)."""
    from django.http import HttpResponseServerError

    return HttpResponseServerError(error_page(request, sys.exc_info()[0]))


class RedactingExceptionReporter(ExceptionReporter):
    """Django's error report (the DEBUG page, error e-mails) with API keys masked.

    Django hides settings by name, but a key can still sit in a local variable or an
    exception message shown in the traceback; mask the finished report instead.

    With DEBUG on, a browser gets the plain 500 page with a request id, like production,
    unless VAULTCMS_DEBUG_PAGES asks for Django's technical page: the demo runs with DEBUG on,
    and its staff must not see settings, environment or local variables. Error e-mails
    (is_email) keep the full, masked report.
    """

    def _technical(self) -> bool:
        return self.is_email or settings.VAULTCMS_DEBUG_PAGES

    def get_traceback_html(self):
        if not self._technical():
            return error_page(self.request, self.exc_type)
        return redact(str(super().get_traceback_html()))

    def get_traceback_text(self):
        if not self._technical():
            return error_page(self.request, self.exc_type)
        return redact(str(super().get_traceback_text()))
