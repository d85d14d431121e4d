"""systemd's readiness protocol (sd_notify) without libsystemd: one datagram.

With ``Type=notify`` (or ``notify-reload``) systemd sets ``NOTIFY_SOCKET`` to
a unix datagram socket, a path or an abstract name written ``@name``. fulmen
sends ``READY=1`` once the first workers accept, ``RELOADING=1`` (with
``MONOTONIC_USEC``) when a reload starts and ``READY=1`` once the new workers
are ready, and ``STOPPING=1`` when it begins to stop. Without the variable
nothing is sent.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["notify", "reloading"]


def notify(*fields: str) -> bool:
    """Send ``fields`` (e.g. ``"READY=1"``) to ``NOTIFY_SOCKET``; True if sent.

    Failures are not errors: the service manager may be gone or the socket
    may not accept datagrams; the server runs on either way.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError:
        return False
    return True


def reloading() -> bool:
    """``RELOADING=1`` with the timestamp ``notify-reload`` services require."""
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
