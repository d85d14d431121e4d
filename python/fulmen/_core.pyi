"""Type stubs for ``fulmen._core``, the native extension holding the server.

Only ``fulmen.cli.serve`` calls it. The ``Options`` keys are the rows of
``fulmen.settings.SETTINGS`` plus ``script_mode`` and ``multiprocess``;
tests/test_cli.py checks that the two lists stay the same.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypedDict

#: A WSGI application, or a script-mode handler (which may also return a
#: single str or bytes as the whole body).
_App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes] | bytes | str]

class Options(TypedDict):
    """Every setting, typed and validated by ``fulmen.settings``."""

    # Listening sockets (already opened by Python; informational here).
    bind: list[str]
    backlog: int
    reuse_port: bool
    # Processes.
    workers: int  # >= 1; the master forks this many workers
    max_connections: int  # per worker
    graceful_timeout: float  # seconds, >= 0
    # Threads.
    threads: int  # >= 1; > 1 runs the application on a pool of threads per worker
    max_pending: int  # >= 0; parsed requests that may wait for a thread; 0 = 8 x threads
    request_timeout: float  # seconds, >= 0; 0 = off; an app call on a thread past it gets 504
    # Lifecycle (issue 8).
    preload_app: bool  # handled by Python: the master loaded the application
    max_requests: int  # >= 0; 0: never replace a worker for its request count
    max_requests_jitter: int  # >= 0; each worker adds a random 0..N
    timeout: float  # seconds without a loop turn before a worker is killed; 0: never
    error_logfile: str  # "-" (stderr) or an absolute path, reopened on USR1
    reload: bool  # watch the application's source files
    reload_extra_files: list[str]  # absolute paths, also watched
    # Server hooks (config file only; called by fulmen.lifecycle, None when unset).
    on_starting: Callable[..., Any] | None
    when_ready: Callable[..., Any] | None
    pre_fork: Callable[..., Any] | None
    post_fork: Callable[..., Any] | None
    post_worker_init: Callable[..., Any] | None
    worker_int: Callable[..., Any] | None
    worker_abort: Callable[..., Any] | None
    pre_exec: Callable[..., Any] | None
    pre_request: Callable[..., Any] | None
    post_request: Callable[..., Any] | None
    child_exit: Callable[..., Any] | None
    worker_exit: Callable[..., Any] | None
    nworkers_changed: Callable[..., Any] | None
    on_exit: Callable[..., Any] | None
    on_reload: Callable[..., Any] | None
    # Timeouts, in seconds (finite floats).
    keepalive_timeout: float  # >= 0; 0 disables keep-alive
    header_timeout: float  # > 0
    body_timeout: float  # > 0
    send_timeout: float  # > 0
    # HTTP limits.
    max_request_line: int  # bytes, -> 414
    max_header_size: int  # bytes of the whole head, -> 431
    max_headers: int  # 1..128, -> 431
    max_body_buffer: int  # bytes read before the application is called, >= 0
    max_body_size: int  # larger request bodies get 413; 0: no limit
    max_input_memory: int  # bytes of request data a worker may buffer beyond 16 KiB per connection
    server_header: str  # printable ASCII; "" = no Server header
    # Application.
    chdir: str  # already applied by Python; "" = unset
    root_path: str  # "" or "/x" without a trailing "/": the SCRIPT_NAME prefix
    # Access log (issue 9), written by the core.
    access_logfile: str  # path, "-" (stdout) or "" (none)
    access_logformat: str  # gunicorn's format language
    access_log_exclude: list[str]  # request paths not logged
    log_format: str  # "text" or "json"
    capture_output: bool  # stdout follows error_logfile too
    log_syslog: bool  # also send every log line to log_syslog_to
    log_syslog_to: str  # "udp://HOST:PORT" or "unix:PATH"
    metrics_bind: str  # "HOST:PORT" for GET /metrics from the master, "" = none
    # Proxies in front (issue 9).
    forwarded_allow_ips: str  # comma list of addresses / networks / "*" trusted for X-Forwarded-*, Forwarded
    proxy_protocol: str  # "off", "auto", "v1" or "v2": a PROXY header first from proxy_allow_from
    proxy_allow_from: str  # comma list of addresses / networks / "*" that send the PROXY header
    # Static files (issue 11), served by the core.
    static: list[str]  # "PREFIX=DIR" mounts, DIR absolute; script-mode folders included
    static_mime: list[str]  # "EXT=TYPE" over the built-in table
    static_max_age: int  # Cache-Control max-age; -1: no Cache-Control
    static_immutable: bool  # hashed names get a year and "immutable"
    static_follow_symlinks: bool  # follow symlinks leading out of DIR
    static_dotfiles: bool  # serve names starting with "."
    static_index: str  # file served for a directory; "" = directories are 404
    # Server mechanics (already applied by Python: pid file, daemon, users, titles).
    wsgi_app: str
    pidfile: str  # "" = none
    daemon: bool
    user: str | int | None
    group: str | int | None
    initgroups: bool
    umask: int
    pythonpath: list[str]
    raw_env: list[str]
    proc_name: str
    # Logging.
    log_level: str  # "debug" | "info" | "warning" | "error" | "critical"
    # Configuration and commands (already handled by Python).
    config: str
    check_config: bool
    print_config: bool
    # Added by fulmen.cli.serve.
    script_mode: bool  # target is a list of (prefix, handler) routes
    multiprocess: bool  # workers > 1, for wsgi.multiprocess

class _Lifecycle(Protocol):
    """``fulmen.lifecycle.Lifecycle``: what the core calls back."""

    def worker_load(self, age: int) -> _App | list[tuple[str, _App]] | int: ...
    def event(self, name: str, a: int, b: int) -> int: ...
    def reload(self) -> Options | None: ...
    def watch_files(self) -> list[str]: ...  # with options["reload"]
    def worker_int(self) -> None: ...
    def worker_exit(self) -> None: ...

def serve(
    lifecycle: _Lifecycle,
    listeners: Sequence[tuple[int, str, str]],
    options: Options,
) -> int:
    """Run the master process and its workers until stopped; blocking.

    In each new worker, ``lifecycle.worker_load(age)`` returns what to serve:
    the WSGI callable, or in script mode a list of ``(prefix, handler)``
    routes (each prefix starts with "/", has no trailing "/" unless it is "/",
    and is unique; the longest matching prefix wins: SCRIPT_NAME = root_path +
    prefix, PATH_INFO = the rest), or an exit status when it cannot (4: the
    application failed to load). The master calls ``lifecycle.event`` at each
    step (src/core/master.h, MasterEvent) and ``lifecycle.reload()`` on HUP.

    *listeners* are ``(fd, server_name, server_port)`` for sockets that are
    bound, listening and non-blocking; the caller owns them and
    keeps them open until this returns. For a unix socket, server_name is its
    path and server_port is "".

    Returns the master's exit status: 0 after a stop (SIGTERM, SIGINT,
    SIGQUIT), 3 when a worker failed to boot, 4 when the first worker could
    not load the application.
    """
