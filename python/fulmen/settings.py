"""fulmen's settings: one data table, and the rules that fill it.

Every setting is one row of ``SETTINGS``: its name, where it may come from, the
converter that types and validates it, its default and its help. Everything
else is generated from that table: the command-line options (``cli.py``), the
``FULMEN_<NAME>`` environment variables, the names a config file may assign,
the ``options`` dict handed to ``fulmen._core.serve`` and ``docs/settings.md``
(``tools/gen_settings_doc.py``). To add a setting, add a row; nothing else here
needs to change.

Precedence, highest first: command line (or the keyword arguments of
``fulmen.run``) > environment > config file > default.

A converter takes the raw value as it arrives -- a ``str`` from the command line
or the environment, any Python object from a config file or ``fulmen.run`` --
and returns the typed value or raises ``InvalidValue`` with a one-line problem.
``resolve`` adds where the value came from, so the user reads e.g.
``--workers: expected an integer >= 1, got 'x'``.
"""

from __future__ import annotations

import difflib
import grp
import inspect
import ipaddress
import math
import os
import pwd
import re
import socket
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, NoReturn

__all__ = [
    "BY_NAME",
    "ENV_PREFIX",
    "SETTINGS",
    "Address",
    "ConfigFileError",
    "InvalidValue",
    "Setting",
    "SettingError",
    "Settings",
    "cli_label",
    "parse_address",
    "resolve",
]

ENV_PREFIX: Final = "FULMEN_"

# The sources a setting may come from. Most settings accept all three; the
# config file path and the one-shot commands (--check-config) are CLI-only or
# CLI + environment, because reading them from a config file makes no sense.
CLI: Final = "cli"
ENV: Final = "env"
FILE: Final = "file"
ALL_SOURCES: Final = frozenset({CLI, ENV, FILE})


class InvalidValue(ValueError):
    """Raised by a converter; the message is the problem alone, without where."""


class SettingError(ValueError):
    """A setting has a value it cannot take.

    ``str(error)`` is one line: ``<where>: <problem>``, where *where* names the
    source (``--workers``, ``FULMEN_WORKERS``, ``conf.py: workers``, or the
    keyword argument of ``fulmen.run``).
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class ConfigFileError(SettingError):
    """The config file could not be executed.

    ``details`` holds the formatted traceback of the exception the file raised,
    which the CLI prints before the one-line summary.
    """

    def __init__(self, path: str, problem: str, details: str) -> None:
        super().__init__(path, problem)
        self.details = details


def _shown(raw: object, limit: int = 60) -> str:
    """``repr(raw)`` cut to a length that keeps an error message on one line."""
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------
# Converters. Each knows how to describe what it accepts (for messages and the
# docs), how to turn a raw value into the typed one, and how to write a typed
# value back as Python source (for --print-config and the docs).
# --------------------------------------------------------------------------


class Converter:
    """Base class: ``convert(raw) -> typed value``; raises ``InvalidValue``."""

    #: The type as shown in the docs.
    type_name: ClassVar[str] = "str"

    @property
    def expected(self) -> str:
        """What the converter accepts, as it reads after "expected ..."."""
        raise NotImplementedError

    def __call__(self, raw: object) -> Any:
        raise NotImplementedError

    def from_env(self, text: str) -> Any:
        """Convert an environment variable's text (only lists differ)."""
        return self(text)

    def reject(self, raw: object) -> NoReturn:
        raise InvalidValue(f"expected {self.expected}, got {_shown(raw)}")

    def to_source(self, value: Any) -> str:
        """The typed value written as Python source, e.g. ``4096`` or ``'info'``."""
        return repr(value)


_INT_RE = re.compile(r"[+-]?[0-9]+")
# Plain decimal notation only: no exponent, no inf/nan, no unicode digits.
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


@dataclass(frozen=True)
class Integer(Converter):
    """An integer in [low, high] (high None = unbounded)."""

    low: int
    high: int | None = None
    type_name: ClassVar[str] = "int"

    @property
    def expected(self) -> str:
        if self.high is None:
            return f"an integer >= {self.low}"
        return f"an integer from {self.low} to {self.high}"

    def __call__(self, raw: object) -> int:
        if isinstance(raw, bool):  # bool is an int subclass; True is not 1 worker
            self.reject(raw)
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str) and _INT_RE.fullmatch(raw.strip()):
            value = int(raw.strip())
        else:
            self.reject(raw)
        if value < self.low or (self.high is not None and value > self.high):
            self.reject(raw)
        return value


@dataclass(frozen=True)
class Seconds(Converter):
    """A finite duration in seconds, as a float; zero allowed only if allow_zero."""

    allow_zero: bool
    minimum: float = 0.0  # a non-zero value must be at least this
    type_name: ClassVar[str] = "float (seconds)"

    @property
    def expected(self) -> str:
        if self.minimum > 0:
            return f"0 or a number of seconds >= {self.minimum:g}" if self.allow_zero else (
                f"a number of seconds >= {self.minimum:g}")
        return "a number of seconds " + (">= 0" if self.allow_zero else "> 0")

    def __call__(self, raw: object) -> float:
        if isinstance(raw, bool):
            self.reject(raw)
        if isinstance(raw, (int, float)):
            value = float(raw)
        elif isinstance(raw, str) and _FLOAT_RE.fullmatch(raw.strip()):
            value = float(raw.strip())
        else:
            self.reject(raw)
        # The core turns seconds into integer milliseconds: inf/nan would overflow.
        if not math.isfinite(value) or value < 0 or (value == 0 and not self.allow_zero):
            self.reject(raw)
        if 0 < value < self.minimum:
            self.reject(raw)
        return value


