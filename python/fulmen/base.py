"""Types for the callables fulmen serves, under Fapws4's names.

In script mode (``fulmen hello.py``) fulmen serves the script's ``PATHS``, a
list of ``(prefix, handler)`` pairs, and makes ``fapws4.base`` an alias of
this module, so a Fapws4 script runs unchanged::

    from fapws4.base import Start_response, Environ

    def hello(env: Environ, resp: Start_response) -> str:
        return "hello world!"

    PATHS = [('/', hello)]

Both names exist for annotations and documentation: the server passes a plain
``dict`` as the environ and its own callable as ``resp``. New code may import
them from ``fulmen.base`` directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = ["Application", "Environ", "ExcInfo", "Handler", "Start_response", "Static", "Write"]

#: What ``sys.exc_info()`` returns while an exception is handled.
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]

#: The legacy ``write(data)`` callable returned by ``start_response`` (PEP 3333).
Write: TypeAlias = Callable[[bytes], object]


class Environ(dict[str, Any]):
    """The request, as the WSGI ``environ`` dict handlers receive (PEP 3333).

    The server passes a plain ``dict``; this class exists to name and document
    it. Keys a handler finds in every request:

    ``REQUEST_METHOD``
        ``"GET"``, ``"POST"``, ... as sent by the client.
    ``SCRIPT_NAME``
        The part of the path that selected the handler: ``root_path`` followed,
        in script mode, by the matched ``PATHS`` prefix ("" for the prefix "/").
    ``PATH_INFO``
        The rest of the path after ``SCRIPT_NAME``, percent-decoded, as a str
        holding the raw bytes decoded as latin-1 (PEP 3333's "bytes as str").
    ``QUERY_STRING``
        The part of the request target after "?", not decoded; "" if none.
    ``CONTENT_TYPE``, ``CONTENT_LENGTH``
        From the request headers, present only when the client sent them.
    ``SERVER_NAME``, ``SERVER_PORT``
        The host and port of the listening socket that accepted the
        connection (for a unix socket, its path and "").
    ``SERVER_PROTOCOL``
        ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
    ``REMOTE_ADDR``, ``REMOTE_PORT``
        The client's address (absent for unix sockets).
    ``HTTP_<NAME>``
        Every other request header, upper-cased with "-" turned into "_"
        (``HTTP_HOST``, ``HTTP_USER_AGENT``, ``HTTP_COOKIE``...); repeated
        headers are joined with ", ".
    ``wsgi.version``
        ``(1, 0)``.
    ``wsgi.url_scheme``
        ``"http"``.
    ``wsgi.input``
        A binary file to ``read()`` the request body from.
    ``wsgi.errors``
        A text file that writes to the server's stderr.
    ``wsgi.multithread``, ``wsgi.multiprocess``, ``wsgi.run_once``
        ``False``, ``workers > 1``, ``False``.
    ``wsgi.file_wrapper``
        Wraps a file object so that the server can send it efficiently.
    """

    __slots__ = ()


@runtime_checkable
class Start_response(Protocol):  # noqa: N801 -- Fapws4's name, kept for compatibility
    """The ``resp`` callable a handler receives: WSGI's ``start_response``.

    Call it once, before returning the body, to choose the status line and the
    headers::

        def hello(env: Environ, resp: Start_response) -> list[bytes]:
            resp("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"hello world!"]

    *status* is a str such as ``"404 Not Found"``; *headers* is a list of
    ``(name, value)`` str pairs, latin-1 encodable and without CR/LF. Do not
    send hop-by-hop headers (``Connection``, ``Transfer-Encoding``...): the
    server owns framing and connection management.

    *exc_info*, from ``sys.exc_info()``, is for error handlers: it lets a
    handler call ``resp`` again to replace a response whose headers have not
    been sent yet; once they have, the exception is re-raised (PEP 3333).

    The return value is the legacy ``write(data: bytes)`` callable; returning
    the body is better, because the server can then send it in one write.
    """

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
        /,
    ) -> Write: ...


#: A WSGI application: ``app(environ, start_response) -> iterable of bytes``.
Application: TypeAlias = Callable[[Environ, Start_response], Iterable[bytes]]

#: A script-mode handler, one per ``PATHS`` entry. It is called like a WSGI
#: application; as in Fapws4, it may also return a single ``str`` or ``bytes``
#: as the whole body.
Handler: TypeAlias = Callable[[Environ, Start_response], "Iterable[bytes] | bytes | str"]


class Static:
    """A ``PATHS`` entry that serves a folder's files from the server's core::

        PATHS = [("/static", Static("public")), ("/", hello)]

    Requests under the prefix never reach Python: the core answers them as
    ``--static /static=public`` does (GET/HEAD, 304, ranges, precompressed
    siblings; nothing outside the folder). A relative *directory* is relative
    to the script's folder. A plain str naming an existing directory works
    too: ``("/static", "public")``.
    """

    __slots__ = ("directory",)

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)

    def __repr__(self) -> str:
        return f"Static({self.directory!r})"
