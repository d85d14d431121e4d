"""The ``fulmen`` command: argv -> settings -> application -> sockets -> core.

``main()`` is the console script and ``python -m fulmen``; ``run_app()`` is the
same path for ``fulmen.run()``, raising exceptions instead of exiting. Both go
through ``start()``:

1. settings are resolved (``settings.resolve``) and TARGET is parsed;
2. the open-files limit is raised, --chdir applied, the directory put first
   on ``sys.path``;
3. with ``--preload`` (or ``--check-config``) the application is loaded
   (``loader.load``) in this, the master, process; otherwise each worker
   loads it after the fork (``lifecycle.Lifecycle.worker_load``);
4. ``--check-config`` stops here; otherwise the listening sockets are opened
   (or taken over from an old master, USR2), one "Listening at:" line logged
   per socket, and ``fulmen._core.serve`` runs until the server stops. Its
   return value is the exit status.

Every failure before serving is one line on stderr, ``fulmen: error: ...``,
preceded by a traceback only when the application's or the config file's own
code raised.
"""

from __future__ import annotations

import argparse
import difflib
import enum
import os
import re
import shlex
import socket
import stat
import sys
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from . import __version__, _log, gunicorn, process
from .lifecycle import Lifecycle, Server, inherited_fds
from .loader import (
    AppLoadError,
    Loaded,
    ModuleTarget,
    ScriptTarget,
    TargetError,
    load,
    load_object,
    parse_target,
)
from .settings import (
    ADDRESS_FORMS,
    BY_NAME,
    CLI,
    ENV,
    FILE,
    SETTINGS,
    Address,
    ConfigFileError,
    Setting,
    SettingError,
    Settings,
    parse_address,
    resolve,
)

__all__ = ["BindError", "CoreUnavailable", "ExitCode", "main", "open_listeners", "run_app", "start"]

PROG = "fulmen"
#: The config file gunicorn reads from the current directory when -c is not given.
GUNICORN_DEFAULT_CONFIG = "gunicorn.conf.py"


class ExitCode(enum.IntEnum):
    """The exit statuses of ``fulmen`` (3 and 4 as in gunicorn)."""

    OK = 0
    ERROR = 1  # a runtime failure: cannot listen, native extension missing
    USAGE = 2  # a bad option, setting, TARGET or PATHS
    WORKER_BOOT_ERROR = 3  # returned by the core when a worker fails to boot
    APP_LOAD_ERROR = 4  # the application failed to import or build


class UsageError(Exception):
    """A command-line error; the message is one line."""


class BindError(OSError):
    """A listening socket could not be opened; the message names the address."""


class CoreUnavailable(ImportError):
    """The native extension ``fulmen._core`` cannot be imported."""


# --------------------------------------------------------------------------
# Command line, generated from the settings table
# --------------------------------------------------------------------------

_ARGUMENT_ERROR = re.compile(r"argument (?P<flags>\S+): (?P<problem>.*)", re.DOTALL)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, without the usage dump."""

    #: The long options an "unknown option" may be a typo of: fulmen's own,
    #: and gunicorn's that set one of fulmen's settings.
    hints: list[str] = []

    def error(self, message: str) -> NoReturn:
        raise UsageError(_rephrase(message, self.hints))

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        return super().parse_known_args(None if args is None else _bare_values(list(args)), namespace)


def _bare_values(argv: list[str]) -> list[str]:
    """Writes a bare optional-value flag as ``--flag=VALUE``.

    ``--proxy-protocol app:application`` must not read the TARGET as the
    flag's value (argparse's ``nargs="?"`` would): a flag whose value may be
    left out takes the next word only when that word is a value it accepts.
    """
    bare = {s.flag: s for s in SETTINGS if s.bare is not None}
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        setting = bare.get(arg)
        if arg == "--":
            out.extend(argv[i:])
            break
        if setting is not None:
            following = argv[i + 1] if i + 1 < len(argv) else None
            try:
                accepted = following is not None and not following.startswith("-") and setting.convert(following)
            except ValueError:
                accepted = False
            if accepted:
                out.append(f"{arg}={following}")
                i += 2
                continue
            out.append(f"{arg}={setting.bare}")
            i += 1
            continue
        out.append(arg)
        i += 1
    return out


def _rephrase(message: str, options: Sequence[str]) -> str:
    """Turn argparse's messages into ``<flag>: <problem>``."""
    unrecognized = message.removeprefix("unrecognized arguments: ")
    if unrecognized != message:
        first = unrecognized.split(" ")[0]
        if not first.startswith("-"):
            return f"{first}: unexpected argument (only one TARGET may be given)"
        name = first.split("=")[0]
        # A strict cutoff: a hint must be a likely typo, not any option that
        # shares a word ("--timeout" is no hint for "--time-limit").
        matches = difflib.get_close_matches(name, [o for o in options if o.startswith("--")], n=1, cutoff=0.8)
        return f"{name}: unknown option" + (f" (did you mean {matches[0]}?)" if matches else "")
    match = _ARGUMENT_ERROR.fullmatch(message)
    if match:
        flags = match["flags"].split("/")
        flag = next((f for f in flags if f.startswith("--")), flags[0])
        problem = match["problem"]
        if problem == "expected one argument":
            problem = "expected a value"
        elif problem.startswith("ignored explicit argument"):
            problem = "takes no value, got " + problem.removeprefix("ignored explicit argument ")
        return f"{flag}: {problem}"
    return message