_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Boolean(Converter):
    """True/False; from text: 1/0, true/false, yes/no, on/off (any case)."""

    type_name: ClassVar[str] = "bool"

    @property
    def expected(self) -> str:
        return "a boolean (true/false, yes/no, on/off, 1/0)"

    def __call__(self, raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            word = raw.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        self.reject(raw)


@dataclass(frozen=True)
class Choice(Converter):
    """One of a fixed set of lower-case words (input is case-insensitive)."""

    choices: tuple[str, ...]

    @property
    def expected(self) -> str:
        return "one of " + ", ".join(self.choices)

    def __call__(self, raw: object) -> str:
        if isinstance(raw, str) and raw.strip().lower() in self.choices:
            return raw.strip().lower()
        self.reject(raw)


@dataclass(frozen=True)
class Text(Converter):
    """A str accepted when ``check(value)`` is true; *description* says what passes."""

    description: str
    check: Callable[[str], bool]

    @property
    def expected(self) -> str:
        return self.description

    def __call__(self, raw: object) -> str:
        if isinstance(raw, str) and self.check(raw):
            return raw
        self.reject(raw)


@dataclass(frozen=True)
class ExistingPath(Converter):
    """A path that must exist, as a directory or as a regular file.

    The empty string means "not set" and is always accepted. The value is kept
    as given (relative paths are relative to the directory fulmen started in;
    they are used before --chdir applies).
    """

    directory: bool
    type_name: ClassVar[str] = "path"

    @property
    def expected(self) -> str:
        return "an existing directory" if self.directory else "an existing file"

    def __call__(self, raw: object) -> str:
        if isinstance(raw, os.PathLike):
            raw = os.fspath(raw)
        if not isinstance(raw, str):
            self.reject(raw)
        if raw == "":
            return raw
        if self.directory and not os.path.isdir(raw):
            raise InvalidValue(f"no such directory {_shown(raw)}")
        if not self.directory and not os.path.isfile(raw):
            raise InvalidValue(f"no such file {_shown(raw)}")
        return raw


@dataclass(frozen=True)
class ErrorLogPath(Converter):
    """``-`` (stderr) or a file path whose directory exists (error_logfile)."""

    type_name: ClassVar[str] = "path"

    @property
    def expected(self) -> str:
        return "'-' (stderr) or a file path in an existing directory"

    def __call__(self, raw: object) -> str:
        if isinstance(raw, os.PathLike):
            raw = os.fspath(raw)
        if not isinstance(raw, str) or not raw.strip() or "\0" in raw:
            self.reject(raw)
        if raw == "-":
            return raw
        if os.path.isdir(raw):
            raise InvalidValue(f"{_shown(raw)} is a directory")
        directory = os.path.dirname(os.path.abspath(raw))
        if not os.path.isdir(directory):
            raise InvalidValue(f"no such directory {_shown(directory)}")
        return os.path.abspath(raw)


@dataclass(frozen=True)
class FileList(Converter):
    """A list of existing files (one str is a list of one; commas in the environment)."""

    type_name: ClassVar[str] = "list of path"

    @property
    def expected(self) -> str:
        return "a list of existing files"

    def __call__(self, raw: object) -> list[str]:
        items = [raw] if isinstance(raw, (str, os.PathLike)) else raw
        if not isinstance(items, (list, tuple)):
            self.reject(raw)
        result = []
        for item in items:
            if isinstance(item, os.PathLike):
                item = os.fspath(item)
            if not isinstance(item, str):
                self.reject(raw)
            if not os.path.isfile(item):
                raise InvalidValue(f"no such file {_shown(item)}")
            result.append(os.path.abspath(item))
        return result

    def from_env(self, text: str) -> list[str]:
        return self([part for part in text.split(",") if part.strip()])


@dataclass(frozen=True)
class Hook(Converter):
    """A server hook: None, or a callable that accepts *arity* positional arguments."""

    arity: int
    signature: str
    type_name: ClassVar[str] = "callable"

    @property
    def expected(self) -> str:
        return f"a callable taking {self.arity} argument{'s' if self.arity != 1 else ''} {self.signature}"

    def __call__(self, raw: object) -> Callable[..., Any] | None:
        if raw is None:
            return None
        if not callable(raw):
            self.reject(raw)
        try:
            inspect.signature(raw).bind(*range(self.arity))
        except TypeError:
            self.reject(raw)
        except ValueError:  # a builtin without a signature: trust it
            pass
        return raw

    def to_source(self, value: Any) -> str:
        if value is None:
            return "None"
        return f"None  # set to {getattr(value, '__qualname__', type(value).__name__)}, a callable"


# ---- process settings (pid file, privileges, environment) -----------------


@dataclass(frozen=True)
class NewFile(Converter):
    """The path of a file fulmen creates; its directory must exist.

    The empty string means "not set". A relative path is made absolute
    against the directory fulmen started in (before --chdir applies).
    """

    type_name: ClassVar[str] = "path"

    @property
    def expected(self) -> str:
        return "a file path in an existing directory"

    def __call__(self, raw: object) -> str:
        if isinstance(raw, os.PathLike):
            raw = os.fspath(raw)
        if raw is None:
            return ""
        if not isinstance(raw, str) or "\0" in raw:
            self.reject(raw)
        if raw == "":
            return raw
        path = os.path.abspath(raw)
        if not os.path.isdir(os.path.dirname(path)):
            raise InvalidValue(f"no such directory {_shown(os.path.dirname(path))} for {_shown(raw)}")
        if os.path.isdir(path):
            raise InvalidValue(f"{_shown(raw)} is a directory")
        return path


_OCTAL_RE = re.compile(r"0[0-7]+")


@dataclass(frozen=True)
class FileMode(Converter):
    """A umask, 0 to 0o777; text is read as gunicorn reads it ('022' is octal)."""

    type_name: ClassVar[str] = "int (octal)"

    @property
    def expected(self) -> str:
        return "a umask from 0 to 0o777 (e.g. 0o022, '022' or '0o22')"

    def __call__(self, raw: object) -> int:
        value: int | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str):
            text = raw.strip()
            try:
                value = int(text, 8) if _OCTAL_RE.fullmatch(text) else int(text, 0)
            except ValueError:
                value = None
        if value is None or not 0 <= value <= 0o777:
            self.reject(raw)
        return value

    def to_source(self, value: Any) -> str:
        return oct(value)


@dataclass(frozen=True)
class Account(Converter):
    """A user (or group) name that exists, or a numeric id; None means "unchanged"."""

    group: bool
    type_name: ClassVar[str] = "str or int"

    @property
    def expected(self) -> str:
        return "a group name or a numeric gid" if self.group else "a user name or a numeric uid"

    def __call__(self, raw: object) -> str | int | None:
        if raw is None:
            return None
        if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
            return raw
        if not isinstance(raw, str) or not raw.strip():
            self.reject(raw)
        text = raw.strip()
        if text.isascii() and text.isdigit():
            return int(text)
        try:
            (grp.getgrnam if self.group else pwd.getpwnam)(text)
        except KeyError:
            raise InvalidValue(f"no such {'group' if self.group else 'user'} {_shown(text)}") from None
        return text


def _split_list(raw: object, what: str, check: Callable[[str], bool]) -> list[str] | None:
    """One str or a list/tuple of str, each passing *check*; None when the shape is wrong."""
    items: Sequence[object]
    if isinstance(raw, str):
        items = [raw]
    elif isinstance(raw, (list, tuple)):
        items = raw
    else:
        return None
    result = []
    for item in items:
        if not isinstance(item, str) or not check(item):
            raise InvalidValue(f"expected {what}, got {_shown(item)}")
        result.append(item)
    return result


def _is_env_assignment(item: str) -> bool:
    name, sep, _ = item.partition("=")
    return bool(sep) and bool(name.strip()) and "\0" not in item


@dataclass(frozen=True)
class EnvList(Converter):
    """KEY=VALUE strings, one str or a list of them."""

    type_name: ClassVar[str] = "list of str"

    @property
    def expected(self) -> str:
        return "a list of KEY=VALUE strings"

    def __call__(self, raw: object) -> list[str]:
        result = _split_list(raw, "KEY=VALUE", _is_env_assignment)
        if result is None:
            self.reject(raw)
        return result


@dataclass(frozen=True)
class DirectoryList(Converter):
    """Directories, as a list or comma-separated; checked once --chdir applies."""

    type_name: ClassVar[str] = "list of str"

    @property
    def expected(self) -> str:
        return "directories, comma-separated or as a list"

    def __call__(self, raw: object) -> list[str]:
        result = _split_list(raw, "a directory", lambda item: "\0" not in item)
        if result is None:
            self.reject(raw)
        return [part.strip() for item in result for part in item.split(",") if part.strip()]


def _is_proc_name(value: str) -> bool:
    return value.isprintable() and len(value) <= 200


def _is_target_text(value: str) -> bool:
    return value == value.strip() and value.isprintable()


# ---- addresses -----------------------------------------------------------

#: The forms a bind address may take, as error messages and the docs show them.
ADDRESS_FORMS: Final = "HOST:PORT, [IPV6]:PORT, :PORT or unix:PATH"

# sizeof(sockaddr_un.sun_path) is 108 on Linux, including the terminating NUL.
_UNIX_PATH_MAX: Final = 107
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")


@dataclass(frozen=True)
class Address:
    """One parsed bind address.

    For TCP, ``host`` is an IPv4 literal, an IPv6 literal (without brackets) or
    a host name, resolved when the socket is opened; ``port`` may be 0 (the
    kernel picks one). For unix sockets, ``path`` is absolute.
    """

    text: str
    host: str = ""
    port: int = 0
    path: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None


