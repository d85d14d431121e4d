"""fulmen: a WSGI server whose core is C++ (``fulmen._core``).

Run it from the command line (``fulmen app:application``, see
``fulmen --help``) or from Python with :func:`run`. This package is only the
user's side: settings, the command line and loading the application. It
imports nothing heavy, and the native extension only when serving starts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "run"]

__version__ = "0.1.0"


def run(
    app: Any,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    **settings: Any,
) -> int:
    """Serve *app* until the server is stopped; return the exit status.

    *app* is a WSGI callable, a Fapws4-style ``PATHS`` list of
    ``(prefix, handler)`` pairs, or a TARGET string as on the command line
    (``"pkg.module:app"``, ``"hello.py"``).

    *host* and *port* (default 127.0.0.1 and 8000) make one bind address; a
    host starting with ``unix:`` is a unix socket. Any other setting is a
    keyword argument named as in docs/settings.md, e.g.
    ``run(app, workers=4, keepalive_timeout=2.5, bind=[":8000", "[::]:8000"])``.

    This takes the same path as the command line: the keyword arguments play
    the part of the options, so ``FULMEN_*`` environment variables and a
    ``config=`` file fill in the settings not passed.

    Raises ``ValueError`` for an unknown setting, a bad value or a malformed
    TARGET/PATHS, ``fulmen.loader.AppLoadError`` if a TARGET string cannot be
    loaded, ``OSError`` if an address cannot be bound, ``ImportError`` if the
    native extension is missing. Blocks while serving.
    """
    from .cli import run_app  # keeps "import fulmen" light

    return run_app(app, host, port, workers, settings)