def _default_text(setting: Setting) -> str:
    value = setting.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    if value == "":
        return "unset" if setting.convert.type_name == "path" else "''"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _help_text(setting: Setting) -> str:
    notes = []
    if FILE in setting.sources:  # a real setting, not a one-shot command
        notes.append(f"default: {_default_text(setting)}")
    if setting.env:
        notes.append(f"env: {setting.env}")
    # gunicorn's spellings of it, from the alias table.
    own = {setting.flag, setting.short}
    spellings = [f for row in gunicorn.GUNICORN if row.target == setting.name for f in row.flags if f not in own]
    if spellings:
        notes.append("gunicorn: " + ", ".join(spellings))
    text = setting.help + (f" [{'; '.join(notes)}]" if notes else "")
    return text.replace("%", "%%")  # argparse formats help with %


_EPILOG = f"""\
TARGET is MODULE:CALLABLE, MODULE (meaning MODULE:application), MODULE:FACTORY()
(with literal arguments, e.g. app:create_app("prod")), or the path of a .py
script that defines PATHS = [(prefix, handler), ...] (Fapws4 script mode).

Bind addresses: {ADDRESS_FORMS};
":PORT" means 0.0.0.0:PORT.

Every setting is also read from the environment variable FULMEN_<NAME>
(e.g. FULMEN_WORKERS=4) and from a --config file (workers = 4). The command
line wins over the environment, which wins over the config file.

gunicorn's flags and config-file names work too (-k, --keep-alive,
limit_request_line, a gunicorn.conf.py...): each sets the fulmen setting it
matches; one fulmen does not have stops it with exit status 2 (docs/deploy.md).

Exit status: 0 stopped normally; 1 runtime error (e.g. cannot listen);
2 usage or configuration error; 3 a worker failed to boot; 4 the application
failed to load.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser, one option per row of the settings table.

    Options left out of argv are absent from the namespace (their default is
    SUPPRESS), so that the environment and the config file can supply them.
    """
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [OPTIONS] TARGET",
        description="fulmen: a WSGI server with its core in C++.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # "--work" must not silently mean "--workers"
    )
    parser.add_argument(
        "target", nargs="?", metavar="TARGET", default=None,
        help="the application to serve (see below)",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")

    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in SETTINGS:
        if CLI not in setting.sources:
            continue
        group = groups.get(setting.section)
        if group is None:
            group = groups[setting.section] = parser.add_argument_group(setting.section)
        flags = setting.flags
        common: dict[str, Any] = {
            "dest": setting.name,
            "default": argparse.SUPPRESS,
            "help": _help_text(setting),
        }
        if setting.is_flag and (ENV in setting.sources or FILE in setting.sources):
            # --reuse-port / --no-reuse-port: the command line can override
            # a true value from the environment or the config file.
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif setting.is_flag:
            group.add_argument(*flags, action="store_const", const=True, **common)
        elif isinstance(setting.default, list):
            group.add_argument(*flags, action="append", metavar=setting.metavar, **common)
        elif setting.bare is not None:
            group.add_argument(*flags, nargs="?", const=setting.bare, metavar=setting.metavar, **common)
        else:
            group.add_argument(*flags, metavar=setting.metavar, **common)
    hints = [f for s in SETTINGS if CLI in s.sources for f in (s.flag,)]
    _add_gunicorn_flags(parser, hints)
    parser.hints = hints
    return parser


def _gunicorn_dest(row: gunicorn.GunicornSetting) -> str:
    return "gunicorn:" + row.name


def _add_gunicorn_flags(parser: argparse.ArgumentParser, hints: list[str]) -> None:
    """gunicorn's flags that are not fulmen's own, hidden from --help.

    Each stores under ``gunicorn:<name>``; ``_given`` hands the value to the
    settings as gunicorn's name, and the alias table decides what it means.
    A flag fulmen already has (``-w``, ``--bind``) keeps fulmen's meaning.
    """
    taken = set(parser._option_string_actions)
    for row in gunicorn.GUNICORN:
        flags = [f for f in row.flags if f not in taken]
        if not flags:
            continue
        taken.update(flags)
        # gunicorn's other spelling of a fulmen setting with the same name
        # (--pid for pidfile, --env for raw_env) shares its destination, so
        # "-e A=B --env C=D" appends to one list.
        dest = row.name if row.name in BY_NAME else _gunicorn_dest(row)
        common: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
        if row.kind == gunicorn.FLAG:
            parser.add_argument(*flags, action="store_const", const=True, **common)
        elif row.kind == gunicorn.OFF_FLAG:
            parser.add_argument(*flags, action="store_const", const=False, **common)
        elif row.kind == gunicorn.APPEND:
            parser.add_argument(*flags, action="append", **common)
        elif row.kind == gunicorn.OPTIONAL:
            parser.add_argument(*flags, nargs="?", const="auto", **common)
        else:
            parser.add_argument(*flags, **common)
        if row.target in BY_NAME:
            hints.extend(f for f in flags if f.startswith("--"))


def _given(namespace: argparse.Namespace) -> dict[str, object]:
    """The settings the command line gives: fulmen names and gunicorn names."""
    given: dict[str, object] = {}
    for dest, value in vars(namespace).items():
        if dest in BY_NAME:
            given[dest] = value
        elif dest.startswith("gunicorn:"):
            given[dest.removeprefix("gunicorn:")] = value
    return given


# --------------------------------------------------------------------------
# Process preparation
# --------------------------------------------------------------------------


def raise_nofile_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (best effort).

    Each connection is a file descriptor and the default soft limit (often
    1024) is far below ``max_connections``.
    """
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    # Linux refuses RLIM_INFINITY for this limit; 2**20 is the default fs.nr_open.
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if wanted <= soft:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        _log.logger.debug("Raised the open files limit from %d to %d", soft, wanted)
    except (ValueError, OSError) as error:
        _log.logger.debug("Could not raise the open files limit from %d: %s", soft, error)


def _prepare_process(settings: Settings) -> None:
    raise_nofile_limit()
    if settings["chdir"]:
        try:
            os.chdir(settings["chdir"])
        except OSError as error:
            raise SettingError(
                settings.origins["chdir"], f"cannot change to {settings['chdir']!r}: {error.strerror}"
            ) from None
    # Like gunicorn: modules in the (new) current directory are importable,
    # whichever way fulmen was started (console script or python -m).
    cwd = os.getcwd()
    if sys.path[:1] != [cwd]:
        sys.path.insert(0, cwd)
    # --pythonpath goes before it, in the order given; relative to --chdir, as in gunicorn.
    paths = [os.path.abspath(path) for path in settings["pythonpath"]]
    for path, given in zip(paths, settings["pythonpath"]):
        if not os.path.isdir(path):
            raise SettingError(settings.origins["pythonpath"], f"no such directory {given!r}")
    sys.path[:0] = [path for path in paths if path not in sys.path[:1]]
    # --env: set before the application is imported; workers inherit it.
    for assignment in settings["raw_env"]:
        name, _, value = assignment.partition("=")
        os.environ[name.strip()] = value


def _identity(settings: Settings) -> process.Identity:
    """The user and group of the workers; refuses a switch this process cannot make."""
    try:
        identity = process.Identity.resolve(settings["user"], settings["group"], settings["initgroups"])
    except KeyError as error:
        raise SettingError(settings.origins["user"], f"no such user or group: {error}") from None
    if identity.changes and os.geteuid() != 0:
        name = "user" if identity.uid is not None and identity.uid != os.geteuid() else "group"
        raise SettingError(
            settings.origins[name],
            f"switching the workers to {name} {settings[name]!r} needs root (fulmen runs as uid {os.geteuid()})",
        )
    return identity


# --------------------------------------------------------------------------
# Listening sockets
# --------------------------------------------------------------------------


@dataclass
class Listener:
    """An open listening socket and how the core and the log name it."""

    sock: socket.socket
    url: str  # for the log: http://127.0.0.1:8000, http://[::1]:8000, unix:/path
    server_name: str  # SERVER_NAME: the host as bound (no brackets), or the unix path
    server_port: str  # SERVER_PORT: the real port, "" for unix sockets
    unix_path: str | None = None
    unix_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket file we created
    owner_pid: int = field(default_factory=os.getpid)


def _cannot(address: Address, problem: str) -> BindError:
    return BindError(f"cannot listen on {address.text!r}: {problem}")


def _configure_and_listen(sock: socket.socket, sockaddr: Any, backlog: int) -> None:
    sock.bind(sockaddr)
    sock.listen(backlog)
    # The core multiplexes the socket in every worker: non-blocking. Workers
    # are forked, not exec'd, so the socket stays close-on-exec (Python's
    # default): a subprocess the application starts must not hold it open
    # (issue 13 item 12).
    sock.setblocking(False)


def _open_tcp(address: Address, backlog: int, reuse_port: bool) -> Listener:
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise _cannot(address, f"cannot resolve {address.host!r}: {error.strerror}") from None
    family, _, proto, _, sockaddr = infos[0]  # the resolver's preferred address
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # One family per socket, the same on every system: "[::]:80" does
            # not also take IPv4 (bind 0.0.0.0:80 as well for that).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        _configure_and_listen(sock, sockaddr, backlog)
    except OSError as error:
        sock.close()
        raise _cannot(address, error.strerror or str(error)) from None
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
    return Listener(sock=sock, url=url, server_name=address.host, server_port=str(port))


def _unix_socket_is_live(path: str) -> bool:
    """True when a server accepts connections on the unix socket *path*."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except TimeoutError:
        return True  # listening, with a full backlog
    except OSError:
        return False  # ECONNREFUSED: nobody listens, the file is stale
    finally:
        probe.close()
    return True


def _open_unix(address: Address, backlog: int, umask: int = 0, owner: tuple[int, int] = (-1, -1)) -> Listener:
    path = address.path
    assert path is not None
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        # Only a socket left behind by a dead server may be removed.
        if not stat.S_ISSOCK(mode):
            raise _cannot(address, f"{path!r} exists and is not a socket")
        if _unix_socket_is_live(path):
            raise _cannot(address, "another server is listening on it")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The file's mode is 0777 less the umask (--umask, 0 by default as in
        # gunicorn: any local user, a proxy among them, may connect). It is
        # set for the bind only; the process keeps its own umask.
        old_umask = os.umask(umask)
        try:
            _configure_and_listen(sock, path, backlog)
        finally:
            os.umask(old_umask)
        if owner != (-1, -1):
            os.chown(path, *owner)  # the workers' user owns it, as in gunicorn
        info = os.stat(path)
    except OSError as error:
        sock.close()
        raise _cannot(address, error.strerror or str(error)) from None
    return Listener(
        sock=sock, url=f"unix:{path}", server_name=path, server_port="",
        unix_path=path, unix_id=(info.st_dev, info.st_ino),
    )


def open_listeners(
    binds: Sequence[str], backlog: int, reuse_port: bool, umask: int = 0, owner: tuple[int, int] = (-1, -1)
) -> list[Listener]:
    """Open, bind and listen on every address of *binds*; all or none.

    A unix socket file gets mode 0777 less *umask* and, unless -1, the
    owner and group of *owner*. Raises ``BindError`` naming the first address
    that fails, after closing the sockets already opened.
    """
    listeners: list[Listener] = []
    try:
        for text in binds:
            address = parse_address(text)
            if address.is_unix:
                listeners.append(_open_unix(address, backlog, umask, owner))
            else:
                listeners.append(_open_tcp(address, backlog, reuse_port))
    except BaseException:
        close_listeners(listeners)
        raise
    return listeners


#: The first descriptor systemd passes (sd_listen_fds(3)).
LISTEN_FDS_START = 3
_ACTIVATION_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def inherited_listeners(environ: MutableMapping[str, str]) -> list[Listener]:
    """The listening sockets systemd passed (socket activation), or [].

    They count only when ``LISTEN_PID`` is this process: otherwise the
    variables were meant for a parent. Then the variables are removed from
    *environ* (``os.environ``: from the process), so that neither the workers
    nor the application's subprocesses take the sockets for theirs. Each of
    descriptors 3 .. 3+LISTEN_FDS-1 must be a listening TCP or unix stream
    socket; ``LISTEN_FDNAMES`` (colon-separated) names them in the log.
    Raises ``BindError`` for anything else.
    """
    pid_text, count_text = environ.get("LISTEN_PID", ""), environ.get("LISTEN_FDS", "")
    if not pid_text.isdigit() or int(pid_text) != os.getpid():
        return []
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    for variable in _ACTIVATION_VARIABLES:
        environ.pop(variable, None)
    if not count_text.isdigit():
        raise BindError(f"LISTEN_FDS: expected a number of descriptors, got {count_text!r}")
    listeners: list[Listener] = []
    for index in range(int(count_text)):
        fd = LISTEN_FDS_START + index
        try:
            sock = socket.socket(fileno=fd)  # family, type and protocol read from the socket
        except OSError as error:
            raise BindError(f"LISTEN_FDS: descriptor {fd} is not a socket: {error.strerror}") from None
        if (
            sock.type != socket.SOCK_STREAM
            or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)
            or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        ):
            sock.detach()
            raise BindError(f"LISTEN_FDS: descriptor {fd} is not a listening TCP or unix stream socket")
        sock.setblocking(False)
        sock.set_inheritable(False)  # as the sockets fulmen opens itself
        name = names[index] if index < len(names) and names[index] else ""
        label = f" (fd {fd}" + (f", {name})" if name else ")")
        if sock.family == socket.AF_UNIX:
            path = sock.getsockname()
            path = path if isinstance(path, str) else path.decode(errors="replace")
            shown = path.replace("\0", "@", 1) if path.startswith("\0") else path
            # unix_path stays None: the file is systemd's, not removed at exit.
            listeners.append(Listener(sock=sock, url=f"unix:{shown}{label}", server_name=shown, server_port=""))
        else:
            host, port = sock.getsockname()[:2]
            url = f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"
            listeners.append(Listener(sock=sock, url=url + label, server_name=host, server_port=str(port)))
    return listeners