def parse_address(text: str) -> Address:
    """Parse one bind address; raises ``InvalidValue`` naming the problem.

    ``:PORT`` (empty host) means every IPv4 interface, 0.0.0.0; write
    ``[::]:PORT`` for every IPv6 interface. A relative unix socket path is made
    absolute against the current directory, i.e. before --chdir applies.
    gunicorn's spellings ``unix://PATH`` and ``tcp://HOST:PORT`` are read too.
    """
    text = text.strip()
    if text.startswith("tcp://"):
        text = text[len("tcp://") :]
    if text.startswith("unix:"):
        path = text[len("unix://") :] if text.startswith("unix://") else text[len("unix:") :]
        if not path:
            raise InvalidValue(f"'unix:' needs a socket path, got {_shown(text)}")
        path = os.path.abspath(path)
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            raise InvalidValue(
                f"unix socket path is longer than {_UNIX_PATH_MAX} bytes: {_shown(path)}"
            )
        return Address(text=f"unix:{path}", path=path)

    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise InvalidValue(f"expected {ADDRESS_FORMS}, got {_shown(text)}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidValue(f"invalid IPv6 address {_shown(host)} in {_shown(text)}") from None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        host = host or "0.0.0.0"
        if not _HOSTNAME_RE.fullmatch(host):
            raise InvalidValue(f"invalid host {_shown(host)} in {_shown(text)}")
    elif text.count(":") > 1:
        raise InvalidValue(f"IPv6 addresses need brackets, e.g. [::1]:8000, got {_shown(text)}")
    else:
        raise InvalidValue(f"missing port: expected {ADDRESS_FORMS}, got {_shown(text)}")

    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidValue(f"port must be a number from 0 to 65535, got {_shown(text)}")
    return Address(text=text, host=host, port=int(port_text))


@dataclass(frozen=True)
class AddressList(Converter):
    """A non-empty list of distinct bind addresses.

    Accepts one address (str) or a list/tuple of them. In the environment the
    addresses are separated by commas.
    """

    type_name: ClassVar[str] = "list of str"

    @property
    def expected(self) -> str:
        return f"a list of addresses ({ADDRESS_FORMS})"

    def __call__(self, raw: object) -> list[str]:
        items: Sequence[object]
        if isinstance(raw, str):
            items = [raw]
        elif isinstance(raw, (list, tuple)):
            items = raw
        else:
            self.reject(raw)
        if not items:
            raise InvalidValue("needs at least one address")
        seen: dict[str, str] = {}
        result: list[str] = []
        for item in items:
            if not isinstance(item, str):
                self.reject(raw)
            address = parse_address(item)
            # Normalise a little so "[::1]:80" and "[0::1]:80" compare equal.
            key = address.path or f"{address.host}|{address.port}"
            if address.host and ":" in address.host:
                key = f"{ipaddress.IPv6Address(address.host)}|{address.port}"
            if key in seen and (address.is_unix or address.port != 0):
                raise InvalidValue(f"address {_shown(item)} is listed twice")
            seen[key] = item
            result.append(address.text)
        return result

    def from_env(self, text: str) -> list[str]:
        return self([part for part in text.split(",") if part.strip()])


class ProxyProtocolMode(Converter):
    """gunicorn's proxy_protocol values: off, v1, v2 or auto; a bool means off or auto."""

    type_name: ClassVar[str] = "str"
    MODES: ClassVar[tuple[str, ...]] = ("off", "auto", "v1", "v2")

    @property
    def expected(self) -> str:
        return "one of off, auto, v1, v2 (or a boolean: false is off, true is auto)"

    def __call__(self, raw: object) -> str:
        if isinstance(raw, bool):
            return "auto" if raw else "off"
        if isinstance(raw, str):
            text = raw.strip().lower()
            if text in self.MODES:
                return text
            if text in _TRUE:
                return "auto"
            if text in _FALSE:
                return "off"
        self.reject(raw)


class IpAllowList(Converter):
    """Who may speak for the client: IP addresses, CIDR networks and "*".

    Accepts gunicorn's forms: a comma-separated str ("127.0.0.1,::1,10.0.0.0/8")
    or a list of str; an empty str trusts no TCP peer. The value is kept as
    one comma-separated str, which the core parses again.
    """

    type_name: ClassVar[str] = "str"

    @property
    def expected(self) -> str:
        return "a comma-separated list of IP addresses, networks (ADDRESS/BITS) or '*'"

    def __call__(self, raw: object) -> str:
        if isinstance(raw, str):
            items = raw.split(",")
        elif isinstance(raw, (list, tuple)) and all(isinstance(item, str) for item in raw):
            items = list(raw)
        else:
            self.reject(raw)
        result: list[str] = []
        for item in (part.strip() for part in items):
            if not item:
                continue
            if item != "*":
                try:
                    # strict: host bits must be zero, as the core checks too
                    ipaddress.ip_network(item, strict=True)
                except ValueError:
                    raise InvalidValue(
                        f"{_shown(item)} is not an IP address, a network (ADDRESS/BITS with zero host bits) or '*'"
                    ) from None
            result.append(item)
        return ",".join(result)


def _is_syslog_address(value: str) -> bool:
    if value.startswith("unix:"):
        path = value[len("unix://"):] if value.startswith("unix://") else value[len("unix:"):]
        return path.startswith("/") and "\0" not in path
    host, sep, port = value.removeprefix("udp://").rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def _is_metrics_bind(value: str) -> bool:
    if value == "":
        return True
    try:
        address = parse_address(value)
    except InvalidValue:
        return False
    return not address.is_unix


# ---- access log ----------------------------------------------------------

#: gunicorn's default access log format.
DEFAULT_ACCESS_LOG_FORMAT: Final = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
_LOG_FORMAT_PIECE: Final = re.compile(r"%(?:%|\([^)]*\)s)")


def _is_access_log_format(value: str) -> bool:
    # What the core's AccessLogFormat compiles: every "%" starts %(name)s or is %%.
    return value.count("%") == sum(piece.count("%") for piece in _LOG_FORMAT_PIECE.findall(value))


def _is_log_path(value: str) -> bool:
    return value == "" or value == "-" or ("\0" not in value and not value.endswith("/"))


@dataclass(frozen=True)
class LogPath(Converter):
    """A log file: a path, "-" for the standard stream, or "" / None for none (gunicorn's None)."""

    @property
    def expected(self) -> str:
        return "a file path, '-' (stdout) or '' (none)"

    def __call__(self, raw: object) -> str:
        if raw is None:
            return ""
        if isinstance(raw, str) and _is_log_path(raw):
            return raw
        self.reject(raw)


def _is_request_path(value: str) -> bool:
    return value.startswith("/") and value.isprintable() and " " not in value and "?" not in value


@dataclass(frozen=True)
class PathList(Converter):
    """A list of request paths (each starting with "/"); comma-separated in the environment."""

    type_name: ClassVar[str] = "list of str"

    @property
    def expected(self) -> str:
        return "a list of request paths starting with '/' (no query)"

    def __call__(self, raw: object) -> list[str]:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and _is_request_path(i) for i in items):
            self.reject(raw)
        return list(items)

    def from_env(self, text: str) -> list[str]:
        return self([part.strip() for part in text.split(",") if part.strip()])


# ---- text checks ---------------------------------------------------------


def _is_root_path(value: str) -> bool:
    # SCRIPT_NAME is "" or "/x[/y...]" without a trailing slash (PEP 3333).
    return value == "" or (
        value.startswith("/") and not value.endswith("/") and value.isprintable() and " " not in value
    )


def _is_header_value(value: str) -> bool:
    # Printable ASCII: anything else would need encoding rules (RFC 9110 5.5),
    # and CR/LF would let the value inject headers.
    return all(" " <= char <= "~" for char in value) and value == value.strip()


# ---- static files ----------------------------------------------------------

# What a mount prefix may not contain: the core matches it against the
# request path as sent, so it is a plain path ("%" would be ambiguous).
_PREFIX_FORBIDDEN: Final = frozenset("%?#\\")


def _static_prefix(prefix: str, shown: str) -> str:
    if not prefix.startswith("/"):
        raise InvalidValue(f"the URL prefix must start with '/', got {_shown(shown)}")
    if "//" in prefix or any(c in _PREFIX_FORBIDDEN or not c.isprintable() or c.isspace() for c in prefix):
        raise InvalidValue(
            f"the URL prefix may not contain '//', '%', '?', '#', '\\', spaces or controls: {_shown(shown)}"
        )
    return prefix if prefix == "/" else prefix.rstrip("/") or "/"


@dataclass(frozen=True)
class StaticMounts(Converter):
    """``URL_PREFIX=DIR`` mounts: a str, a list of them, or a dict {prefix: dir}.

    Directories must exist; they are made absolute against the directory
    fulmen started in (before --chdir). Prefixes are distinct after one
    trailing "/" is dropped. The typed value is a list of ``PREFIX=DIR``.
    """

    type_name: ClassVar[str] = "list of PREFIX=DIR"

    @property
    def expected(self) -> str:
        return "URL_PREFIX=DIR (e.g. /static=./public), a list of them, or a dict {prefix: dir}"

    def __call__(self, raw: object) -> list[str]:
        pairs: list[tuple[str, object, str]] = []
        if isinstance(raw, Mapping):
            pairs = [(k, v, f"{k}={v}") for k, v in raw.items() if isinstance(k, str)]
            if len(pairs) != len(raw):
                self.reject(raw)
        else:
            items = [raw] if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple)):
                self.reject(raw)
            for item in items:
                if not isinstance(item, str) or "=" not in item:
                    self.reject(item)
                prefix, _, directory = item.partition("=")
                pairs.append((prefix.strip(), directory.strip(), item))
        result: list[str] = []
        seen: set[str] = set()
        for prefix_raw, directory, shown in pairs:
            prefix = _static_prefix(prefix_raw, shown)
            if isinstance(directory, os.PathLike):
                directory = os.fspath(directory)
            if not isinstance(directory, str) or not directory:
                raise InvalidValue(f"missing directory in {_shown(shown)}")
            if not os.path.isdir(directory):
                raise InvalidValue(f"no such directory {_shown(directory)} in {_shown(shown)}")
            if prefix in seen:
                raise InvalidValue(f"the URL prefix {prefix!r} is mounted twice")
            seen.add(prefix)
            result.append(f"{prefix}={os.path.abspath(directory)}")
        return result

    def from_env(self, text: str) -> list[str]:
        return self([part for part in text.split(",") if part.strip()])


