"""gunicorn's settings, as fulmen reads them: one table, one row per setting.

A gunicorn.conf.py and a gunicorn command line work with fulmen as they are,
for every setting fulmen has. Each row of ``GUNICORN`` names one setting of
gunicorn (its config-file name and its command-line flags, as in gunicorn's
``config.py``) and says what fulmen does with it:

* ``target``: the fulmen setting it sets, through ``convert`` where the units
  or the meaning differ (``limit_request_fields`` -> ``max_headers``). Where
  gunicorn's name is fulmen's own name (``bind``, ``workers``, ``pidfile``)
  the row only lends its flags to the command line.
* no target, or a target that is not in the settings table of this build:
  fulmen does not have the setting. The values that ``accepts`` lets through
  ask for nothing fulmen does not already do -- gunicorn's default, mostly,
  or ``worker_class = "sync"`` -- and are accepted; any other value is a
  ``NotSupported`` error naming the setting (exit 2). Nothing is ignored.

``note`` is the one sentence the error, ``--check-config`` and the migration
table in docs/deploy.md (``tools/gen_settings_doc.py``) show for the row.
The table names its targets by name, so a row whose target another branch
adds (``timeout``, ``threads``) works before and after that setting exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Final

from .settings import InvalidValue, _shown

__all__ = ["BY_FLAG", "BY_NAME", "GUNICORN", "GunicornSetting", "NotSupported", "translate"]

# How a flag reads its value on gunicorn's command line (argparse action).
VALUE: Final = "value"  # --flag VALUE
FLAG: Final = "flag"  # --flag (store_true): the value is True
APPEND: Final = "append"  # --flag VALUE, repeatable: the value is a list
OPTIONAL: Final = "optional"  # --flag [VALUE] (nargs="?")
OFF_FLAG: Final = "off"  # --no-sendfile (store_const False)


class NotSupported(InvalidValue):
    """A gunicorn setting fulmen does not have, set to a value that asks for it."""


def _never(raw: object) -> bool:
    return False


_never.__doc__ = ""


def _norm(raw: object) -> object:
    return raw.strip().lower() if isinstance(raw, str) else raw


def _one_of(*values: object) -> Callable[[object], bool]:
    """Accepts the given values (strings compared stripped and case-blind)."""
    wanted = [_norm(v) for v in values]

    def accepts(raw: object) -> bool:
        value = _norm(raw)
        return any(value == w and type(value) is type(w) for w in wanted)

    # What the docs show as the accepted values.
    accepts.__doc__ = ", ".join(f"`{v!r}`" for v in values if not (isinstance(v, str) and v.isdigit()))
    return accepts


def _pos_int(raw: object) -> int:
    """gunicorn's ``validate_pos_int``: an int, or text as ``int(text, 0)`` reads it; >= 0."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str):
        try:
            value = int(raw.strip(), 0)
        except ValueError:
            value = None
    if value is None or value < 0:
        raise InvalidValue(f"expected an integer >= 0, got {_shown(raw)}")
    return value


# ---- conversions onto fulmen's limits (docs/deploy.md explains each) ----

#: gunicorn's own caps, from gunicorn/http/message.py.
_GUNICORN_MAX_LINE: Final = 8190
_GUNICORN_UNLIMITED_LINE: Final = 1 << 20
_GUNICORN_DEFAULT_FIELD: Final = 8190
#: fulmen's hard maximum of header fields (the parser's fixed array).
_FULMEN_MAX_HEADERS: Final = 128
#: fulmen's default head size: the alias never lowers the head limit below it.
_FULMEN_HEAD: Final = 65536


def _request_line(raw: object) -> int:
    # gunicorn: 0 means unlimited (its parser stops at 1 MiB), larger than
    # 8190 is cut to 8190. The line must still fit in max_header_size.
    value = _pos_int(raw)
    if value == 0:
        return _GUNICORN_UNLIMITED_LINE
    return min(value, _GUNICORN_MAX_LINE)


def _header_fields(raw: object) -> int:
    # gunicorn: 0 means its maximum, 32768; fulmen's maximum is 128.
    value = _pos_int(raw)
    if value == 0:
        return _FULMEN_MAX_HEADERS
    if value > _FULMEN_MAX_HEADERS:
        raise InvalidValue(
            f"fulmen accepts at most {_FULMEN_MAX_HEADERS} header fields (max_headers), got {_shown(raw)}"
        )
    return value


def _field_size(raw: object) -> int:
    # gunicorn limits each header line; fulmen limits the whole head. One
    # field of this size must fit beside a full request line, and the head
    # limit never drops below fulmen's default. gunicorn reads 0 as 8190.
    value = _pos_int(raw) or _GUNICORN_DEFAULT_FIELD
    return max(_FULMEN_HEAD, value + 2 + _GUNICORN_MAX_LINE + 2)


def _existing_dir_or_none(raw: object) -> bool:
    """an existing directory"""
    if raw is None:
        return True
    if isinstance(raw, str) and os.path.isdir(raw):
        return True
    raise InvalidValue(f"no such directory {_shown(raw)}")


def _any(raw: object) -> bool:
    """any value"""
    return True


def _default_control_socket(raw: object) -> bool:
    """gunicorn's default path (`.../gunicorn.ctl`)"""
    return raw is None or (isinstance(raw, str) and raw.endswith("gunicorn.ctl"))


_SYNC_WORKERS: Final = (
    "sync", "gthread", "gunicorn.workers.sync.SyncWorker", "gunicorn.workers.gthread.ThreadWorker",
)


@dataclass(frozen=True)
class GunicornSetting:
    """One gunicorn setting and what fulmen does with it (see the module doc)."""

    name: str
    flags: tuple[str, ...]
    kind: str
    note: str
    target: str | None = None
    convert: Callable[[object], object] | None = None
    accepts: Callable[[object], bool] = _never

    @property
    def label(self) -> str:
        """How the command line names it: its long flag."""
        longs = [f for f in self.flags if f.startswith("--")]
        return longs[0] if longs else self.name


def _same(name: str, flags: tuple[str, ...], kind: str = VALUE, note: str = "same name") -> GunicornSetting:
    """A gunicorn setting with fulmen's own name (fulmen's or another branch's row)."""
    return GunicornSetting(name, flags, kind, note, target=name)


def _later(name: str, flags: tuple[str, ...], kind: str, note: str, accepts: Callable[[object], bool],
           target: str | None = None) -> GunicornSetting:
    """A setting fulmen may not have; *accepts* the values that ask for nothing fulmen lacks."""
    return GunicornSetting(name, flags, kind, note, target=target or name, accepts=accepts)


def _lacks(name: str, flags: tuple[str, ...], kind: str, note: str,
           accepts: Callable[[object], bool] = _never) -> GunicornSetting:
    return GunicornSetting(name, flags, kind, note, accepts=accepts)


_HOOK_NOTE: Final = "server hook with gunicorn's name and signature (docs/lifecycle.md)"
_DIRTY_NOTE: Final = "gunicorn's dirty arbiters (a second pool for long jobs) have no fulmen equivalent"
_TLS_NOTE: Final = "fulmen speaks plain HTTP: terminate TLS in the proxy in front"
_H2_NOTE: Final = "fulmen speaks HTTP/1.x only; the proxy in front may speak HTTP/2 to clients"
_LOG_NOTE: Final = "fulmen writes its own log format to stderr (or --error-logfile)"
_STATSD_NOTE: Final = "fulmen sends no metrics"
_PARSER_NOTE: Final = "fulmen's parser is strict and has no switches for non-standard requests"
_ASGI_NOTE: Final = "fulmen is a WSGI server"