def close_listeners(listeners: Sequence[Listener]) -> None:
    """Close the sockets; remove the unix socket files this process created."""
    for listener in listeners:
        listener.sock.close()
        # A forked worker returning here must not remove the master's file,
        # nor may anyone remove a file another server has since put there.
        if listener.unix_path and listener.owner_pid == os.getpid():
            try:
                info = os.stat(listener.unix_path)
                if (info.st_dev, info.st_ino) == listener.unix_id:
                    os.unlink(listener.unix_path)
            except OSError:
                pass


# --------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------


def _import_core() -> Any:
    # Imported here, not at the top: --help, --version, --check-config and
    # usage errors work without the native extension.
    try:
        from . import _core
    except ImportError as error:
        raise CoreUnavailable(f"the native extension fulmen._core cannot be imported: {error}") from error
    return _core


def _open_sockets(settings: Settings, identity: process.Identity) -> list[Listener]:
    """The inherited sockets (socket activation) or those of --bind."""
    listeners = inherited_listeners(os.environ)
    if listeners:
        if settings.origins["bind"] != "default":
            _log.logger.info(
                "Serving on the %d socket(s) systemd passed (LISTEN_FDS); %s is not used",
                len(listeners), settings.origins["bind"],
            )
        return listeners
    owner = identity.owner_of_files() if identity.changes else (-1, -1)
    return open_listeners(settings["bind"], settings["backlog"], settings["reuse_port"], settings["umask"], owner)


