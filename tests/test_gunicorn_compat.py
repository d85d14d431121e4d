"""gunicorn's config files and command lines, run by fulmen as they are (issue 8).

The alias table is python/fulmen/gunicorn.py. These tests run the real
command: ``--check-config`` and ``--print-config`` say what each gunicorn
name became, a server started from a gunicorn.conf.py or a long gunicorn
command line serves with those values, and every setting fulmen lacks or
value it refuses is one line and exit status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import APPS, Server, read_response, recv_until_closed, request
from test_cli import effective, fulmen_cmd, one_error_line

TYPICAL_CONF = """\
import multiprocessing

bind = "127.0.0.1:0"
workers = 2
worker_class = "sync"
timeout = 30
graceful_timeout = 10
keepalive = 1
loglevel = "debug"
errorlog = "-"
accesslog = None
raw_env = ["GREETING=hello from raw_env"]
pidfile = {pidfile!r}
limit_request_line = 100
limit_request_fields = 50
limit_request_field_size = 16380
forwarded_allow_ips = "127.0.0.1,::1"
proc_name = "typical"
backlog = 512

def _helper():  # helpers and modules in the file are left alone
    return multiprocessing.cpu_count()
"""


def wait_ready(srv: Server, workers: int) -> None:
    """Waits for *workers* ready lines (the fixture counts -w only) and resets the fd baselines."""
    deadline = time.monotonic() + 20
    while sum(" ready" in line for line in srv.lines) < workers:
        assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log
        time.sleep(0.02)
    srv.baseline_fds = {pid: srv.fd_count(pid) for pid in srv.worker_pids()}
    srv.baseline_sockets = {pid: srv.socket_fds(pid) for pid in srv.worker_pids()}


def get(srv: Server, target: str) -> tuple[int, bytes]:
    status, _, body, _ = request(srv, f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    return status, body


# ---- a typical gunicorn.conf.py ------------------------------------------------


def test_typical_conf_check_config_reports_each_mapping(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text(TYPICAL_CONF.format(pidfile=str(tmp_path / "app.pid")))
    result = fulmen_cmd("-c", "gunicorn.conf.py", "--check-config", "opsapp", cwd=tmp_path,
                        env={"PYTHONPATH": str(APPS)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "OK"
    report = "\n".join(lines)
    # Each gunicorn name that maps onto a fulmen setting: the typed value, then where it came from.
    assert "keepalive_timeout = 1.0  # gunicorn.conf.py: keepalive = 1 " in report
    assert "log_level = 'debug'  # gunicorn.conf.py: loglevel = 'debug' " in report
    assert "max_request_line = 100  # gunicorn.conf.py: limit_request_line = 100 " in report
    assert "max_headers = 50  # gunicorn.conf.py: limit_request_fields = 50 " in report
    assert "max_header_size = 65536  # gunicorn.conf.py: limit_request_field_size = 16380 " in report
    # Names that ask for nothing fulmen lacks are accepted, and said so.
    assert "# gunicorn.conf.py: worker_class = 'sync': accepted" in report
    # accesslog and errorlog are accepted at gunicorn's defaults, or map onto the
    # settings of issue 9 and of the lifecycle work once those exist.
    assert "# gunicorn.conf.py: accesslog = None: accepted" in report or "access_logfile" in report
    assert "# gunicorn.conf.py: errorlog = '-': accepted" in report or "error_logfile = '-'" in report

    values = effective(fulmen_cmd("-c", "gunicorn.conf.py", "--print-config", cwd=tmp_path))
    assert values["workers"] == (2, "gunicorn.conf.py")
    assert values["keepalive_timeout"] == (1.0, "gunicorn.conf.py: keepalive")
    assert values["graceful_timeout"] == (10.0, "gunicorn.conf.py")
    assert values["raw_env"] == (["GREETING=hello from raw_env"], "gunicorn.conf.py")
    assert values["pidfile"] == (str(tmp_path / "app.pid"), "gunicorn.conf.py")
    assert values["backlog"] == (512, "gunicorn.conf.py")
    assert values["proc_name"] == ("typical", "gunicorn.conf.py")


def test_typical_conf_serves_with_its_values(serve, tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    (tmp_path / "gunicorn.conf.py").write_text(TYPICAL_CONF.format(pidfile=str(pidfile)))
    srv = serve("-c", str(tmp_path / "gunicorn.conf.py"), "opsapp", cwd=tmp_path)
    wait_ready(srv, 2)
    assert len(srv.worker_pids()) == 2  # workers = 2
    assert get(srv, "/?env=GREETING") == (200, b"hello from raw_env")  # raw_env
    assert int(pidfile.read_text()) == srv.proc.pid  # pidfile
    # loglevel = "debug": the settings line is logged, with the mapped values.
    (settings_line,) = [line for line in srv.lines if "[DEBUG] Settings: " in line]
    assert "keepalive_timeout=1.0" in settings_line and "max_headers=50" in settings_line
    # limit_request_line = 100: a longer request line is refused with 414.
    assert get(srv, "/?env=" + "x" * 120)[0] == 414
    # keepalive = 1: an idle keep-alive connection is closed after about a second.
    with srv.connect() as s:
        s.sendall(b"GET /who HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(s)[0] == 200
        started = time.monotonic()
        assert recv_until_closed(s, timeout=10) == b""
        assert time.monotonic() - started < 5
    with open(f"/proc/{srv.proc.pid}/cmdline", "rb") as handle:
        assert handle.read().startswith(b"fulmen: master [typical]")


# ---- a long gunicorn command line ------------------------------------------------


def test_long_gunicorn_command_line(serve, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "from_lib.py").write_text("VALUE = 'imported from --pythonpath'\n")
    pidfile = tmp_path / "x.pid"
    srv = serve(
        "-w", "2", "-b", "127.0.0.1:0", "--keep-alive", "5", "--log-level", "debug",
        "--limit-request-line", "4094", "--pid", str(pidfile), "-e", "A=B", "--env", "C=D=E",
        "--pythonpath", "lib", "-n", "myapp", "opsapp:application",
        cwd=tmp_path,
    )
    assert len(srv.worker_pids()) == 2
    assert get(srv, "/?env=A") == (200, b"B")
    assert get(srv, "/?env=C") == (200, b"D=E")
    assert get(srv, "/?import=from_lib") == (200, b"imported from --pythonpath")
    assert int(pidfile.read_text()) == srv.proc.pid
    for pid in srv.worker_pids():
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert handle.read().startswith(b"fulmen: worker [myapp]")
    # The values, as the same command line resolves them.
    values = effective(fulmen_cmd("-w", "2", "--keep-alive", "5", "--log-level", "debug",
                                  "--limit-request-line", "4094", "-e", "A=B", "-n", "myapp",
                                  "--print-config", cwd=tmp_path))
    assert values["keepalive_timeout"] == (5.0, "--keep-alive")
    assert values["max_request_line"] == (4094, "--limit-request-line")
    assert values["log_level"] == ("debug", "--log-level")
    assert values["raw_env"] == (["A=B"], "--raw-env")
    assert values["proc_name"] == ("myapp", "--proc-name")


# ---- how the limits map ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name", "value"),
    [
        (["--limit-request-line", "4094"], "max_request_line", 4094),
        (["--limit-request-line", "0"], "max_request_line", 1 << 20),  # gunicorn: unlimited (1 MiB)
        (["--limit-request-line", "9000"], "max_request_line", 8190),  # gunicorn caps at 8190
        (["--limit-request-fields", "0"], "max_headers", 128),  # gunicorn's maximum -> fulmen's
        (["--limit-request-fields", "20"], "max_headers", 20),
        (["--limit-request-field_size", "0"], "max_header_size", 65536),  # gunicorn reads 0 as 8190
        (["--limit-request-field_size", "8190"], "max_header_size", 65536),
        (["--limit-request-field_size", "100000"], "max_header_size", 100000 + 8194),
        (["--worker-connections", "1000"], "max_connections", 1000),
        (["-m", "022"], "umask", 0o22),  # gunicorn reads a leading 0 as octal
        (["--umask", "0o077"], "umask", 0o77),
        (["--umask", "18"], "umask", 18),
    ],
)
def test_limit_and_value_mappings(tmp_path: Path, args: list[str], name: str, value: int) -> None:
    assert effective(fulmen_cmd(*args, "--print-config", cwd=tmp_path))[name][0] == value


def test_field_size_limit_lets_a_big_header_through(serve, tmp_path: Path) -> None:
    srv = serve("--limit-request-field_size", "100000", "opsapp", cwd=tmp_path)
    cookie = "c=" + "x" * 90000
    status, _, _, _ = request(srv, f"GET /who HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\r\n".encode())
    assert status == 200


# ---- settings fulmen does not have: one line, exit 2 -----------------------------


@pytest.mark.parametrize(
    ("args", "conf", "expected"),
    [
        (["-k", "eventlet"], None, "fulmen: error: --worker-class: gunicorn setting not supported by fulmen "
                                   "(got 'eventlet')"),
        (["--worker-class=gevent"], None, "fulmen: error: --worker-class: gunicorn setting not supported"),
        ([], 'worker_class = "gevent"\n', "fulmen: error: gunicorn.conf.py: worker_class: gunicorn setting "
                                          "not supported by fulmen (got 'gevent')"),
        ([], "class Custom:\n    pass\n\nworker_class = Custom\n", "gunicorn.conf.py: worker_class: "),
        ([], 'certfile = "/etc/ssl/cert.pem"\n', "gunicorn.conf.py: certfile: gunicorn setting not supported"),
        ([], 'statsd_host = "localhost:8125"\n', "gunicorn.conf.py: statsd_host: "),
        ([], "def ssl_context(conf, default):\n    return default()\n", "ssl_context: "),
        (["--certfile", "cert.pem"], None, "fulmen: error: --certfile: gunicorn setting not supported"),
        (["--spew"], None, "fulmen: error: --spew: gunicorn setting not supported"),
        (["--no-sendfile"], None, "fulmen: error: --no-sendfile: gunicorn setting not supported"),
        (["--paste", "development.ini"], None, "fulmen: error: --paste: gunicorn setting not supported"),
        # gunicorn's flag is fulmen's too; with no syslog daemon on /dev/log it is one line and exit 2.
        (["--log-syslog", "--log-syslog-to", "unix:///nonexistent/log"], None,
         "fulmen: error: --log-syslog: cannot reach 'unix:///nonexistent/log': No such file or directory"),
        (["--http-protocols", "h2,h1"], None, "fulmen: error: --http-protocols: gunicorn setting not supported"),
    ],
)
def test_gunicorn_setting_fulmen_lacks(tmp_path: Path, args: list[str], conf: str | None, expected: str) -> None:
    (tmp_path / "webapp.py").write_text("def application(e, s):\n    return []\n")
    if conf is not None:
        (tmp_path / "gunicorn.conf.py").write_text(conf)
        args = ["-c", "gunicorn.conf.py", *args]
    for extra in ([], ["--check-config"]):
        result = fulmen_cmd(*args, *extra, "webapp", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert expected in one_error_line(result)
        assert result.stdout == ""


def test_gunicorn_defaults_are_accepted(tmp_path: Path) -> None:
    # Values that ask for nothing fulmen does not do: gunicorn's defaults, the sync/gthread worker.
    (tmp_path / "gunicorn.conf.py").write_text(textwrap.dedent("""\
        worker_class = "gthread"
        sendfile = None
        proxy_protocol = "off"
        keyfile = None
        certfile = None
        statsd_host = None
        logconfig_dict = {}
        http_protocols = "h1"
        header_map = "drop"
        enable_stdio_inheritance = True
        reload_engine = "auto"
        control_socket_disable = True
        secure_scheme_headers = {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https",
                                 "X-FORWARDED-SSL": "on"}
        wsgi_app = "webapp:application"
    """))
    (tmp_path / "webapp.py").write_text("def application(e, s):\n    return []\n")
    result = fulmen_cmd("-c", "gunicorn.conf.py", "--check-config", cwd=tmp_path)  # TARGET from wsgi_app
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "OK"
    assert "# gunicorn.conf.py: worker_class = 'gthread': accepted" in result.stdout
    assert "# gunicorn.conf.py: sendfile = None: accepted" in result.stdout


# ---- bad values: one line naming the setting, exit 2 --------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--keep-alive", "soon"], "--keep-alive: expected a number of seconds >= 0, got 'soon'"),
        (["--limit-request-line", "-1"], "--limit-request-line: expected an integer >= 0, got '-1'"),
        (["--limit-request-line", "many"], "--limit-request-line: expected an integer >= 0, got 'many'"),
        (["--limit-request-fields", "200"], "--limit-request-fields: fulmen accepts at most 128 header fields"),
        (["--limit-request-field_size", "x"], "--limit-request-field_size: expected an integer >= 0"),
        (["--worker-connections", "0"], "--worker-connections: expected an integer >= 1, got '0'"),
        (["--log-level", "loud"], "--log-level: expected one of debug, info, warning, error, critical"),
        (["-w", "none"], "--workers: expected an integer >= 1, got 'none'"),
        (["--umask", "0o1000"], "--umask: expected a umask from 0 to 0o777"),
        (["-m", "abc"], "--umask: expected a umask from 0 to 0o777"),
        (["--user", "no-such-user-here"], "--user: no such user 'no-such-user-here'"),
        (["-g", "no-such-group-here"], "--group: no such group 'no-such-group-here'"),
        (["-e", "NOEQUALS"], "--raw-env: expected KEY=VALUE, got 'NOEQUALS'"),
        (["--env", "=value"], "--raw-env: expected KEY=VALUE, got '=value'"),
        (["--pid", "/no/such/dir/x.pid"], "--pidfile: no such directory '/no/such/dir' for '/no/such/dir/x.pid'"),
        (["--pythonpath", "no-such-dir"], "--pythonpath: no such directory 'no-such-dir'"),
        (["--worker-tmp-dir", "/no/such/dir"], "--worker-tmp-dir: no such directory '/no/such/dir'"),
        (["-n", "bad\nname"], "--proc-name: expected printable text"),
        (["--keep-alive", "3", "--keepalive-timeout", "4"],
         "--keep-alive: sets keepalive_timeout, which --keepalive-timeout sets too"),
    ],
)
def test_bad_value_is_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "webapp.py").write_text("def application(e, s):\n    return []\n")
    result = fulmen_cmd(*args, "--check-config", "webapp", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_error_line(result).startswith(f"fulmen: error: {expected}")


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ("keepalive = 'soon'\n", "gunicorn.conf.py: keepalive: expected a number of seconds >= 0, got 'soon'"),
        ("limit_request_fields = 1000\n", "gunicorn.conf.py: limit_request_fields: fulmen accepts at most 128"),
        ("umask = 'abc'\n", "gunicorn.conf.py: umask: expected a umask"),
        ("raw_env = 5\n", "gunicorn.conf.py: raw_env: expected a list of KEY=VALUE strings, got 5"),
        ("user = 'no-such-user-here'\n", "gunicorn.conf.py: user: no such user 'no-such-user-here'"),
        ("daemon = 'maybe'\n", "gunicorn.conf.py: daemon: expected a boolean"),
        ("keepalive = 3\nkeepalive_timeout = 4\n",
         "gunicorn.conf.py: keepalive: sets keepalive_timeout, which gunicorn.conf.py: keepalive_timeout sets too"),
    ],
)
def test_bad_value_in_conf_is_one_line(tmp_path: Path, conf: str, expected: str) -> None:
    (tmp_path / "gunicorn.conf.py").write_text(conf)
    (tmp_path / "webapp.py").write_text("def application(e, s):\n    return []\n")
    result = fulmen_cmd("-c", "gunicorn.conf.py", "--check-config", "webapp", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_error_line(result).startswith(f"fulmen: error: {expected}")


# ---- hints for unknown names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "hint"),
    [
        ("--wokers", "--workers"),
        ("--keepalive", "--keep-alive"),
        ("--limit-request-lines", "--limit-request-line"),
        ("--frobnicate-timeout", None),  # shares a word with --header-timeout: no hint
        ("--bind-address", None),
    ],
)
def test_unknown_option_hints_only_likely_typos(tmp_path: Path, flag: str, hint: str | None) -> None:
    result = fulmen_cmd(flag, "1", "webapp", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    if hint is None:
        assert line == f"fulmen: error: {flag}: unknown option"
    else:
        assert line == f"fulmen: error: {flag}: unknown option (did you mean {hint}?)"


def test_gunicorn_names_typo_in_conf_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text("keep_alive = 4\n")
    result = fulmen_cmd("-c", "gunicorn.conf.py", "--print-config", cwd=tmp_path)
    assert result.returncode == 0
    assert "did you mean 'keepalive'?" in result.stderr


def test_fulmen_run_accepts_gunicorn_names(tmp_path: Path) -> None:
    # fulmen.run() takes gunicorn's names as keywords too; an unsupported one raises ValueError.
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""\
        import fulmen
        def app(e, s):
            return []
        try:
            fulmen.run(app, worker_class="gevent")
        except ValueError as error:
            print("refused:", error)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60,
                         cwd=tmp_path)
    assert out.stdout.startswith("refused: worker_class: gunicorn setting not supported by fulmen"), out



def test_gunicorn_conf_in_current_directory_is_read_without_c(tmp_path: Path) -> None:
    # As gunicorn: "gunicorn app" -> "fulmen app" reads ./gunicorn.conf.py too.
    (tmp_path / "gunicorn.conf.py").write_text("workers = 3\nkeepalive = 7\n")
    result = fulmen_cmd("--print-config", cwd=tmp_path)
    values = effective(result)
    assert values["workers"] == (3, "gunicorn.conf.py")
    assert values["keepalive_timeout"] == (7.0, "gunicorn.conf.py: keepalive")
    assert "Reading ./gunicorn.conf.py, gunicorn's default config file" in result.stderr
    (tmp_path / "other.py").write_text("workers = 5\n")
    assert effective(fulmen_cmd("-c", "other.py", "--print-config", cwd=tmp_path))["workers"] == (5, "other.py")


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("unix:///tmp/x.sock", "unix:/tmp/x.sock"), ("unix:/tmp/x.sock", "unix:/tmp/x.sock"),
     ("tcp://127.0.0.1:9000", "127.0.0.1:9000")],
)
def test_gunicorn_bind_spellings(tmp_path: Path, bind: str, expected: str) -> None:
    (tmp_path / "gunicorn.conf.py").write_text(f"bind = {bind!r}\n")
    assert effective(fulmen_cmd("--print-config", cwd=tmp_path))["bind"][0] == [expected]


def test_gunicorn_cmd_args_from_the_environment(tmp_path: Path) -> None:
    env = {"GUNICORN_CMD_ARGS": "--workers=3 --keep-alive 9 -b '127.0.0.1:9001'"}
    values = effective(fulmen_cmd("--print-config", cwd=tmp_path, env=env))
    assert values["workers"] == (3, "GUNICORN_CMD_ARGS: --workers")
    assert values["keepalive_timeout"] == (9.0, "GUNICORN_CMD_ARGS: --keep-alive")
    assert values["bind"] == (["127.0.0.1:9001"], "GUNICORN_CMD_ARGS: --bind")
    # The command line wins over it, as in gunicorn; FULMEN_* too.
    values = effective(fulmen_cmd("-w", "2", "--print-config", cwd=tmp_path,
                                  env={**env, "FULMEN_KEEPALIVE_TIMEOUT": "4"}))
    assert values["workers"] == (2, "--workers")
    assert values["keepalive_timeout"] == (4.0, "FULMEN_KEEPALIVE_TIMEOUT")
    result = fulmen_cmd("--print-config", cwd=tmp_path, env={"GUNICORN_CMD_ARGS": "-k gevent"})
    assert result.returncode == 2
    assert one_error_line(result).startswith(
        "fulmen: error: GUNICORN_CMD_ARGS: --worker-class: gunicorn setting not supported by fulmen (got 'gevent')")
    result = fulmen_cmd("--print-config", cwd=tmp_path, env={"GUNICORN_CMD_ARGS": "--wokers 2"})
    assert one_error_line(result) == (
        "fulmen: error: GUNICORN_CMD_ARGS: --wokers: unknown option (did you mean --workers?)")


def test_alias_table_is_consistent() -> None:
    from fulmen import gunicorn, settings

    names = [row.name for row in gunicorn.GUNICORN]
    assert len(names) == len(set(names))
    flags = [flag for row in gunicorn.GUNICORN for flag in row.flags]
    assert len(flags) == len(set(flags))
    for row in gunicorn.GUNICORN:
        assert row.note and row.kind in (gunicorn.VALUE, gunicorn.FLAG, gunicorn.APPEND, gunicorn.OPTIONAL,
                                         gunicorn.OFF_FLAG), row.name
        if row.target in settings.BY_NAME:
            # A gunicorn flag that is also fulmen's must mean the same setting.
            for flag in row.flags:
                owner = [s for s in settings.SETTINGS if flag in (s.flag, s.short)]
                assert all(s.name == row.target for s in owner), (row.name, flag)
        elif row.target is None:
            assert row.convert is None, row.name