@dataclass(frozen=True)
class MimeMap(Converter):
    """``EXT=TYPE`` entries: a str, a list of them, or a dict {ext: type}."""

    type_name: ClassVar[str] = "list of EXT=TYPE"

    @property
    def expected(self) -> str:
        return "EXT=TYPE (e.g. webmanifest=application/manifest+json), a list of them, or a dict"

    def __call__(self, raw: object) -> list[str]:
        if isinstance(raw, Mapping):
            items = [f"{k}={v}" for k, v in raw.items()]
        elif isinstance(raw, str):
            items = [raw]
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            self.reject(raw)
        result = []
        for item in items:
            if not isinstance(item, str):
                self.reject(item)
            ext, _, mime = item.partition("=")
            ext, mime = ext.strip().lstrip("."), mime.strip()
            if not ext or len(ext) > 16 or "/" in ext or "." in ext or "/" not in mime or not _is_header_value(mime):
                self.reject(item)
            result.append(f"{ext}={mime}")
        return result

    def from_env(self, text: str) -> list[str]:
        return self([part for part in text.split(",") if part.strip()])


def _is_index_name(value: str) -> bool:
    return value == "" or (value.isprintable() and "/" not in value and value not in (".", ".."))


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One row of the settings table.

    ``name`` is the Python name (config file, ``fulmen.run`` keyword, key in
    the options dict); the long flag and the environment variable are derived
    from it. ``help`` is one line for ``--help``; ``details`` is extra prose
    for docs/settings.md.
    """

    name: str
    section: str
    convert: Converter
    default: Any
    help: str
    details: str = ""
    short: str | None = None
    metavar: str | None = None
    sources: frozenset[str] = ALL_SOURCES
    long: str | None = None  # the long flag, when it is not derived from the name
    aliases: tuple[str, ...] = ()  # more long flags for the same setting
    #: For an option whose value may be left out on the command line: what the
    #: bare flag means (``--proxy-protocol`` is ``--proxy-protocol auto``).
    bare: str | None = None

    @property
    def flag(self) -> str:
        return self.long or "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> list[str]:
        """Every command-line spelling: the short flag, the long one, the aliases."""
        return [f for f in (self.short, self.flag, *self.aliases) if f]

    @property
    def env(self) -> str | None:
        return ENV_PREFIX + self.name.upper() if ENV in self.sources else None

    @property
    def is_flag(self) -> bool:
        """True when the option takes no value on the command line."""
        return isinstance(self.convert, Boolean)


_LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")

SETTINGS: Final[tuple[Setting, ...]] = (
    # ---- listening sockets ----
    Setting(
        "bind", "Listening sockets", AddressList(), ["127.0.0.1:8000"],
        "Address to listen on; repeat the option to listen on several.",
        details=(
            "Forms: `HOST:PORT` (IPv4 literal or host name; a name is resolved and the "
            "first address is used), `[IPV6]:PORT`, `:PORT` (every IPv4 interface, "
            "i.e. `0.0.0.0:PORT`; use `[::]:PORT` for IPv6) and `unix:PATH`. "
            "Port 0 lets the kernel choose; the `Listening at:` log line shows the "
            "port chosen. IPv6 sockets are IPv6-only: bind `0.0.0.0:PORT` and "
            "`[::]:PORT` for both families. A stale unix socket file is removed "
            "before binding; a relative unix path is relative to the directory "
            "fulmen was started in. In the environment, separate addresses with commas."
        ),
        short="-b", metavar="ADDRESS",
    ),
    Setting(
        "backlog", "Listening sockets", Integer(1), 4096,
        "Length of the queue of connections not yet accepted (listen(2) backlog).",
        details="Linux silently caps it at `net.core.somaxconn`.",
        metavar="INT",
    ),
    Setting(
        "reuse_port", "Listening sockets", Boolean(), False,
        "Set SO_REUSEPORT on TCP sockets, so that other processes may bind the same address.",
        details="Not available on every platform; fulmen refuses to start where it is missing.",
    ),
    # ---- processes ----
    Setting(
        "workers", "Processes", Integer(1), 1,
        "Number of worker processes.",
        details=(
            "Each worker loads the application after it is forked (see `preload_app`). "
            "`wsgi.multiprocess` is true when this is greater than 1. SIGTTIN and SIGTTOU "
            "add and remove one while running."
        ),
        short="-w", metavar="INT",
    ),
    Setting(
        "max_connections", "Processes", Integer(1), 16384,
        "Maximum number of open client connections per worker.",
        details="Beyond it a worker stops accepting; new connections wait in the backlog.",
        metavar="INT",
    ),
    Setting(
        "graceful_timeout", "Processes", Seconds(allow_zero=True), 30.0,
        "Seconds a stopping worker gets to finish requests in flight (SIGTERM, reload, max_requests).",
        details=(
            "A stopping worker stops accepting at once, answers the requests in flight with "
            "`Connection: close`, and closes idle keep-alive connections. Workers still "
            "running after that are killed (SIGKILL, one second later). SIGINT and SIGQUIT "
            "stop at once."
        ),
        metavar="SECONDS",
    ),
    # ---- threads ----
    Setting(
        "threads", "Threads", Integer(1), 1,
        "Threads per worker that run the application; 1 runs it on the worker's event loop.",
        details=(
            "With more than 1, each worker calls the application on a pool of this many "
            "Python threads, while its event loop keeps accepting, reading, parsing, "
            "enforcing deadlines and writing for every connection: an application that "
            "waits (a database, an upstream API) stalls only its own thread. "
            "`wsgi.multithread` is true then. Pipelined requests of one connection are "
            "answered in order, one at a time. 1 keeps the inline path, the fastest for "
            "applications that never wait."
        ),
        metavar="INT",
    ),
    Setting(
        "max_pending", "Threads", Integer(0), 0,
        "Parsed requests that may wait for a thread (per worker); 0 means 8 x --threads.",
        details=(
            "Past it the worker starts no new request (and reads none) until a thread "
            "frees up: the requests wait in their connections and the kernel, never "
            "answered 503. Only used with `--threads` above 1."
        ),
        metavar="INT",
    ),
    Setting(
        "request_timeout", "Threads", Seconds(allow_zero=True), 0.0,
        "Seconds an application call on a thread may take before the client gets 504; 0 disables.",
        details=(
            "Measured from the moment a thread calls the application. The client gets "
            "`504 Gateway Timeout` (or, when the response head already left, a cut "
            "response) and its connection is closed; the thread is left to finish, its "
            "result is dropped and `close()` is still called on it. The request line and "
            "the thread's Python stack at the timeout are logged. Checked once a second. "
            "Only used with `--threads` above 1; `--timeout` stays the last resort when "
            "the event loop itself stops."
        ),
        metavar="SECONDS",
    ),
    # ---- lifecycle (issue 8): one block, from here to the end of the hooks ----
    Setting(
        "preload_app", "Lifecycle", Boolean(), False,
        "Load the application in the master, before forking the workers.",
        details=(
            "Off (the default, as gunicorn): each worker imports the application after it "
            "is forked, so a reload (HUP) serves new code. An application that fails to "
            "import in the first worker stops fulmen with its traceback and exit status 4. "
            "On: the master imports it once and the workers share its memory (copy on "
            "write); a reload then restarts the workers with the code already loaded."
        ),
        long="--preload",
    ),
    Setting(
        "max_requests", "Lifecycle", Integer(0), 0,
        "Replace a worker after it served this many requests; 0: never.",
        details=(
            "The master starts the replacement first and retires the old worker once the "
            "new one is ready: no request fails. Guards against slow memory leaks."
        ),
        metavar="INT",
    ),
    Setting(
        "max_requests_jitter", "Lifecycle", Integer(0), 0,
        "Add a random 0..N to each worker's max_requests, so workers are not replaced together.",
        metavar="INT",
    ),
    Setting(
        "timeout", "Lifecycle", Seconds(allow_zero=True, minimum=2), 30.0,
        "Kill and replace a worker whose event loop has not come back for this long; 0: never.",
        details=(
            "Each turn of a worker's loop stamps a heartbeat in memory it shares with the "
            "master; the loop wakes at least once a second, so an idle worker is never "
            "stale. A worker stuck in the application for longer gets SIGABRT, writes the "
            "Python stack of each of its threads to the log (where it was stuck), and is "
            "replaced. The first import of the application counts against it too. At "
            "least 2 seconds when set."
        ),
        short="-t", metavar="SECONDS",
    ),
    Setting(
        "error_logfile", "Lifecycle", ErrorLogPath(), "-",
        "Write the log to this file instead of stderr ('-').",
        details=(
            "The file is opened in append mode by the master and shared by the workers; "
            "SIGUSR1 reopens it in every process (for logrotate). The application's own "
            "writes to stderr go there too."
        ),
        metavar="PATH", aliases=("--log-file",),
    ),
    Setting(
        "reload", "Lifecycle", Boolean(), False,
        "Development: reload (as on HUP) when a source file of the application changes.",
        details=(
            "Each worker watches the files of the modules it imported, and those of "
            "`reload_extra_files`, with inotify (libuv `uv_fs_event`); a change makes the "
            "master reload as on SIGHUP. Not for production."
        ),
    ),
    Setting(
        "reload_extra_files", "Lifecycle", FileList(), [],
        "More files to watch with --reload; repeat the option for several.",
        metavar="PATH", long="--reload-extra-file",
    ),
    Setting(
        "on_starting", "Server hooks", Hook(1, "(server)"), None,
        "In the master, before the listening sockets are opened.",
        details="As gunicorn's hook of the same name: `def on_starting(server):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "when_ready", "Server hooks", Hook(1, "(server)"), None,
        "In the master, once the sockets are open, before the workers start.",
        details="As gunicorn's hook of the same name: `def when_ready(server):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "pre_fork", "Server hooks", Hook(2, "(server, worker)"), None,
        "In the master, before each worker is forked (worker.pid is None).",
        details="As gunicorn's hook of the same name: `def pre_fork(server, worker):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "post_fork", "Server hooks", Hook(2, "(server, worker)"), None,
        "In the new worker, right after the fork.",
        details="As gunicorn's hook of the same name: `def post_fork(server, worker):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "post_worker_init", "Server hooks", Hook(1, "(worker)"), None,
        "In the worker, once the application is loaded.",
        details="As gunicorn's hook of the same name: `def post_worker_init(worker):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "worker_int", "Server hooks", Hook(1, "(worker)"), None,
        "In the worker, on SIGINT or SIGQUIT, before it stops at once.",
        details="As gunicorn's hook of the same name: `def worker_int(worker):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "worker_abort", "Server hooks", Hook(1, "(worker)"), None,
        "In the worker, on SIGABRT (a --timeout), after its stacks are logged.",
        details="As gunicorn's hook of the same name: `def worker_abort(worker):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "pre_exec", "Server hooks", Hook(1, "(server)"), None,
        "In the new master's process, before it executes the new code (USR2).",
        details="As gunicorn's hook of the same name: `def pre_exec(server):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "pre_request", "Server hooks", Hook(2, "(worker, req)"), None,
        "In the worker, before each request (req: method, path, query, uri, version, headers).",
        details="As gunicorn's hook of the same name: `def pre_request(worker, req):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "post_request", "Server hooks", Hook(4, "(worker, req, environ, resp)"), None,
        "In the worker, after each response is produced (resp: status, headers).",
        details="As gunicorn's hook of the same name: `def post_request(worker, req, environ, resp):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "child_exit", "Server hooks", Hook(2, "(server, worker)"), None,
        "In the master, after a worker exited.",
        details="As gunicorn's hook of the same name: `def child_exit(server, worker):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "worker_exit", "Server hooks", Hook(2, "(server, worker)"), None,
        "In the worker, as it exits.",
        details="As gunicorn's hook of the same name: `def worker_exit(server, worker):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "nworkers_changed", "Server hooks", Hook(3, "(server, new_value, old_value)"), None,
        "In the master, when the number of workers changes (TTIN, TTOU, reload).",
        details="As gunicorn's hook of the same name: `def nworkers_changed(server, new_value, old_value):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "on_exit", "Server hooks", Hook(1, "(server)"), None,
        "In the master, as it exits.",
        details="As gunicorn's hook of the same name: `def on_exit(server):` in the config file.",
        sources=frozenset({FILE}),
    ),
    Setting(
        "on_reload", "Server hooks", Hook(1, "(server)"), None,
        "In the master, on SIGHUP, once the settings are re-read.",
        details="As gunicorn's hook of the same name: `def on_reload(server):` in the config file.",
        sources=frozenset({FILE}),
    ),
    # ---- end of the lifecycle block ----
    # ---- timeouts ----
    Setting(
        "keepalive_timeout", "Timeouts", Seconds(allow_zero=True), 5.0,
        "Seconds an idle keep-alive connection stays open; 0 disables keep-alive.",
        metavar="SECONDS",
    ),
    Setting(
        "header_timeout", "Timeouts", Seconds(allow_zero=False), 10.0,
        "Seconds a client has to send a complete request head.",
        metavar="SECONDS",
    ),
    Setting(
        "body_timeout", "Timeouts", Seconds(allow_zero=False), 30.0,
        "Seconds a client has to send the request body.",
        metavar="SECONDS",
    ),
    Setting(
        "send_timeout", "Timeouts", Seconds(allow_zero=False), 30.0,
        "Seconds a client has to accept the response before the connection is closed.",
        metavar="SECONDS",
    ),
    # ---- HTTP ----
    Setting(
        "max_request_line", "HTTP", Integer(1), 8190,
        "Maximum length in bytes of the request line; longer gets 414 URI Too Long.",
        metavar="BYTES",
    ),
    Setting(
        "max_header_size", "HTTP", Integer(1), 65536,
        "Maximum size in bytes of the request head; larger gets 431.",
        details="Counts the request line, every header line and the final empty line.",
        metavar="BYTES",
    ),
    Setting(
        "max_headers", "HTTP", Integer(1, 128), 100,
        "Maximum number of request header fields (at most 128); more gets 431.",
        metavar="INT",
    ),
    Setting(
        "max_body_buffer", "HTTP", Integer(0), 1048576,
        "Bytes of request body read before the application is called.",
        details=(
            "A body up to this size is received whole before the application runs, so a "
            "slow client never holds a worker's Python code; the rest of a larger body is "
            "read as the application reads `wsgi.input`."
        ),
        metavar="BYTES",
    ),
    Setting(
        "max_body_size", "HTTP", Integer(0), 0,
        "Largest request body in bytes; a larger one gets 413 Content Too Large. 0: no limit.",
        details=(
            "A declared Content-Length over the limit is refused before any of the body is "
            "read; a chunked body is refused as soon as its decoded size passes the limit "
            "(413 while the server buffers it, or an OSError from `wsgi.input` once the "
            "application reads it, answered with 413). The body is never held whole in "
            "memory, so the limit is about what the application accepts, not server memory."
        ),
        metavar="BYTES",
    ),
    Setting(
        "max_input_memory", "HTTP", Integer(65536), 67108864,
        "Bytes of request data one worker may buffer beyond each connection's first 16 KiB.",
        details=(
            "Heads and bodies being received grow their connection's buffer (up to "
            "max_header_size + max_body_buffer) only within this budget, shared by all of a "
            "worker's connections. When it is spent, connections that need more stop being "
            "read (back-pressure: nothing is reset) until buffers are released; a body that "
            "cannot be buffered further goes to the application, which reads the rest itself."
        ),
        metavar="BYTES",
    ),
    Setting(
        "server_header", "HTTP", Text("printable ASCII text without leading or trailing spaces",
                                      _is_header_value), "fulmen",
        "Value of the Server response header; empty to send none.",
        metavar="TEXT",
    ),
    # ---- metrics (issue 9) ----
    Setting(
        "metrics_bind", "Logging", Text("HOST:PORT (TCP) or '' (none)", _is_metrics_bind), "",
        "Serve GET /metrics (Prometheus text format) from the master on HOST:PORT; off by default.",
        details=(
            "Every worker counts into a slot of memory it shares with the master (no locks on the "
            "request path); the master's page sums them: `fulmen_requests_total{status,method}`, "
            "`fulmen_request_duration_seconds` (histogram, from a request's head to the end of its "
            "response), `fulmen_requests_in_flight`, `fulmen_connections_open`, "
            "`fulmen_connections_accepted_total`, `fulmen_bad_requests_total{status}`, "
            "`fulmen_bytes_sent_total`, `fulmen_worker_restarts_total{reason}` and `fulmen_workers`. "
            "Counters are never reset: a worker that replaces another carries on from its totals, "
            "so N requests served add exactly N. Bind it to an address only the scraper reaches."
        ),
        metavar="ADDRESS",
    ),
    # ---- proxies (issue 9) ----
    Setting(
        "forwarded_allow_ips", "Proxies", IpAllowList(), "127.0.0.1,::1",
        "Peers whose X-Forwarded-* and Forwarded headers are believed (addresses, networks, '*').",
        details=(
            "From such a peer (and from any peer over a unix socket, as gunicorn), "
            "`X-Forwarded-Proto: https`, `X-Forwarded-Ssl: on` or `X-Forwarded-Protocol: ssl` "
            "set `wsgi.url_scheme` to `https` (another value of one of them means `http`; two "
            "that disagree get 400, as gunicorn); `X-Forwarded-For` sets `REMOTE_ADDR` to its "
            "right-most address that is not itself in this list (the client the nearest "
            "untrusted hop was), `REMOTE_PORT` then being `0`; and an RFC 7239 `Forwarded` "
            "field, when present, is used instead of the `X-` ones (`for=` and `proto=` of the "
            "element chosen the same way). A value that is not an IP address (`unknown`, an "
            "obfuscated `_name`) is never believed. From any other peer these headers change "
            "nothing. gunicorn's default; an empty value trusts no TCP peer."
        ),
        metavar="LIST",
    ),
    Setting(
        "proxy_protocol", "Proxies", ProxyProtocolMode(), "off",
        "Connections from --proxy-allow-from begin with a PROXY header: auto (v1 or v2, "
        "detected; the bare flag), v1, v2 or off.",
        details=(
            "HAProxy's PROXY protocol (`send-proxy` / `send-proxy-v2`, nginx's "
            "`proxy_protocol on` in a stream block, AWS NLB): the header's source address and "
            "port become `REMOTE_ADDR` and `REMOTE_PORT` for every request of the connection. "
            "From an allowed peer (and over a unix socket) the header is required: a connection "
            "without one, or with a malformed one, is closed without an answer and the "
            "application is not called. From any other peer, a connection that begins with a "
            "PROXY header is closed the same way (the header is never believed); plain HTTP from "
            "it is served as usual, so health checks can bypass the proxy. Only the first bytes "
            "of a connection are examined. `v1` or `v2` accept only that version, as gunicorn."
        ),
        metavar="MODE",
        bare="auto",
    ),
    Setting(
        "proxy_allow_from", "Proxies", IpAllowList(), "127.0.0.1,::1",
        "Peers that may (and then must) send a PROXY header (addresses, networks, '*').",
        details="gunicorn's flag; its config name `proxy_allow_ips` is accepted too. Used only with `proxy_protocol`.",
        metavar="LIST",
    ),
    # ---- static files ----
    Setting(
        "static", "Static files", StaticMounts(), [],
        "Serve the files of DIR under URL_PREFIX from the core, e.g. /static=./public; repeatable.",
        details=(
            "A request whose path is URL_PREFIX or starts with URL_PREFIX/ is answered by the "
            "C++ core and never reaches the application: GET and HEAD (others get 405), "
            "`Last-Modified`, a strong `ETag`, 304 on `If-None-Match`/`If-Modified-Since`, "
            "single ranges (206/416) with `If-Range`, and precompressed `.br`/`.gz` siblings "
            "chosen by `Accept-Encoding`. A missing file is a 404 from the core. Paths that "
            "would leave DIR (`..`, `%2e%2e`, an encoded `/`, backslashes, NUL, invalid UTF-8, "
            "`//`) and symlinks leading out of it are refused. In a config file: "
            "`static = {\"/static\": \"public\"}`; in the environment, separate mounts with commas. "
            "The prefix is matched against the path as sent (before `root_path`)."
        ),
        metavar="URL_PREFIX=DIR",
    ),
    Setting(
        "static_mime", "Static files", MimeMap(), [],
        "Add or override the Content-Type of a file extension, e.g. md=text/markdown; repeatable.",
        details="Files with an unknown extension are `application/octet-stream`.",
        metavar="EXT=TYPE",
    ),
    Setting(
        "static_max_age", "Static files", Integer(-1), -1,
        "Cache-Control max-age in seconds for static files; -1 sends no Cache-Control.",
        metavar="SECONDS",
    ),
    Setting(
        "static_immutable", "Static files", Boolean(), False,
        "Mark hashed file names (app.3f2a9c1b.css) `public, max-age=31536000, immutable`.",
        details=(
            "A name is hashed when the part before its extension ends with a `.`- or "
            "`-`-delimited run of at least 8 hex digits, one of them a digit (Django's "
            "ManifestStaticFilesStorage, webpack's `[contenthash]`)."
        ),
    ),
    Setting(
        "static_follow_symlinks", "Static files", Boolean(), False,
        "Follow symlinks that lead out of a static directory (refused by default).",
        details="Symlinks that stay inside the directory are always followed (absolute ones are not).",
    ),
    Setting(
        "static_dotfiles", "Static files", Boolean(), False,
        "Serve files and directories whose name starts with '.' (refused with 404 by default).",
    ),
    Setting(
        "static_index", "Static files", Text("'' or a file name without '/'", _is_index_name), "",
        "File served for a directory, e.g. index.html; unset: directories are 404.",
        details="A directory's URL without its trailing `/` is redirected (301) to the URL with it.",
        metavar="NAME",
    ),
    # ---- application ----
    Setting(
        "chdir", "Application", ExistingPath(directory=True), "",
        "Change to this directory before loading the application.",
        details=(
            "The directory (the current one when unset) is put first on `sys.path`. "
            "Paths given on the command line -- a script TARGET, `--config`, a "
            "`unix:` bind -- are relative to the directory fulmen was started in."
        ),
        metavar="PATH",
    ),
    Setting(
        "root_path", "Application", Text("'' or a path starting with '/' and not ending with '/'",
                                         _is_root_path), "",
        "Path prefix the application is mounted at (WSGI SCRIPT_NAME), e.g. /app.",
        details=(
            "Use it when a proxy serves the application under a sub-path. It is the "
            "`SCRIPT_NAME` of every request; a request path that starts with it has it "
            "moved from `PATH_INFO` to `SCRIPT_NAME`. In script mode the matched "
            "`PATHS` prefix is appended to it."
        ),
        metavar="PATH",
    ),
    # ---- server mechanics (issue 8: what a gunicorn deployment relies on) ----
    Setting(
        "wsgi_app", "Server mechanics", Text("MODULE:CALLABLE, as TARGET", _is_target_text), "",
        "TARGET to serve when no TARGET argument is given (gunicorn's wsgi_app).",
        metavar="TARGET",
    ),
    Setting(
        "pidfile", "Server mechanics", NewFile(), "",
        "Write the master's pid to this file; it is removed when the master exits.",
        details=(
            "Written after the sockets are open (after detaching, with `--daemon`), "
            "mode 0644. A file naming a live process other than this one stops fulmen "
            "with exit status 1 (\"already running\"); one left by a dead process is "
            "replaced. Relative paths are relative to the directory fulmen was started in."
        ),
        short="-p", metavar="FILE",
    ),
    Setting(
        "daemon", "Server mechanics", Boolean(), False,
        "Detach from the terminal and run in the background.",
        details=(
            "The command returns (status 0) once the listening sockets are open and the pid "
            "file is written; a failure before that is reported as without `--daemon`. "
            "Standard input becomes /dev/null, and so do standard output and error when "
            "they are a terminal; redirected to a file or a pipe, they are kept. The "
            "daemon's umask is 022. Do not use it under systemd or in a container."
        ),
        short="-D",
    ),
    Setting(
        "user", "Server mechanics", Account(group=False), None,
        "Run the workers as this user (a name or a uid); the master keeps its own.",
        details=(
            "The master binds the sockets and writes the pid file with its own rights "
            "(usually root), then each worker switches to the user right after it is "
            "forked, before the application runs in it. A unix socket file is given to "
            "the user and the group. Switching needs root."
        ),
        short="-u", metavar="USER",
    ),
    Setting(
        "group", "Server mechanics", Account(group=True), None,
        "Run the workers as this group (a name or a gid).",
        details=(
            "Without `--initgroups` the workers keep no supplementary groups; unset, the "
            "group is the user's primary group when `--user` is set."
        ),
        short="-g", metavar="GROUP",
    ),
    Setting(
        "initgroups", "Server mechanics", Boolean(), False,
        "Give the workers every supplementary group of --user (initgroups(3)).",
    ),
    Setting(
        "umask", "Server mechanics", FileMode(), 0,
        "umask applied while a unix socket file is created; 0 lets any user connect.",
        details=(
            "As in gunicorn, the default 0 makes a unix socket `srwxrwxrwx`, so that a "
            "proxy running as another user can connect; `0o007` keeps it to the owner "
            "and group. Text is read as gunicorn reads it: `022` and `0o22` are octal."
        ),
        short="-m", metavar="MASK",
    ),
    Setting(
        "pythonpath", "Server mechanics", DirectoryList(), [],
        "Directories put first on sys.path before the application is imported.",
        details=(
            "Comma-separated, or repeat the option. Relative paths are relative to "
            "`--chdir`, as in gunicorn; each must be an existing directory."
        ),
        metavar="DIRS",
    ),
    Setting(
        "raw_env", "Server mechanics", EnvList(), [],
        "Set an environment variable (KEY=VALUE) for the application; repeat for several.",
        details=(
            "Set in the master before the application is imported, so workers and their "
            "subprocesses see it too. gunicorn's name and flags (`-e`, `--env`)."
        ),
        short="-e", metavar="KEY=VALUE", sources=frozenset({CLI, FILE}),
    ),
    Setting(
        "proc_name", "Server mechanics", Text("printable text up to 200 characters", _is_proc_name), "",
        "Name in the process titles, fulmen: master [NAME] and fulmen: worker [NAME].",
        details=(
            "Unset, NAME is TARGET. The title replaces the command line shown by `ps` "
            "(with the `setproctitle` module when it is installed, otherwise by rewriting "
            "the process's argument memory, cut to its length); `/proc/PID/comm`, which "
            "`top` shows, becomes `fulmen: master` or `fulmen: worker`."
        ),
        short="-n", metavar="NAME",
    ),
    # ---- logging ----
    Setting(
        "log_level", "Logging", Choice(_LOG_LEVELS), "info",
        "Lowest level of the log lines written to stderr.",
        metavar="LEVEL",
    ),
    # ---- access log (issue 9) ----
    Setting(
        "access_logfile", "Logging", LogPath(), "",
        "Write an access log line per request to PATH ('-': stdout); off by default, as gunicorn.",
        details=(
            "Each worker formats its lines in C++ into a buffer and writes them once per loop turn "
            "(or every 64 KiB), so a request costs no write of its own; the file is opened with "
            "O_APPEND by each worker, whole lines at a time, and reopened on SIGUSR1. A request "
            "is logged when its response ends, including one answered by the core (static files, "
            "413, a contradictory proxy header) and one cut short by the client. Requests the "
            "parser refuses are not access-logged: they are warnings in the error log. "
            "gunicorn's `accesslog`."
        ),
        metavar="PATH",
    ),
    Setting(
        "access_logformat", "Logging",
        Text("a format of %(atom)s pieces (a literal % is %%)", _is_access_log_format),
        DEFAULT_ACCESS_LOG_FORMAT,
        "The access log line: gunicorn's atoms (h l u t r m U q H s B b f a T D M L p {header}i {header}o {key}e).",
        details=(
            "gunicorn's language and default, written byte for byte as gunicorn writes it for the "
            "same request: `h` remote address, `l` `-`, `u` user of Basic auth, `t` time "
            "`[02/Dec/2026:04:00:00 +0000]` (local time), `r` request line, `m` method, `U` path "
            "(percent-decoded, SCRIPT_NAME included), `q` query, `H` protocol, `s` status, `B`/`b` "
            "body bytes sent, `f` referer, `a` user agent, `T`/`M`/`D`/`L` duration in "
            "seconds/milliseconds/microseconds/decimal seconds, `p` `<pid>`, `{name}i` / `{name}o` "
            "a request / response header, `{key}e` a WSGI environ key the server sets (REMOTE_ADDR, "
            "REQUEST_METHOD, PATH_INFO, QUERY_STRING, SERVER_PROTOCOL, RAW_URI, wsgi.url_scheme, "
            "HTTP_*; keys the application adds are not seen). An absent value is `-`; `\"` in a "
            "value is written `\\\"`. Beyond gunicorn, control characters in values are written "
            "`\\xHH`, so a request cannot forge log lines. gunicorn's `access_log_format`."
        ),
        metavar="FORMAT",
    ),
    Setting(
        "log_syslog", "Logging", Boolean(), False,
        "Also send every log line to syslog (--log-syslog-to), as gunicorn's --log-syslog.",
        details=(
            "Each line of the master and the workers goes, as one datagram, to the syslog "
            "daemon at `log_syslog_to` (facility user, severity from the level), framed "
            "`fulmen: [pid] [LEVEL] message`; stderr or the error log file still get it too. "
            "Access lines are not sent."
        ),
    ),
    Setting(
        "log_syslog_to", "Logging", Text("udp://HOST:PORT or unix:PATH", _is_syslog_address), "unix:///dev/log",
        "Where --log-syslog sends the lines: udp://HOST:PORT or unix:PATH (gunicorn's default on Linux).",
        metavar="ADDRESS",
    ),
    Setting(
        "capture_output", "Logging", Boolean(), False,
        "Send the application's stdout and stderr to --error-logfile too (as gunicorn).",
        details=(
            "With an error log file, descriptor 1 of every process is pointed at it as well, so "
            "`print()` and child processes' output land there, and follow it when SIGUSR1 "
            "reopens it. Without an error log file (`-`) it changes nothing."
        ),
    ),
    Setting(
        "access_log_exclude", "Logging", PathList(), [],
        "A request path (as sent, without the query) not to access-log, e.g. /healthz; repeatable.",
        details="An exact comparison per listed path: no pattern matching on the request path.",
        metavar="PATH",
    ),
    Setting(
        "log_format", "Logging", Choice(("text", "json")), "text",
        "text, or json: one JSON object a line in the access log (fields by name).",
        details=(
            "json access lines carry `time` (UTC, ISO 8601, milliseconds), `remote`, `method`, "
            "`path`, `query`, `protocol`, `status`, `bytes`, `duration` (seconds), `request_id` "
            "(the X-Request-ID header), `user`, `user_agent` and `referer`; absent values are "
            "`null`. access_logformat plays no part then."
        ),
        metavar="FORMAT",
    ),
    # ---- configuration and commands ----
    Setting(
        "config", "Configuration", ExistingPath(directory=False), "",
        "Python file whose top-level names are setting names (like gunicorn.conf.py).",
        details=(
            "The file is executed as Python; each top-level name that is a setting name "
            "sets it (`workers = 4`, `bind = ['127.0.0.1:8000', 'unix:/run/app.sock']`). "
            "Other names are ignored, so the file may import modules and compute values. "
            "Values may be typed Python values or strings, as on the command line. "
            "gunicorn's names are read too (`keepalive`, `limit_request_line`, "
            "`worker_class`...; docs/deploy.md lists them all), so a gunicorn.conf.py "
            "works as it is; as gunicorn, `./gunicorn.conf.py` is read when no config "
            "file is named and it exists."
        ),
        short="-c", metavar="FILE", sources=frozenset({CLI, ENV}),
    ),
    Setting(
        "check_config", "Configuration", Boolean(), False,
        "Load the settings and the application, print OK and exit.",
        sources=frozenset({CLI}),
    ),
    Setting(
        "print_config", "Configuration", Boolean(), False,
        "Print the effective settings as a config file, each with its source, and exit.",
        details="TARGET is not needed; combined with `--check-config`, the application is also loaded.",
        sources=frozenset({CLI}),
    ),
)

BY_NAME: Final[dict[str, Setting]] = {setting.name: setting for setting in SETTINGS}


# --------------------------------------------------------------------------
# Resolution: defaults < config file < environment < command line
# --------------------------------------------------------------------------


@dataclass
class Settings:
    """The effective settings.

    ``values`` maps every setting name to its typed value; ``origins`` says
    where each came from ("default", "--workers", "FULMEN_WORKERS",
    "conf.py", "conf.py: keepalive" for a gunicorn name); ``warnings`` are
    messages worth logging (likely typos); ``gunicorn`` says, one line each,
    what every gunicorn name given became (``--check-config`` prints them).
    """

    values: dict[str, Any]
    origins: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    gunicorn: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def options(self) -> dict[str, Any]:
        """A fresh dict of every setting, for ``fulmen._core.serve``."""
        return dict(self.values)

    def render(self) -> str:
        """The settings a config file may hold, as a valid config file."""
        lines = []
        if self.values["config"]:
            lines.append(f"# config file: {self.values['config']}")
        for setting in SETTINGS:
            if FILE not in setting.sources:
                continue
            value = setting.convert.to_source(self.values[setting.name])
            if "#" in value:  # a hook: no source to write, only what it is
                lines.append(f"{setting.name} = {value} ({self.origins[setting.name]})")
                continue
            lines.append(f"{setting.name} = {value}  # {self.origins[setting.name]}")
        return "\n".join(lines) + "\n"


def cli_label(name: str) -> str:
    """How an error names a value given on the command line under *name*.

    *name* is a setting name or a gunicorn setting name (its long flag).
    """
    from . import gunicorn

    setting = BY_NAME.get(name)
    if setting is not None:
        return setting.flag
    return gunicorn.BY_NAME[name].label


def _convert(setting: Setting, raw: object, where: str, from_env: bool = False) -> Any:
    try:
        if from_env:
            assert isinstance(raw, str)
            return setting.convert.from_env(raw)
        return setting.convert(raw)
    except InvalidValue as error:
        raise SettingError(where, str(error)) from None


def _close_match(name: str, candidates: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
    return matches[0] if matches else None


def load_config_file(path: str) -> dict[str, object]:
    """Execute a config file; return its top-level names.

    Raises ``ConfigFileError`` carrying the traceback if the file raises.
    """
    try:
        with open(path, "rb") as handle:
            source = handle.read()
        code = compile(source, path, "exec")
        namespace: dict[str, object] = {"__file__": os.path.abspath(path), "__name__": "__config__"}
        exec(code, namespace)  # running the user's config file is the point
    except (Exception, SystemExit) as error:  # reported with its traceback, not swallowed
        # Start the traceback at the config file: the frame of this function
        # (the exec) is the same for every failure.
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        details = "".join(traceback.format_exception(type(error), error, tb))
        problem = f"failed to execute the config file: {type(error).__name__}: {error}"
        raise ConfigFileError(path, problem, details) from error
    return namespace


class _Source:
    """The values one source (config file, command line) gives, by fulmen name.

    Two names of one source that set the same setting (``keepalive`` and
    ``keepalive_timeout``) are an error: neither may silently win.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.set_by: dict[str, str] = {}

    def give(self, setting: Setting, raw: object, where: str, origin: str, from_env: bool = False) -> None:
        other = self.set_by.get(setting.name)
        if other is not None:
            raise SettingError(where, f"sets {setting.name}, which {other} sets too")
        self.set_by[setting.name] = where
        self.settings.values[setting.name] = _convert(setting, raw, where, from_env)
        self.settings.origins[setting.name] = origin

    def give_gunicorn(self, name: str, raw: object, where: str, origin: str) -> None:
        """Apply gunicorn's setting *name* through the alias table."""
        from . import gunicorn

        row = gunicorn.BY_NAME[name]
        try:
            target, value = gunicorn.translate(row, raw, BY_NAME)
        except InvalidValue as error:
            raise SettingError(where, str(error)) from None
        shown = "a function" if callable(raw) and not isinstance(raw, type) else _shown(raw)
        if target is None:
            if row.target is not None:  # a setting of another part of fulmen, absent from this build
                why = f"gunicorn's default; this build has no {row.target} setting: {row.note}"
            else:
                why = row.note
            self.settings.gunicorn.append(f"# {where} = {shown}: accepted, nothing to set ({why})")
            return
        setting = BY_NAME[target]
        self.give(setting, value, where, origin)
        if target != name:
            typed = setting.convert.to_source(self.settings.values[target])
            self.settings.gunicorn.append(f"{target} = {typed}  # {where} = {shown} ({row.note})")