def _open_and_detach(
    settings: Settings, name: str, adopted: list[Listener] | None = None
) -> tuple[list[Listener], process.PidFile | None]:
    """The master's process duties before the core runs; returns its sockets and pid file.

    In order: the pid file is checked, the sockets are opened (inherited or
    bound, unless *adopted* ones are given; failures still reach the caller's
    terminal), ``--daemon`` detaches, the pid file is written, and the titles
    and the workers' user are set up. The caller closes the sockets and
    removes the pid file when it is done.
    """
    identity = _identity(settings)
    pidfile = process.PidFile(settings["pidfile"]) if settings["pidfile"] else None
    if pidfile is not None:
        pidfile.check()  # before anything is opened: "already running" is the whole answer
    listeners = adopted if adopted is not None else _open_sockets(settings, identity)
    try:
        if settings["daemon"]:
            if os.environ.get("NOTIFY_SOCKET"):
                _log.logger.warning("--daemon under systemd (NOTIFY_SOCKET is set): use Type=notify without it")
            ready = process.daemonize()
            for listener in listeners:
                listener.owner_pid = os.getpid()  # the daemon removes the socket files at exit
        if pidfile is not None:
            pidfile.create()
        if settings["daemon"]:
            ready()
    except BaseException:
        close_listeners(listeners)
        raise
    # As gunicorn's "Current configuration", on one line; raw_env shows names
    # only, as its values are often secrets.
    shown = {**settings.values, "raw_env": [item.partition("=")[0] + "=..." for item in settings["raw_env"]]}
    _log.logger.debug("Settings: %s", ", ".join(f"{k}={v!r}" for k, v in shown.items()))
    process.set_title(f"{PROG}: master [{name}]", f"{PROG}: master")
    process.install_worker_setup(identity, f"{PROG}: worker [{name}]", os.getpid())
    return listeners, pidfile


