"""What the core's master and workers call back into (issue 8).

``Lifecycle`` is handed to ``fulmen._core.serve``. In each new worker the
core calls ``worker_load(age)``, which imports the application (unless the
master preloaded it) and returns what to serve, or an exit status when it
cannot. In the master the core calls ``event(name, a, b)`` at each step of
its life, and ``reload()`` on SIGHUP to re-read the settings. These calls run
the server hooks of the config file (gunicorn's names and signatures), send
systemd's notifications and start a new master on USR2.

The ``server`` and ``worker`` objects the hooks receive carry what gunicorn
hooks use: ``pid``, ``log``, ``cfg`` (the settings as attributes) and, for a
worker, ``age`` and ``ppid``.
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any, Final

from . import _log, notify
from .loader import AppLoadError, Loaded, ModuleTarget, ScriptTarget, TargetError, load

__all__ = ["RESTART_ONLY", "Lifecycle", "Server", "WorkerInfo"]

#: Settings a reload cannot change: they shape the master itself. A new
#: value is logged as ignored on SIGHUP.
RESTART_ONLY: Final = ("bind", "backlog", "reuse_port", "chdir", "preload_app", "error_logfile", "reload",
                       "config", "pidfile", "daemon", "user", "group", "umask", "pythonpath", "raw_env",
                       "proc_name", "worker_tmp_dir")

#: The exit status of a worker whose application failed to load (the core's kAppLoadError).
APP_LOAD_ERROR: Final = 4

#: The environment variable that hands the listening sockets to a new master (USR2).
FDS_VARIABLE: Final = "FULMEN_FDS"


class Server:
    """The ``server`` argument of the hooks (gunicorn's arbiter)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.pid = os.getpid()
        self.log: logging.Logger = _log.logger
        self.cfg = SimpleNamespace(**values)
        self.num_workers: int = values["workers"]
        self.reexec_pid = 0


class WorkerInfo:
    """The ``worker`` argument of the hooks."""

    def __init__(self, pid: int | None, age: int, values: dict[str, Any]) -> None:
        self.pid = pid
        self.ppid = os.getppid() if pid == os.getpid() else os.getpid()
        self.age = age
        self.log: logging.Logger = _log.logger
        self.cfg = SimpleNamespace(**values)
        self.alive = True
        self.booted = False

    def __repr__(self) -> str:
        return f"<Worker pid={self.pid} age={self.age}>"


class Request:
    """The ``req`` argument of pre_request and post_request."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.method: str = environ.get("REQUEST_METHOD", "")
        self.path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        self.query: str = environ.get("QUERY_STRING", "")
        self.uri = self.path + ("?" + self.query if self.query else "")
        self.version: str = environ.get("SERVER_PROTOCOL", "")
        self.headers = [
            (key[5:].replace("_", "-"), value) for key, value in environ.items() if key.startswith("HTTP_")
        ]


class Response:
    """The ``resp`` argument of post_request: what the application answered."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []

    @property
    def status_code(self) -> int | None:
        return int(self.status.split(" ", 1)[0]) if self.status else None


def _with_request_hooks(app: Callable[..., Any], worker: WorkerInfo, pre: Any, post: Any) -> Callable[..., Any]:
    """*app* wrapped to call pre_request and post_request (only built when one is set)."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request(environ)
        if pre is not None:
            pre(worker, req)
        if post is None:
            result: Iterable[bytes] = app(environ, start_response)
            return result
        resp = Response()

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            resp.status, resp.headers = status, headers
            return start_response(status, headers, exc_info)

        result = app(environ, recording_start_response)
        post(worker, req, environ, resp)
        return result

    return application


def _report_load_error(error: AppLoadError | TargetError) -> None:
    details = getattr(error, "details", None)
    if details:
        sys.stderr.write(details if details.endswith("\n") else details + "\n")
    sys.stderr.write(f"fulmen: error: {error}\n")
    sys.stderr.flush()


class Lifecycle:
    """The core's callbacks for one server; see the module docstring."""

    def __init__(
        self,
        values: dict[str, Any],
        reread: Callable[[], dict[str, Any] | None],
        what: ModuleTarget | ScriptTarget | None,
        loaded: Loaded | None,
        listener_fds: Sequence[int],
        before_reexec: Callable[[], None],
        on_reexec: Callable[[], None],
    ) -> None:
        self.values = values
        self.server = Server(values)
        self._reread = reread
        self._what = what
        self._loaded = loaded
        self._fds = list(listener_fds)
        self._before_reexec = before_reexec
        self._on_reexec = on_reexec
        self.worker: WorkerInfo | None = None

    def hook(self, name: str, *args: Any) -> None:
        """Runs the hook *name* if the settings define it; a hook that raises is logged."""
        fn = self.values.get(name)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # a broken hook must not take the server down
            _log.logger.exception("The %s hook raised", name)

    # ---- in a worker -------------------------------------------------------

    def worker_load(self, age: int) -> Any:
        """In a new worker: load the application; return it, or an exit status."""
        worker = self.worker = WorkerInfo(os.getpid(), age, self.values)
        self._install_abort_handler()
        self.hook("post_fork", self.server, worker)
        try:
            target = self.load_target(worker)
        except (AppLoadError, TargetError) as error:
            _report_load_error(error)
            return APP_LOAD_ERROR
        worker.booted = True
        self.hook("post_worker_init", worker)
        return target

    def load_target(self, worker: WorkerInfo | None = None) -> Any:
        """What to serve: the preloaded application or a fresh import of TARGET.

        pre_request / post_request wrap it only when one is set, so that
        without them a request costs nothing more. Raises ``AppLoadError``
        or ``TargetError``.
        """
        if self._loaded is not None:
            loaded = self._loaded
        else:
            assert self._what is not None
            loaded = load(self._what)
        target = loaded.target
        pre, post = self.values.get("pre_request"), self.values.get("post_request")
        if pre is not None or post is not None:
            who = worker or WorkerInfo(os.getpid(), 0, self.values)
            if isinstance(target, list):
                target = [(prefix, _with_request_hooks(h, who, pre, post)) for prefix, h in target]
            else:
                target = _with_request_hooks(target, who, pre, post)
        return target

    def watch_files(self) -> list[str]:
        """--reload: the source files of the application's modules, and the extra files.

        Modules of the standard library and of installed packages (under
        ``sys.prefix``) are left out: a deploy changes those, not an edit.
        """
        roots = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
        files = set(self.values.get("reload_extra_files") or [])
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not isinstance(path, str) or not path.endswith(".py"):
                continue
            real = os.path.realpath(path)
            if not real.startswith(roots) and os.path.isfile(real):
                files.add(real)
        return sorted(files)

    def _install_abort_handler(self) -> None:
        # On SIGABRT (the master's --timeout, as gunicorn) the handler runs in
        # the stuck thread, inside the application's frame (a sleep or a
        # Python loop is interrupted for it): it writes the stack of every
        # thread to the log, runs the worker_abort hook and leaves. A thread
        # stuck in C code that never returns is killed by the master.
        def on_abort(signum: int, frame: Any) -> None:
            sys.stderr.write(f"Worker {os.getpid()} timed out; the stack of each of its threads:\n")
            sys.stderr.flush()
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            self.hook("worker_abort", self.worker)
            sys.stderr.flush()
            os._exit(1)

        signal.signal(signal.SIGABRT, on_abort)

    def worker_int(self) -> None:
        self.hook("worker_int", self.worker)

    def worker_exit(self) -> None:
        if self.worker is not None:
            self.worker.alive = False
        self.hook("worker_exit", self.server, self.worker)
        if self._loaded is None:
            # The application was imported here: its exit handlers are this
            # process's (with --preload they belong to the master).
            atexit._run_exitfuncs()

    # ---- in the master -----------------------------------------------------

    def event(self, name: str, a: int, b: int) -> int:
        """One step of the master's life (src/core/master.h, MasterEvent)."""
        if name == "pre_fork":
            self.hook("pre_fork", self.server, WorkerInfo(None, a, self.values))
        elif name == "workers_ready":
            notify.notify("READY=1", f"MAINPID={os.getpid()}")
        elif name == "reloading":
            notify.reloading()
        elif name == "stopping":
            notify.notify("STOPPING=1")
        elif name == "child_exit":
            self.hook("child_exit", self.server, WorkerInfo(a, b, self.values))
        elif name == "nworkers_changed":
            self.server.num_workers = a
            self.hook("nworkers_changed", self.server, a, b)
        elif name == "reexec":
            return self._reexec()
        return 0

    def reload(self) -> dict[str, Any] | None:
        """SIGHUP: the re-read settings as options for the core, or None to keep the old ones."""
        fresh = self._reread()
        if fresh is None:
            return None
        for name in RESTART_ONLY:
            if name in self.values and fresh.get(name) != self.values[name]:
                _log.logger.warning("Reload: %s cannot change without a restart; ignoring its new value", name)
                fresh[name] = self.values[name]
        self.values = fresh
        self.server.cfg = SimpleNamespace(**fresh)
        self.hook("on_reload", self.server)
        return fresh

    def _reexec(self) -> int:
        """USR2: fork and execute a new master on the same sockets; return its pid."""
        try:
            self._before_reexec()  # the pid file becomes PIDFILE.oldbin
        except OSError as error:
            _log.logger.warning("USR2: %s", error)
        env = dict(os.environ)
        env[FDS_VARIABLE] = ",".join(str(fd) for fd in self._fds)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        pid = os.fork()
        if pid == 0:
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                for fd in self._fds:
                    os.set_inheritable(fd, True)  # for this exec only: the child is nothing else
                self.hook("pre_exec", self.server)
                os.execve(sys.executable, sys.orig_argv, env)
            finally:
                os._exit(1)
        self.server.reexec_pid = pid
        self._on_reexec()
        _log.logger.info("Started a new master, pid %d", pid)
        return pid


def inherited_fds() -> list[int]:
    """The listening sockets an old master handed over (USR2), or [] when none.

    The variable is removed so that the application's subprocesses do not see it.
    """
    text = os.environ.pop(FDS_VARIABLE, "")
    fds = [int(part) for part in text.split(",") if part.strip().isdigit()]
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds
