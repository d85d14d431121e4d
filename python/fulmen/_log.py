"""The log line format shared by the Python front and the C++ core.

Every line is ``[%Y-%m-%d %H:%M:%S +0000] [pid] [LEVEL] message`` in UTC,
written to stderr and flushed at once, e.g.::

    [2026-11-27 04:00:00 +0000] [4242] [INFO] Listening at: http://127.0.0.1:8000 (fulmen 0.1.0)

The core (src/core) writes the same format, so a log mixes both without seams.
Tests parse these lines (the "Listening at:" one gives the bound port), so the
format is a contract: change it here and in the core together.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import socket
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


class _JSONFormatter(logging.Formatter):
    """``--log-format json``: the core's JSON line, {"time", "pid", "level", "message"}."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return json.dumps({"time": f"{when}.{int(record.msecs):03d}Z", "pid": record.process,
                           "level": record.levelname, "message": message}, ensure_ascii=False)


def syslog_address(text: str) -> tuple[object, int]:
    """``udp://HOST:PORT`` or ``unix:PATH`` as SysLogHandler's (address, socktype)."""
    if text.startswith("unix:"):
        return text[len("unix://"):] if text.startswith("unix://") else text[len("unix:"):], socket.SOCK_DGRAM
    rest = text.removeprefix("udp://")
    host, _, port = rest.rpartition(":")
    return (host.strip("[]"), int(port)), socket.SOCK_DGRAM


def configure(level: str = "info", log_format: str = "text", syslog_to: str = "") -> None:
    """Send fulmen's log to stderr at *level* (a ``log_level`` value).

    *log_format* "json" writes the core's JSON lines; *syslog_to* (an address,
    ``--log-syslog-to``) also sends each line to a syslog daemon, framed as
    the core frames its own ("fulmen: [pid] [LEVEL] message", facility user).
    Idempotent: calling it again replaces the handlers instead of adding one.
    Only the "fulmen" logger is touched; the application's own logging setup,
    root logger included, is left alone.
    """
    for handler in [h for h in logger.handlers if isinstance(h, (_StderrHandler, logging.handlers.SysLogHandler))]:
        logger.removeHandler(handler)
        if isinstance(handler, logging.handlers.SysLogHandler):
            handler.close()
    handler = _StderrHandler()
    handler.setFormatter(_JSONFormatter() if log_format == "json" else _UTCFormatter(FORMAT, DATE_FORMAT))
    logger.addHandler(handler)
    if syslog_to:
        address, socktype = syslog_address(syslog_to)
        if isinstance(address, str):
            # SysLogHandler would swallow a failed connect and then fail on every line.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
                probe.connect(address)
        syslog = logging.handlers.SysLogHandler(address=address, socktype=socktype)  # type: ignore[arg-type]
        syslog.ident = "fulmen: "
        syslog.setFormatter(logging.Formatter("[%(process)d] [%(levelname)s] %(message)s"))
        logger.addHandler(syslog)
    logger.setLevel(LEVELS[level])
    logger.propagate = False