def _adopt_listeners(fds: Sequence[int]) -> list[Listener]:
    """The listening sockets handed over by an old master (USR2), as Listeners."""
    listeners = []
    for fd in fds:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        name = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            path = name if isinstance(name, str) else os.fsdecode(name)
            info = os.stat(path)
            listeners.append(Listener(sock=sock, url=f"unix:{path}", server_name=path, server_port="",
                                      unix_path=path, unix_id=(info.st_dev, info.st_ino)))
        else:
            host, port = name[:2]
            url = f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"
            listeners.append(Listener(sock=sock, url=url, server_name=host, server_port=str(port)))
    return listeners


def _configure_log(settings: Settings) -> None:
    """fulmen's Python log lines, as the core writes its own (format, syslog)."""
    syslog_to = settings["log_syslog_to"] if settings["log_syslog"] else ""
    try:
        _log.configure(settings["log_level"], settings["log_format"], syslog_to)
    except OSError as error:
        raise SettingError(settings.origins["log_syslog"], f"cannot reach {syslog_to!r}: {error.strerror or error}") from None


def _open_log_file(settings: Settings) -> None:
    """Put ``error_logfile`` on descriptor 2, where every log line goes (core and Python)."""
    path = settings["error_logfile"]
    if path == "-":
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise SettingError(settings.origins["error_logfile"], f"cannot open {path!r}: {error.strerror}") from None
    os.dup2(fd, 2)
    if settings["capture_output"]:
        sys.stdout.flush()
        os.dup2(fd, 1)  # the application's print() too (gunicorn's --capture-output)
    os.close(fd)


