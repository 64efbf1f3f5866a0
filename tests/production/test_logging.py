"""Log records: one line per event, and no API key in a message, its arguments or a traceback."""

import io
import logging

import pytest

from vaultcms.logs import OneLineFormatter, RedactSecrets, redact

KEY = "sk-ant-api03-UNIQUE-log-marker_0123456789"


@pytest.fixture
def console(monkeypatch):
    """The configured console handler (from settings.LOGGING), writing into a buffer."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    handler = next(h for h in logging.getLogger().handlers if type(h).__name__ == "SafeStreamHandler")
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    yield buffer
    handler.setStream(old)


def test_key_in_message_and_args_is_redacted(console):
    log = logging.getLogger("curation.test")
    log.warning("calling with key %s", KEY)
    log.warning(f"header x-api-key: {KEY}")
    out = console.getvalue()
    assert KEY not in out
    assert out.count("[redacted]") == 2


def test_configured_key_of_any_shape_is_redacted(console, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "custom-gateway-token-42")
    logging.getLogger("curation.test").error("failed for custom-gateway-token-42")
    assert "custom-gateway-token-42" not in console.getvalue()


def test_traceback_is_redacted_and_on_one_line(console):
    log = logging.getLogger("curation.test")
    try:
        raise RuntimeError(f"authentication failed for {KEY}")
    except RuntimeError:
        log.exception("job 7 item 12 failed")
    out = console.getvalue()
    assert KEY not in out
    assert "RuntimeError: authentication failed for [redacted]" in out
    assert out.count("\n") == 1  # one event, one line
    assert "job 7 item 12 failed" in out


def test_unicode_filename_logs_without_crashing(console):
    logging.getLogger("ingest.test").warning("skipped 🚀 Launch.md: %s", "bad yaml\nline 2")
    out = console.getvalue()
    assert out.count("\n") == 1
    assert "Launch.md" in out


def test_filter_and_formatter_directly():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s b", ("sk-ant-xyz",), None)
    assert RedactSecrets().filter(record) is True
    assert OneLineFormatter("%(message)s").format(record) == "a [redacted] b"
    assert redact("") == ""
    assert redact("no secrets here") == "no secrets here"


def test_warning_with_exception_keeps_only_its_last_line(console):
    try:
        raise PermissionError(f"denied {KEY}")
    except PermissionError:
        logging.getLogger("django.request").warning("Forbidden (Permission denied): /x/", exc_info=True)
    out = console.getvalue()
    assert out.endswith("Forbidden (Permission denied): /x/ | PermissionError: denied [redacted]\n")
    assert "Traceback" not in out
