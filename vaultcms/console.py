"""Console and log output that never crashes on characters the terminal cannot encode."""

import logging
import sys


def make_streams_safe() -> None:
    """Let stdout/stderr replace what their encoding cannot show instead of raising.

    A note called "🚀 Launch.md" printed to a cp1252 or ASCII console must not end a run.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed or detached stream: nothing to mend
                pass


def printable(text: str, stream=None) -> str:
    """`text` as the given stream (stdout by default) can encode it, escaping the rest."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    return text.encode(encoding, errors="backslashreplace").decode(encoding, errors="replace")


class SafeStreamHandler(logging.StreamHandler):
    """A StreamHandler that escapes unencodable characters rather than failing the emit."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            self.stream.write(printable(msg, self.stream) + self.terminator)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