def serve(
    what: ModuleTarget | ScriptTarget | None,
    loaded: Loaded | None,
    settings: Settings,
    reread: Callable[[], Settings] | None = None,
) -> int:
    """Open the listeners and run ``fulmen._core.serve``; return its status.

    Without *loaded* (no preload), each worker loads *what* itself. *reread*
    re-resolves the settings on SIGHUP.
    """
    core = _import_core()
    values = settings.options()
    server_values = dict(values)
    # Script-mode folders (PATHS entries that name a directory): a script is
    # always loaded here, in the master, so they are known now and kept on HUP.
    script_static: list[str] = list(loaded.static) if loaded is not None else []

    def reload_values() -> dict[str, Any] | None:
        if reread is None:
            return dict(server_values)
        try:
            fresh = reread()
        except (ConfigFileError, SettingError) as error:
            if isinstance(error, ConfigFileError) and error.details:
                sys.stderr.write(error.details)
            _log.logger.error("Reload: %s; keeping the settings in use", error)
            return None
        try:
            _configure_log(fresh)
        except SettingError as error:
            _log.logger.error("Reload: %s; keeping the settings in use", error)
            return None
        options = fresh.options()
        options["script_mode"] = server_values["script_mode"]
        options["static"] = [*fresh["static"], *script_static]
        options["multiprocess"] = fresh["workers"] > 1
        return options

    fds = inherited_fds()
    if not fds:
        hook = settings["on_starting"]
        if hook is not None:
            hook(Server(values))
    name = settings["proc_name"] or (loaded.label if loaded is not None else what.text if what else PROG)
    listeners, pidfile = _open_and_detach(settings, name, _adopt_listeners(fds) if fds else None)

    def before_reexec() -> None:
        # USR2: the new master writes the pid file; ours becomes PIDFILE.oldbin.
        if pidfile is not None:
            pidfile.rename(pidfile.path + ".oldbin")

    def handed_over() -> None:
        # The new master serves these sockets now: the unix socket files are
        # its to remove, not ours.
        for listener in listeners:
            listener.owner_pid = -1

    try:
        for listener in listeners:
            _log.logger.info("Listening at: %s (%s %s)", listener.url, PROG, __version__)
        server_values["script_mode"] = (
            loaded.script_mode if loaded is not None else isinstance(what, ScriptTarget))
        server_values["static"] = [*settings["static"], *script_static]  # script-mode folders too
        server_values["multiprocess"] = settings["workers"] > 1
        lifecycle = Lifecycle(server_values, reload_values, what, loaded,
                              [lst.sock.fileno() for lst in listeners], before_reexec, handed_over)
        lifecycle.hook("when_ready", lifecycle.server)
        sockets = [(lst.sock.fileno(), lst.server_name, lst.server_port) for lst in listeners]
        # Blocks until the master stops; the socket objects stay referenced
        # (and open) in `listeners` all along.
        try:
            status = int(core.serve(lifecycle, sockets, server_values))
        except OSError as error:  # e.g. the --metrics-bind port is taken: one line, no traceback
            return _fail(str(error), ExitCode.ERROR)
        lifecycle.hook("on_exit", lifecycle.server)
        return status
    finally:
        close_listeners(listeners)
        if pidfile is not None:
            pidfile.unlink()


