"""What the master and the workers do as processes: pid file, daemon, users, titles.

These are gunicorn's duties of the same names (``--pid``, ``--daemon``,
``--user``/``--group``, ``--name``), done in Python around the core:

* ``PidFile``: written by the master once its sockets are open, removed when
  it exits; a file naming a live process refuses the start (as gunicorn).
* ``daemonize``: the classic double fork; the command returns only once the
  daemon reported that it listens and wrote its pid file.
* ``Identity`` and ``install_worker_setup``: the master keeps its rights;
  each worker switches user and group right after the core forked it, before
  any request or (without preload) any import of the application.
* ``set_title``: ``fulmen: master [name]`` / ``fulmen: worker [name]``.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DaemonError",
    "Identity",
    "PidFile",
    "PidFileError",
    "daemonize",
    "install_worker_setup",
    "set_title",
]

# From <linux/prctl.h>.
_PR_SET_PDEATHSIG: Final = 1
_PR_SET_NAME: Final = 15
#: Longest /proc/PID/comm, without its NUL.
_COMM_MAX: Final = 15


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# --------------------------------------------------------------------------
# Pid file
# --------------------------------------------------------------------------


class PidFileError(OSError):
    """The pid file names a live process, or cannot be written; one line."""


class PidFile:
    """The master's pid file at an absolute *path*.

    ``check()`` before anything irreversible; ``create()`` once the process
    that will run the master exists (after ``daemonize``); ``unlink()`` at
    exit removes the file only if it still holds this pid. ``rename()`` moves
    it (gunicorn's ``.oldbin`` on USR2).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid: int | None = None

    def _holder(self) -> int | None:
        """The live pid the file names, other than this process; None if stale or absent."""
        try:
            with open(self.path, encoding="ascii", errors="replace") as handle:
                text = handle.read().strip()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise PidFileError(f"cannot read {self.path!r}: {error.strerror}") from None
        if not text.isdigit() or int(text) <= 0:
            return None  # not a pid file fulmen or gunicorn wrote: replaced
        pid = int(text)
        if pid == os.getpid():
            return None  # a container restarted us under the same pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid  # alive, another user's
        return pid

    def check(self) -> None:
        holder = self._holder()
        if holder is not None:
            raise PidFileError(
                f"already running: {self.path!r} names the live process {holder} "
                "(stop it, or remove the file if that pid is not a fulmen)"
            )

    def create(self) -> None:
        """Write this process's pid, atomically, mode 0644."""
        self.check()
        directory = os.path.dirname(self.path)
        try:
            fd, temp = tempfile.mkstemp(dir=directory, prefix=".fulmen-pid-")
            try:
                os.write(fd, f"{os.getpid()}\n".encode())
                os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            os.rename(temp, self.path)
        except OSError as error:
            raise PidFileError(f"cannot write the pid file {self.path!r}: {error.strerror}") from None
        self.pid = os.getpid()

    def unlink(self) -> None:
        if self.pid is None:
            return
        try:
            with open(self.path, encoding="ascii", errors="replace") as handle:
                if handle.read().strip() == str(self.pid):
                    os.unlink(self.path)
        except OSError:
            pass
        self.pid = None

    def rename(self, path: str) -> None:
        self.unlink()
        self.path = path
        self.create()


# --------------------------------------------------------------------------
# Daemon
# --------------------------------------------------------------------------


class DaemonError(RuntimeError):
    """The daemon stopped before it reported that it was ready."""


def daemonize() -> Callable[[], None]:
    """Detach: fork, setsid, fork again; return, in the daemon, a ``ready()`` callable.

    The process that called this waits, and exits 0 when the daemon calls
    ``ready()`` (or 1, with a line on its stderr, when the daemon dies
    first). Standard input becomes /dev/null, standard output and error too
    when they are terminals (redirected to a file, they are kept, as
    gunicorn's ``--enable-stdio-inheritance``). The umask becomes 022.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    if os.fork() != 0:
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 512):
            chunks.append(chunk)
        if b"".join(chunks) == b"ready":
            os._exit(0)
        os.write(2, b"fulmen: error: the daemon stopped before it was ready\n")
        os._exit(1)
    os.close(read_end)
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    for fd in (1, 2):
        if os.isatty(fd):
            os.dup2(null, fd)
    if null > 2:
        os.close(null)
    os.set_inheritable(write_end, False)

    def ready() -> None:
        os.write(write_end, b"ready")
        os.close(write_end)

    return ready


# --------------------------------------------------------------------------
# Users and groups
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The user and group the workers switch to (None: keep the master's)."""

    uid: int | None
    gid: int | None
    user_name: str | None
    initgroups: bool

    @classmethod
    def resolve(cls, user: str | int | None, group: str | int | None, initgroups: bool) -> Identity:
        """Look the names up; raises ``KeyError`` naming an unknown one."""
        uid = gid = None
        name = None
        if isinstance(user, int):
            uid = user
            try:
                entry = pwd.getpwuid(user)
            except KeyError:
                pass  # a bare uid (containers often run as one): the group stays unless --group
            else:
                name, gid = entry.pw_name, entry.pw_gid
        elif user is not None:
            entry = pwd.getpwnam(user)
            uid, name = entry.pw_uid, entry.pw_name
            gid = entry.pw_gid  # the user's primary group unless --group says otherwise
        if group is not None:
            gid = group if isinstance(group, int) else grp.getgrnam(group).gr_gid
        return cls(uid=uid, gid=gid, user_name=name, initgroups=initgroups)

    @property
    def changes(self) -> bool:
        return (self.uid is not None and self.uid != os.geteuid()) or (
            self.gid is not None and self.gid != os.getegid()
        )

    def apply(self) -> None:
        """Switch this process (a worker): groups, then gid, then uid."""
        if not self.changes:
            return
        if self.initgroups and self.user_name is not None and self.gid is not None:
            os.initgroups(self.user_name, self.gid)
        elif os.geteuid() == 0:
            # Unlike gunicorn, no worker keeps root's supplementary groups.
            os.setgroups([])
        if self.gid is not None:
            os.setgid(self.gid)
        if self.uid is not None:
            os.setuid(self.uid)

    def owner_of_files(self) -> tuple[int, int]:
        """(uid, gid) for os.chown: -1 keeps that part."""
        return (-1 if self.uid is None else self.uid, -1 if self.gid is None else self.gid)


# --------------------------------------------------------------------------
# Process titles
# --------------------------------------------------------------------------


def _argv_area() -> tuple[int, int] | None:
    """Start and end address of this process's argument strings (Linux >= 3.5)."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        # Fields 48 and 49 of proc(5), counted from "state", field 3.
        start, end = int(fields[45]), int(fields[46])
    except (OSError, IndexError, ValueError):
        return None
    return (start, end) if 0 < start < end else None


def set_title(title: str, comm: str) -> None:
    """Show *title* as this process's command line and *comm* as its name.

    With the ``setproctitle`` module installed, it sets the title (it can
    grow past the original command line). Otherwise the argument strings are
    rewritten in place -- the kernel shows that memory as /proc/PID/cmdline
    -- so the title is cut to the length of the original command line.
    Python keeps its own copy of argv; nothing reads the original after
    start-up. *comm* (at most 15 bytes) goes to prctl(PR_SET_NAME), which
    ``top`` and /proc/PID/comm show. Best effort: failures change nothing.
    """
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(comm.encode()[:_COMM_MAX]), 0, 0, 0)
    try:
        import setproctitle  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        setproctitle.setproctitle(title)
        if libc is not None:  # setproctitle may set the name too; ours wins
            libc.prctl(_PR_SET_NAME, ctypes.c_char_p(comm.encode()[:_COMM_MAX]), 0, 0, 0)
        return
    area = _argv_area()
    if area is None:
        return
    size = area[1] - area[0]
    data = title.encode(errors="replace")[: size - 1]
    # NUL-filled to the end, so the last byte stays NUL and the kernel shows
    # the area as one string.
    ctypes.memmove(area[0], data + b"\0" * (size - len(data)), size)


# --------------------------------------------------------------------------
# Worker set-up after fork
# --------------------------------------------------------------------------

#: Cleared by code that forks the master for something other than a worker
#: (a re-exec), so that the child keeps the master's rights and title.
worker_setup_enabled = True


def _fail_worker(message: str) -> None:
    os.write(2, f"fulmen: error: worker {os.getpid()}: {message}\n".encode(errors="replace"))
    os._exit(3)  # the core's "worker failed to boot": the master stops with it


def install_worker_setup(identity: Identity, title: str, master_pid: int) -> None:
    """Arrange for each worker the core forks to take *identity* and *title*.

    Runs from ``os.register_at_fork(after_in_child=...)``, which the core
    triggers (``PyOS_AfterFork_Child``) first thing in a new worker. Only the
    core's forks count -- the Python code running then is ``fulmen.cli``'s
    call of ``fulmen._core.serve`` -- so a process forked by Python code (the
    application's, or a re-exec of the master on USR2) is left alone. A worker
    that cannot switch user exits with status 3, which stops the server:
    serving as root when told not to is never the fallback.
    """
    libc = _libc()

    def after_fork_in_child() -> None:
        if not worker_setup_enabled or os.getppid() != master_pid:
            return
        caller = sys._getframe(1)  # the Python code that was running when the fork happened
        if caller.f_globals.get("__name__") != "fulmen.cli":
            return
        set_title(title, "fulmen: worker")
        changing = identity.changes
        try:
            identity.apply()
        except OSError as error:
            _fail_worker(f"cannot switch to user {identity.uid} group {identity.gid}: {error.strerror}")
        if changing:
            # A change of credentials clears the parent-death signal the core
            # set: set it again, and leave if the master is already gone.
            if libc is not None:
                libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != master_pid:
                os._exit(0)

    os.register_at_fork(after_in_child=after_fork_in_child)

