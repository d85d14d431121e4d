"""The log line format shared by the Python front and the C++ core.

Every line is ``[%Y-%m-%d %H:%M:%S +0000] [pid] [LEVEL] message`` in UTC,
written to stderr and flushed at once, e.g.::

    [2026-11-27 04:00:00 +0000] [4242] [INFO] Listening at: http://127.0.0.1:8000 (fulmen 0.1.0)

The core (src/core) writes the same format, so a log mixes both without seams.
Tests parse these lines (the "Listening at:" one gives the bound port), so the
format is a contract: change it here and in the core together.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Final

__all__ = ["LEVELS", "configure", "logger"]

#: Setting value -> logging level. The names are what ``log_level`` accepts.
LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

FORMAT: Final = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S +0000"

logger: Final = logging.getLogger("fulmen")


class _UTCFormatter(logging.Formatter):
    # The "+0000" in DATE_FORMAT is only true if the time is converted as UTC.
    converter = staticmethod(time.gmtime)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record.

    StreamHandler would keep the stream it was built with; looking it up per
    record keeps working when stderr is replaced (pytest's capture, daemon
    tools). StreamHandler flushes after every record.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: str = "info") -> None:
    """Send fulmen's log to stderr at *level* (a ``log_level`` value).

    Idempotent: calling it again replaces the handler instead of adding one.
    Only the "fulmen" logger is touched; the application's own logging setup,
    root logger included, is left alone.
    """
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_UTCFormatter(FORMAT, DATE_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(LEVELS[level])
    logger.propagate = False