def start(
    what: ModuleTarget | ScriptTarget | object,
    settings: Settings,
    reread: Callable[[], Settings] | None = None,
) -> int:
    """Prepare the process, load *what* (with --preload), then check or serve it.

    *what* is a parsed TARGET, or for ``fulmen.run`` a WSGI callable or a
    PATHS list (always loaded here). Raises ``SettingError``/``TargetError``
    (ValueError), ``AppLoadError``, ``CoreUnavailable`` or ``BindError``.
    """
    _prepare_process(settings)
    _identity(settings)  # an unknown user or a switch without root is a usage error, checked too
    _open_log_file(settings)
    is_target = isinstance(what, (ModuleTarget, ScriptTarget))
    loaded: Loaded | None = None
    if not is_target:
        loaded = load_object(what)
    elif settings["preload_app"] or settings["check_config"] or isinstance(what, ScriptTarget):
        # A script (PATHS) is always run here, in the master: its routes are
        # checked before anything listens (one line, exit 2, as before).
        loaded = load(what)  # type: ignore[arg-type]
    if settings["check_config"]:
        # What every gunicorn name became, then the verdict.
        for line in settings.gunicorn:
            print(line)
        print("OK", flush=True)
        return ExitCode.OK
    return serve(what if is_target else None, loaded, settings, reread)  # type: ignore[arg-type]