GUNICORN: Final[tuple[GunicornSetting, ...]] = (
    # ---- config file ----
    _same("config", ("-c", "--config")),
    _same("wsgi_app", ()),
    # ---- server socket ----
    _same("bind", ("-b", "--bind"), APPEND),
    _same("backlog", ("--backlog",)),
    # ---- worker processes ----
    _same("workers", ("-w", "--workers")),
    _lacks("worker_class", ("-k", "--worker-class"), VALUE,
           "fulmen has one worker, an event loop per process; 'sync' and 'gthread' name it",
           _one_of(*_SYNC_WORKERS)),
    _later("threads", ("--threads",), VALUE, "threads per worker", _one_of(1, "1")),
    GunicornSetting("worker_connections", ("--worker-connections",), VALUE,
                    "connections per worker: max_connections", target="max_connections"),
    _later("max_requests", ("--max-requests",), VALUE, "recycle a worker after N requests", _one_of(0, "0")),
    _later("max_requests_jitter", ("--max-requests-jitter",), VALUE, "random extra requests before recycling",
           _one_of(0, "0")),
    _later("timeout", ("-t", "--timeout"), VALUE, "kill a worker stuck this long", _one_of(30, "30")),
    _same("graceful_timeout", ("--graceful-timeout",)),
    GunicornSetting("keepalive", ("--keep-alive",), VALUE, "seconds: keepalive_timeout", target="keepalive_timeout"),
    # ---- security ----
    GunicornSetting("limit_request_line", ("--limit-request-line",), VALUE,
                    "max_request_line; 0 (unlimited) is 1 MiB and more than 8190 is 8190, as in gunicorn",
                    target="max_request_line", convert=_request_line),
    GunicornSetting("limit_request_fields", ("--limit-request-fields",), VALUE,
                    "max_headers; 0 (gunicorn's maximum) is fulmen's maximum, 128; more than 128 is refused",
                    target="max_headers", convert=_header_fields),
    GunicornSetting("limit_request_field_size", ("--limit-request-field_size",), VALUE,
                    "fulmen limits the whole head: max_header_size becomes max(65536, N + 8194), room for "
                    "one field of N bytes beside a full request line; 0 means 8190, as in gunicorn",
                    target="max_header_size", convert=_field_size),
    # ---- debugging ----
    _later("reload", ("--reload",), FLAG, "restart workers when the code changes", _one_of(False)),
    _lacks("reload_engine", ("--reload-engine",), VALUE, "fulmen's --reload watches files with inotify (libuv)",
           _one_of("auto", "inotify")),
    _later("reload_extra_files", ("--reload-extra-file",), APPEND, "more files to watch with --reload",
           _one_of([])),
    _lacks("spew", ("--spew",), FLAG, "no line tracing: use a debugger or faulthandler", _one_of(False)),
    _same("check_config", ("--check-config",), FLAG),
    _same("print_config", ("--print-config",), FLAG),
    # ---- server mechanics ----
    _later("preload_app", ("--preload",), FLAG, "import the application in the master", _any),
    _lacks("sendfile", ("--no-sendfile",), OFF_FLAG, "fulmen always sends wsgi.file_wrapper files with sendfile(2)",
           _one_of(None, True)),
    _same("reuse_port", ("--reuse-port",), FLAG),
    _same("chdir", ("--chdir",)),
    _same("daemon", ("-D", "--daemon"), FLAG),
    _same("raw_env", ("-e", "--env"), APPEND),
    _same("pidfile", ("-p", "--pid")),
    _lacks("worker_tmp_dir", ("--worker-tmp-dir",), VALUE,
           "checked to be a directory; fulmen's workers keep no heartbeat file, so nothing is written there",
           _existing_dir_or_none),
    _same("user", ("-u", "--user")),
    _same("group", ("-g", "--group")),
    _same("umask", ("-m", "--umask")),
    _same("initgroups", ("--initgroups",), FLAG),
    _lacks("tmp_upload_dir", (), VALUE, "unused by gunicorn itself; fulmen never spools bodies to disk",
           _one_of(None)),
    _later("secure_scheme_headers", (), VALUE, "trusted headers that set wsgi.url_scheme",
           _one_of({"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"})),
    _later("forwarded_allow_ips", ("--forwarded-allow-ips",), VALUE, "proxies trusted for X-Forwarded-*",
           _one_of("127.0.0.1,::1", "127.0.0.1, ::1")),
    # ---- logging ----
    _later("accesslog", ("--access-logfile",), VALUE, "access log", _one_of(None), target="access_logfile"),
    _lacks("disable_redirect_access_to_syslog", ("--disable-redirect-access-to-syslog",), FLAG, _LOG_NOTE,
           _one_of(False)),
    _later("access_log_format", ("--access-logformat",), VALUE, "access log format",
           _one_of('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'), target="access_logformat"),
    _later("errorlog", ("--error-logfile", "--log-file"), VALUE, "file for fulmen's log; '-' is stderr",
           _one_of("-"), target="error_logfile"),
    GunicornSetting("loglevel", ("--log-level",), VALUE, "log_level", target="log_level"),
    _same("capture_output", ("--capture-output",), FLAG),
    _lacks("logger_class", ("--logger-class",), VALUE, _LOG_NOTE,
           _one_of("gunicorn.glogging.Logger", "simple")),
    _lacks("logconfig", ("--log-config",), VALUE, _LOG_NOTE, _one_of(None)),
    _lacks("logconfig_dict", (), VALUE, _LOG_NOTE, _one_of({})),
    _lacks("logconfig_json", ("--log-config-json",), VALUE, _LOG_NOTE, _one_of(None)),
    GunicornSetting("syslog_addr", ("--log-syslog-to",), VALUE, "log_syslog_to", target="log_syslog_to"),
    GunicornSetting("syslog", ("--log-syslog",), FLAG, "log_syslog", target="log_syslog"),
    _lacks("syslog_prefix", ("--log-syslog-prefix",), VALUE, _LOG_NOTE, _one_of(None)),
    _lacks("syslog_facility", ("--log-syslog-facility",), VALUE, _LOG_NOTE, _one_of("user")),
    _lacks("enable_stdio_inheritance", ("-R", "--enable-stdio-inheritance"), FLAG,
           "always so: a --daemon keeps a stdout/stderr that is not a terminal", _any),
    _lacks("statsd_host", ("--statsd-host",), VALUE, _STATSD_NOTE, _one_of(None)),
    _lacks("dogstatsd_tags", ("--dogstatsd-tags",), VALUE, _STATSD_NOTE, _one_of("")),
    _lacks("statsd_prefix", ("--statsd-prefix",), VALUE, _STATSD_NOTE, _one_of("")),
    _lacks("enable_backlog_metric", ("--enable-backlog-metric",), FLAG, _STATSD_NOTE, _one_of(False)),
    # ---- process naming ----
    _same("proc_name", ("-n", "--name")),
    _lacks("default_proc_name", (), VALUE, "fulmen's default name is TARGET; set proc_name",
           _one_of("gunicorn")),
    # ---- server mechanics (continued) ----
    _same("pythonpath", ("--pythonpath",)),
    _lacks("paste", ("--paste", "--paster"), VALUE, "no PasteDeploy: give TARGET (MODULE:CALLABLE)",
           _one_of(None)),
    # ---- server hooks ----
    *(
        _later(hook, (), VALUE, _HOOK_NOTE, _never)
        for hook in (
            "on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init",
            "worker_int", "worker_abort", "pre_exec", "pre_request", "post_request", "child_exit",
            "worker_exit", "nworkers_changed", "on_exit",
        )
    ),
    _lacks("ssl_context", (), VALUE, _TLS_NOTE),
    _later("proxy_protocol", ("--proxy-protocol",), OPTIONAL, "PROXY protocol header from the proxy in front",
           _one_of("off", None, False)),
    _later("proxy_allow_ips", ("--proxy-allow-from",), VALUE, "proxies trusted to send the PROXY header",
           _one_of("127.0.0.1,::1", "127.0.0.1, ::1"), target="proxy_allow_from"),
    _lacks("protocol", ("--protocol",), VALUE, "fulmen speaks HTTP only, not uwsgi", _one_of("http")),
    _lacks("uwsgi_allow_ips", ("--uwsgi-allow-from",), VALUE, "fulmen speaks HTTP only, not uwsgi",
           _one_of("127.0.0.1,::1", "127.0.0.1, ::1")),
    # ---- SSL ----
    _lacks("keyfile", ("--keyfile",), VALUE, _TLS_NOTE, _one_of(None)),
    _lacks("certfile", ("--certfile",), VALUE, _TLS_NOTE, _one_of(None)),
    _lacks("ssl_version", ("--ssl-version",), VALUE, "deprecated and ignored by gunicorn itself", _any),
    _lacks("cert_reqs", ("--cert-reqs",), VALUE, _TLS_NOTE, _one_of(0, "0")),
    _lacks("ca_certs", ("--ca-certs",), VALUE, _TLS_NOTE, _one_of(None)),
    _lacks("suppress_ragged_eofs", ("--suppress-ragged-eofs",), FLAG, _TLS_NOTE, _one_of(True)),
    _lacks("do_handshake_on_connect", ("--do-handshake-on-connect",), FLAG, _TLS_NOTE, _one_of(False)),
    _lacks("ciphers", ("--ciphers",), VALUE, _TLS_NOTE, _one_of(None)),
    # ---- HTTP/2 ----
    _lacks("http_protocols", ("--http-protocols",), VALUE, _H2_NOTE, _one_of("h1")),
    _lacks("http2_cleartext", ("--http2-cleartext",), VALUE, _H2_NOTE, _one_of("off", None, False)),
    _lacks("http2_max_concurrent_streams", ("--http2-max-concurrent-streams",), VALUE, _H2_NOTE,
           _one_of(100, "100")),
    _lacks("http2_initial_window_size", ("--http2-initial-window-size",), VALUE, _H2_NOTE,
           _one_of(65535, "65535")),
    _lacks("http2_max_frame_size", ("--http2-max-frame-size",), VALUE, _H2_NOTE, _one_of(16384, "16384")),
    _lacks("http2_max_header_list_size", ("--http2-max-header-list-size",), VALUE, _H2_NOTE,
           _one_of(65536, "65536")),
    _lacks("raw_paste_global_conf", ("--paste-global",), APPEND, "no PasteDeploy", _one_of([])),
    # ---- HTTP parsing ----
    _lacks("permit_obsolete_folding", ("--permit-obsolete-folding",), FLAG, _PARSER_NOTE, _one_of(False)),
    _lacks("strip_header_spaces", ("--strip-header-spaces",), FLAG, _PARSER_NOTE, _one_of(False)),
    _lacks("permit_unconventional_http_method", ("--permit-unconventional-http-method",), FLAG, _PARSER_NOTE,
           _one_of(False)),
    _lacks("permit_unconventional_http_version", ("--permit-unconventional-http-version",), FLAG, _PARSER_NOTE,
           _one_of(False)),
    _lacks("casefold_http_method", ("--casefold-http-method",), FLAG, _PARSER_NOTE, _one_of(False)),
    _lacks("forwarder_headers", ("--forwarder-headers",), VALUE,
           "fulmen takes SCRIPT_NAME from --root-path, not from request headers",
           _one_of("SCRIPT_NAME,PATH_INFO")),
    _lacks("header_map", ("--header-map",), VALUE,
           "fulmen always drops header names with '_' (gunicorn's 'drop')", _one_of("drop")),
    # ---- ASGI ----
    _lacks("asgi_loop", ("--asgi-loop",), VALUE, _ASGI_NOTE, _one_of("auto")),
    _lacks("asgi_lifespan", ("--asgi-lifespan",), VALUE, _ASGI_NOTE, _one_of("auto")),
    _lacks("asgi_disconnect_grace_period", ("--asgi-disconnect-grace-period",), VALUE, _ASGI_NOTE,
           _one_of(3, "3")),
    _lacks("http_parser", ("--http-parser",), VALUE, "fulmen has one parser, in C++", _one_of("auto")),
    _same("root_path", ("--root-path",)),
    # ---- dirty arbiters ----
    _lacks("dirty_apps", ("--dirty-app",), APPEND, _DIRTY_NOTE, _one_of([])),
    _lacks("dirty_workers", ("--dirty-workers",), VALUE, _DIRTY_NOTE, _one_of(0, "0")),
    _lacks("dirty_timeout", ("--dirty-timeout",), VALUE, _DIRTY_NOTE, _one_of(300, "300")),
    _lacks("dirty_threads", ("--dirty-threads",), VALUE, _DIRTY_NOTE, _one_of(1, "1")),
    _lacks("dirty_graceful_timeout", ("--dirty-graceful-timeout",), VALUE, _DIRTY_NOTE, _one_of(30, "30")),
    _lacks("on_dirty_starting", (), VALUE, _DIRTY_NOTE),
    _lacks("dirty_post_fork", (), VALUE, _DIRTY_NOTE),
    _lacks("dirty_worker_init", (), VALUE, _DIRTY_NOTE),
    _lacks("dirty_worker_exit", (), VALUE, _DIRTY_NOTE),
    # ---- control socket ----
    _lacks("control_socket", ("--control-socket",), VALUE, "no control socket: use signals (docs/lifecycle.md)",
           _default_control_socket),
    _lacks("control_socket_mode", ("--control-socket-mode",), VALUE, "no control socket",
           _one_of(0o600, "0o600", "0600", "384")),
    _lacks("control_socket_disable", ("--no-control-socket",), FLAG, "there is no control socket to disable",
           _any),
)

BY_NAME: Final[dict[str, GunicornSetting]] = {row.name: row for row in GUNICORN}
BY_FLAG: Final[dict[str, GunicornSetting]] = {flag: row for row in GUNICORN for flag in row.flags}


def translate(row: GunicornSetting, raw: object, known: Container[str]) -> tuple[str | None, object]:
    """What *raw*, given to gunicorn's setting *row*, means for fulmen.

    Returns ``(setting name, raw value for that setting)``, or ``(None, raw)``
    when the value is accepted with nothing to set. Raises ``InvalidValue``
    for a value the conversion refuses and ``NotSupported`` for a setting
    fulmen does not have (*known* holds the names of the settings it has).
    """
    if row.target is not None and row.target in known:
        return row.target, row.convert(raw) if row.convert else raw
    if row.accepts(raw):
        return None, raw
    shown = "a function" if callable(raw) and not isinstance(raw, type) else _shown(raw)
    if row.target is not None:
        raise NotSupported(f"gunicorn setting this build of fulmen does not have (got {shown}): {row.note}")
    raise NotSupported(f"gunicorn setting not supported by fulmen (got {shown}): {row.note}")