def _from_config_file(path: str, settings: Settings) -> None:
    from . import gunicorn

    namespace = load_config_file(path)
    file_names = [s.name for s in SETTINGS if FILE in s.sources]
    source = _Source(settings)
    # Fulmen's own names first, so that a gunicorn alias of one of them is
    # the name reported as the duplicate.
    for name, raw in sorted(namespace.items(), key=lambda item: item[0] not in BY_NAME):
        setting = BY_NAME.get(name)
        if setting is not None and FILE in setting.sources:
            source.give(setting, raw, f"{path}: {name}", path)
        elif setting is not None:
            raise SettingError(f"{path}: {name}", f"cannot be set in a config file (use {setting.flag})")
        elif name in gunicorn.BY_NAME:
            # Checked before the callables are skipped: a hook or a worker
            # class is a gunicorn setting too.
            source.give_gunicorn(name, raw, f"{path}: {name}", f"{path}: {name}")
        elif not name.startswith("_") and not isinstance(raw, (types.ModuleType, type)) and not callable(raw):
            # Unknown names are ignored (the file may compute helpers), but a
            # near-miss like "worker = 4" is worth a warning.
            match = _close_match(name, file_names + list(gunicorn.BY_NAME))
            if match:
                settings.warnings.append(f"{path}: ignoring unknown name {name!r}; did you mean {match!r}?")