def _fail(message: str, code: ExitCode, details: str | None = None) -> int:
    if details:
        sys.stderr.write(details if details.endswith("\n") else details + "\n")
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fulmen`` command; returns the exit status (see ``ExitCode``)."""
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:
        return 128 + 2  # as a shell reports SIGINT; no traceback for ^C at startup


def _main(argv: list[str]) -> int:
    try:
        namespace = build_parser().parse_args(argv)
    except UsageError as error:
        return _fail(str(error), ExitCode.USAGE)
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else ExitCode.OK

    given = _given(namespace)
    env_args: dict[str, object] = {}
    if os.environ.get("GUNICORN_CMD_ARGS", "").strip():
        # gunicorn's options from the environment, read as gunicorn reads them.
        try:
            words = shlex.split(os.environ["GUNICORN_CMD_ARGS"])
            env_namespace = build_parser().parse_args(words)
        except (UsageError, ValueError) as error:
            return _fail(f"GUNICORN_CMD_ARGS: {error}", ExitCode.USAGE)
        except SystemExit:  # --help or --version in the variable
            return _fail("GUNICORN_CMD_ARGS: --help and --version are for the command line", ExitCode.USAGE)
        if env_namespace.target is not None:
            return _fail(f"GUNICORN_CMD_ARGS: {env_namespace.target}: give TARGET on the command line", ExitCode.USAGE)
        env_args = _given(env_namespace)
    if (
        "config" not in given
        and "config" not in env_args
        and "FULMEN_CONFIG" not in os.environ
        and os.path.isfile(GUNICORN_DEFAULT_CONFIG)
    ):
        # As gunicorn: its config file in the current directory is read
        # without -c, so that "gunicorn" -> "fulmen" is the whole change.
        given["config"] = GUNICORN_DEFAULT_CONFIG
    try:
        settings = resolve(given, os.environ, env_args=env_args)
    except ConfigFileError as error:
        return _fail(str(error), ExitCode.USAGE, error.details)
    except SettingError as error:
        return _fail(str(error), ExitCode.USAGE)

    try:
        _configure_log(settings)
    except SettingError as error:
        return _fail(str(error), ExitCode.USAGE)
    if given.get("config") == GUNICORN_DEFAULT_CONFIG and "config" not in vars(namespace):
        _log.logger.info("Reading ./%s, gunicorn's default config file (-c reads another)", GUNICORN_DEFAULT_CONFIG)
    for warning in settings.warnings:
        _log.logger.warning("%s", warning)

    if settings["print_config"]:
        sys.stdout.write(settings.render())
        sys.stdout.flush()
        if not settings["check_config"]:
            return ExitCode.OK
    target = namespace.target or settings["wsgi_app"] or None
    if target is None:
        return _fail(
            "TARGET: missing application (MODULE:CALLABLE, MODULE or a path to a .py script)",
            ExitCode.USAGE,
        )

    try:
        return start(parse_target(target), settings, lambda: resolve(given, os.environ, env_args=env_args))
    except (TargetError, SettingError) as error:
        return _fail(str(error), ExitCode.USAGE)
    except AppLoadError as error:
        return _fail(str(error), ExitCode.APP_LOAD_ERROR, error.details)
    except (BindError, CoreUnavailable, process.PidFileError) as error:
        return _fail(str(error), ExitCode.ERROR)


# --------------------------------------------------------------------------
# fulmen.run()
# --------------------------------------------------------------------------


def _bind_for(host: str, port: object) -> str:
    if host.startswith("unix:"):
        return host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{host}:{port}"


def _keyword(name: str) -> str:
    return name


def run_app(
    app: object,
    host: str | None,
    port: int | None,
    workers: int | None,
    overrides: dict[str, object],
) -> int:
    """The implementation of ``fulmen.run``; see its docstring."""
    given = dict(overrides)
    for name in ("check_config", "print_config"):
        if name in given:
            raise ValueError(f"{name}: only available on the command line ({BY_NAME[name].flag})")
    if host is not None or port is not None:
        if "bind" in given:
            raise ValueError("bind: give either host/port or bind, not both")
        given["bind"] = [_bind_for("127.0.0.1" if host is None else host, 8000 if port is None else port)]
    if workers is not None:
        given["workers"] = workers

    settings = resolve(given, os.environ, label=_keyword)
    _configure_log(settings)
    for warning in settings.warnings:
        _log.logger.warning("%s", warning)
    # A TARGET string is parsed before --chdir applies, as on the command line.
    what = parse_target(app) if isinstance(app, str) else app
    return start(what, settings, lambda: resolve(given, os.environ, label=_keyword))