def resolve(
    given: Mapping[str, object],
    environ: Mapping[str, str],
    *,
    label: Callable[[str], str] = cli_label,
    env_args: Mapping[str, object] | None = None,
) -> Settings:
    """Merge defaults, config file, environment and *given* into ``Settings``.

    *given* maps setting names -- or gunicorn's names, see ``fulmen.gunicorn``
    -- to raw values from the highest-precedence source (the command line, or
    ``fulmen.run``'s keyword arguments); *label* names them in error messages.
    *env_args* are the same from gunicorn's ``GUNICORN_CMD_ARGS``, parsed by
    the caller: between the config file and the ``FULMEN_*`` variables.
    Raises ``SettingError`` (a ``ValueError``) for the first bad value,
    ``ConfigFileError`` if the config file raises.
    """
    from . import gunicorn

    for name in given:
        if name not in BY_NAME and name not in gunicorn.BY_NAME:
            raise SettingError(name, "unknown setting")

    settings = Settings(
        values={s.name: s.default for s in SETTINGS},
        origins={s.name: "default" for s in SETTINGS},
    )

    # The config file's path itself comes from the command line or the environment.
    config = BY_NAME["config"]
    config_env = ENV_PREFIX + "CONFIG"
    if "config" in given:
        config_path = _convert(config, given["config"], label("config"))
    elif env_args and "config" in env_args:
        config_path = _convert(config, env_args["config"], f"GUNICORN_CMD_ARGS: {label('config')}")
    elif config_env in environ:
        config_path = _convert(config, environ[config_env], config_env, from_env=True)
    else:
        config_path = ""
    if config_path:
        _from_config_file(config_path, settings)

    if env_args:
        source = _Source(settings)
        for name, raw in sorted(env_args.items(), key=lambda item: item[0] not in BY_NAME):
            where = f"GUNICORN_CMD_ARGS: {label(name)}"
            if name in BY_NAME:
                source.give(BY_NAME[name], raw, where, where)
            else:
                source.give_gunicorn(name, raw, where, where)

    env_names = [s.env for s in SETTINGS if s.env]
    for name in environ:
        if name.startswith(ENV_PREFIX) and name not in env_names:
            match = _close_match(name, env_names)
            if match:
                settings.warnings.append(f"ignoring unknown variable {name}; did you mean {match}?")
    for setting in SETTINGS:
        if setting.env and setting.env in environ:
            settings.values[setting.name] = _convert(
                setting, environ[setting.env], setting.env, from_env=True
            )
            settings.origins[setting.name] = setting.env

    source = _Source(settings)
    for name, raw in sorted(given.items(), key=lambda item: item[0] not in BY_NAME):
        if name in BY_NAME:
            source.give(BY_NAME[name], raw, label(name), label(name))
        else:
            source.give_gunicorn(name, raw, label(name), label(name))

    # Checks that depend on the platform rather than on the value alone.
    if settings.values["reuse_port"] and not hasattr(socket, "SO_REUSEPORT"):
        raise SettingError(settings.origins["reuse_port"], "SO_REUSEPORT is not supported on this platform")
    return settings
