"""The command line, settings and application loading -- no server runs here.

Most tests run ``python -m fulmen`` as a subprocess and check its exit status
and output; a few drive the same code in-process with a stand-in for
``fulmen._core`` that records what ``serve()`` receives. Neither needs the
native extension, so these pass before it is built.
"""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import fulmen
import pytest
from fulmen import cli, loader, settings

ROOT = Path(__file__).resolve().parent.parent
# The directory that holds the fulmen package being tested (site-packages, or
# python/ in a source checkout), so that subprocesses import the same one.
PACKAGE_PARENT = str(Path(fulmen.__file__).resolve().parent.parent)

LOG_LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000\] \[\d+\] \[[A-Z]+\] .*")

APP = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]

def create_app(mode="dev", debug=False):
    assert mode == "prod" and debug is True
    return application

def broken_factory():
    raise RuntimeError("factory failed")

def not_a_factory():
    return 42

app = application
number = 42
"""

FAPWS4_HELLO = """\
from fapws4.base import Start_response, Environ

def hello(env, resp):
    return "hello world!"

PATHS = [('/', hello)]
"""


def fulmen_cmd(
    *args: str, cwd: Path, env: dict[str, str] | None = None, python_flags: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m fulmen ARGS`` with a clean FULMEN_* environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, environ.get("PYTHONPATH")]))
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "fulmen", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fulmen: error: "), lines[0]
    return lines[0]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "webapp.py").write_text(APP)
    return tmp_path


def effective(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[Any, str]]:
    """Parse --print-config output: name -> (value, source)."""
    assert result.returncode == 0, result.stderr
    values = {}
    for line in result.stdout.splitlines():
        if line.startswith("#"):
            continue
        assignment, _, source = line.partition("  # ")
        name, _, value = assignment.partition(" = ")
        values[name] = (ast.literal_eval(value), source)
    return values


# ---- --version, --help ----------------------------------------------------


def test_version(tmp_path: Path) -> None:
    result = fulmen_cmd("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"fulmen {fulmen.__version__}"


def test_help_lists_every_option_and_env_var(tmp_path: Path) -> None:
    result = fulmen_cmd("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == ""
    for setting in settings.SETTINGS:
        if settings.CLI not in setting.sources:
            continue  # the server hooks: config file only, as in gunicorn
        assert setting.flag in result.stdout
        if setting.env:
            assert setting.env in result.stdout


# ---- usage errors: exit 2, one line naming the option -----------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--wokers", "2", "webapp"], "fulmen: error: --wokers: unknown option (did you mean --workers?)"),
        (["-w", "x", "webapp"], "fulmen: error: --workers: expected an integer >= 1, got 'x'"),
        (["--workers", "0", "webapp"], "fulmen: error: --workers: expected an integer >= 1, got '0'"),
        (["--workers=-3", "webapp"], "fulmen: error: --workers: expected an integer >= 1, got '-3'"),
        (["webapp", "--workers"], "fulmen: error: --workers: expected a value"),
        (
            ["--log-level", "loud", "webapp"],
            "fulmen: error: --log-level: expected one of debug, info, warning, error, critical, got 'loud'",
        ),
        (
            ["--max-headers", "129", "webapp"],
            "fulmen: error: --max-headers: expected an integer from 1 to 128, got '129'",
        ),
        (
            ["--keepalive-timeout", "soon", "webapp"],
            "fulmen: error: --keepalive-timeout: expected a number of seconds >= 0, got 'soon'",
        ),
        (
            ["--header-timeout", "0", "webapp"],
            "fulmen: error: --header-timeout: expected a number of seconds > 0, got '0'",
        ),
        (
            ["--root-path", "/app/", "webapp"],
            "fulmen: error: --root-path: expected '' or a path starting with '/' "
            "and not ending with '/', got '/app/'",
        ),
        (["--reuse-port=yes", "webapp"], "fulmen: error: --reuse-port: takes no value, got 'yes'"),
        (
            ["--chdir", "does-not-exist", "webapp"],
            "fulmen: error: --chdir: no such directory 'does-not-exist'",
        ),
        (["--config", "nope.py", "webapp"], "fulmen: error: --config: no such file 'nope.py'"),
        (["--server-header", "a\r\nX-Evil: 1", "webapp"], None),
        (["webapp", "other"], "fulmen: error: other: unexpected argument (only one TARGET may be given)"),
        (
            [],
            "fulmen: error: TARGET: missing application (MODULE:CALLABLE, MODULE or a path to a .py script)",
        ),
        (["--check-config"], None),
        (["bad name"], "fulmen: error: TARGET: 'bad name' is not a valid module name"),
        (
            ["webapp:create_app(os.getcwd())"],
            "fulmen: error: TARGET: the arguments of 'create_app(os.getcwd())' "
            "must be Python literals (in 'webapp:create_app(os.getcwd())')",
        ),
        (["webapp:app["], None),
        (["missing.py"], "fulmen: error: TARGET: no such file 'missing.py'"),
        (["dir/app.txt"], None),
    ],
)
def test_usage_error(app_dir: Path, args: list[str], expected: str | None) -> None:
    result = fulmen_cmd(*args, cwd=app_dir)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    if expected is not None:
        assert line == expected
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("bind", "problem"),
    [
        ("127.0.0.1", "missing port"),
        ("::1:8000", "IPv6 addresses need brackets"),
        ("[::zz]:80", "invalid IPv6 address"),
        ("127.0.0.1:70000", "port must be a number from 0 to 65535"),
        ("host name:80", "invalid host"),
        ("unix:", "'unix:' needs a socket path"),
        ("unix:/" + "x" * 120, "longer than 107 bytes"),
    ],
)
def test_bad_bind(app_dir: Path, bind: str, problem: str) -> None:
    result = fulmen_cmd("--bind", bind, "webapp", cwd=app_dir)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith("fulmen: error: --bind: ") and problem in line


def test_bad_value_from_env_names_the_variable(app_dir: Path) -> None:
    result = fulmen_cmd("webapp", cwd=app_dir, env={"FULMEN_WORKERS": "many"})
    assert result.returncode == 2
    assert one_error_line(result) == "fulmen: error: FULMEN_WORKERS: expected an integer >= 1, got 'many'"


def test_bad_value_from_config_file_names_file_and_setting(app_dir: Path) -> None:
    (app_dir / "conf.py").write_text("workers = 0\n")
    result = fulmen_cmd("-c", "conf.py", "webapp", cwd=app_dir)
    assert result.returncode == 2
    assert one_error_line(result) == "fulmen: error: conf.py: workers: expected an integer >= 1, got 0"


def test_config_file_cannot_set_config(app_dir: Path) -> None:
    (app_dir / "conf.py").write_text("config = 'other.py'\n")
    result = fulmen_cmd("-c", "conf.py", "webapp", cwd=app_dir)
    assert result.returncode == 2
    assert "conf.py: config: cannot be set in a config file" in one_error_line(result)


def test_config_file_that_raises(app_dir: Path) -> None:
    (app_dir / "conf.py").write_text("workers = 2\nraise RuntimeError('bad config')\n")
    result = fulmen_cmd("-c", "conf.py", "webapp", cwd=app_dir)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and 'conf.py", line 2' in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "fulmen: error: conf.py: failed to execute the config file: RuntimeError: bad config"
    )


# ---- application loading: exit 4 -------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason", "traceback"),
    [
        ("nosuchmodule", "no module named 'nosuchmodule'", False),
        ("webapp:missing", "'webapp' has no attribute 'missing'", False),
        ("webapp:number", "'number' is not callable (it is int)", False),
        ("webapp:broken_factory()", "the factory raised RuntimeError: factory failed", True),
        ("webapp:not_a_factory()", "the factory 'not_a_factory' returned int, not a WSGI callable", False),
        ("raises", "ZeroDivisionError: division by zero", True),
        ("imports_missing", "ModuleNotFoundError: No module named 'not_installed_anywhere'", True),
        ("syntax_error", "SyntaxError: ", True),
        ("exits", "it called sys.exit(3)", True),
    ],
)
def test_app_load_error(app_dir: Path, target: str, reason: str, traceback: bool) -> None:
    (app_dir / "raises.py").write_text("import os\n\nvalue = 1 / 0\n")
    (app_dir / "imports_missing.py").write_text("import not_installed_anywhere\n")
    (app_dir / "syntax_error.py").write_text("def broken(:\n")
    (app_dir / "exits.py").write_text("import sys\nsys.exit(3)\n")
    result = fulmen_cmd("--check-config", target, cwd=app_dir)
    assert result.returncode == 4, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"fulmen: error: failed to load application '{target}': {reason}")
    if traceback:
        assert len(result.stderr.splitlines()) > 1
        # The traceback starts in the application, not in fulmen or importlib.
        assert "fulmen/loader.py" not in result.stderr and "importlib" not in result.stderr
    else:
        assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_app_raising_at_import_prints_its_traceback(app_dir: Path) -> None:
    # --preload: the master imports the application before it listens, so
    # the traceback is the first thing written.
    (app_dir / "raises.py").write_text("import os\n\nvalue = 1 / 0\n")
    result = fulmen_cmd("--preload", "raises:application", cwd=app_dir)
    assert result.returncode == 4
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert 'raises.py", line 3, in <module>' in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr


@pytest.mark.parametrize("workers", ["1", "3"])
def test_app_failing_in_the_first_worker_is_reported_once(app_dir: Path, workers: str) -> None:
    # Without --preload (the default) the first worker imports the
    # application: its traceback and the error line appear once, whatever
    # the number of workers, and fulmen exits 4.
    (app_dir / "raises.py").write_text("import os\n\nvalue = 1 / 0\n")
    preload = os.environ.get("FULMEN_SANITIZER_PRELOAD")  # it serves: the core is loaded
    result = fulmen_cmd("-b", "127.0.0.1:0", "-w", workers, "raises:application", cwd=app_dir,
                        env={"LD_PRELOAD": preload} if preload else None)
    assert result.returncode == 4
    assert result.stderr.count("Traceback (most recent call last):") == 1, result.stderr
    assert result.stderr.count('raises.py", line 3, in <module>') == 1
    assert result.stderr.count(
        "fulmen: error: failed to load application 'raises:application': ZeroDivisionError: division by zero") == 1
    assert result.stderr.count("Booting worker") == 1


# ---- --check-config ---------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["webapp", "webapp:application", "webapp:app", 'webapp:create_app("prod", debug=True)']
)
def test_check_config_ok(app_dir: Path, target: str) -> None:
    result = fulmen_cmd("--check-config", target, cwd=app_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "OK\n"
    assert result.stderr == ""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P is 3.11+")
def test_current_directory_is_importable(app_dir: Path) -> None:
    # As with the console script, the current directory is not on sys.path
    # when fulmen starts (-P): fulmen puts it there.
    result = fulmen_cmd("--check-config", "webapp", cwd=app_dir, python_flags=["-P"])
    assert result.returncode == 0, result.stderr


def test_chdir_applies_before_import(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "deep_app.py").write_text(APP)
    result = fulmen_cmd("--chdir", "site", "--check-config", "deep_app", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "OK\n"


# ---- precedence: CLI > env > config file > default --------------------------


def test_defaults(tmp_path: Path) -> None:
    values = effective(fulmen_cmd("--print-config", cwd=tmp_path))
    for setting in settings.SETTINGS:
        if settings.FILE in setting.sources:
            assert values[setting.name] == (setting.default, "default")


def test_precedence(app_dir: Path) -> None:
    (app_dir / "conf.py").write_text(
        textwrap.dedent("""\
        import multiprocessing          # modules, helpers and _private names are ignored
        _cpus = 2
        workers = _cpus + 1
        backlog = "128"
        keepalive_timeout = 2.5
        log_level = "WARNING"
        bind = ["127.0.0.1:9000", "unix:fulmen.sock"]
    """)
    )
    env = {"FULMEN_CONFIG": "conf.py", "FULMEN_WORKERS": "5", "FULMEN_BACKLOG": "256"}

    values = effective(fulmen_cmd("--print-config", cwd=app_dir, env=env))
    assert values["workers"] == (5, "FULMEN_WORKERS")
    assert values["backlog"] == (256, "FULMEN_BACKLOG")
    assert values["keepalive_timeout"] == (2.5, "conf.py")
    assert values["log_level"] == ("warning", "conf.py")
    assert values["bind"] == (["127.0.0.1:9000", f"unix:{app_dir.resolve() / 'fulmen.sock'}"], "conf.py")
    assert values["max_headers"] == (100, "default")

    values = effective(
        fulmen_cmd("--print-config", "-w", "7", "-b", ":0", "-b", "[::1]:0", cwd=app_dir, env=env)
    )
    assert values["workers"] == (7, "--workers")
    assert values["backlog"] == (256, "FULMEN_BACKLOG")
    assert values["bind"] == ([":0", "[::1]:0"], "--bind")


def test_bool_flags_override_lower_sources(tmp_path: Path) -> None:
    env = {"FULMEN_REUSE_PORT": "yes"}
    assert effective(fulmen_cmd("--print-config", cwd=tmp_path, env=env))["reuse_port"][0] is True
    values = effective(fulmen_cmd("--print-config", "--no-reuse-port", cwd=tmp_path, env=env))
    assert values["reuse_port"][0] is False


def test_env_bind_is_comma_separated(tmp_path: Path) -> None:
    values = effective(
        fulmen_cmd("--print-config", cwd=tmp_path, env={"FULMEN_BIND": "127.0.0.1:1, [::1]:2"})
    )
    assert values["bind"] == (["127.0.0.1:1", "[::1]:2"], "FULMEN_BIND")


def test_print_config_output_is_a_valid_config_file(tmp_path: Path) -> None:
    result = fulmen_cmd("--print-config", "-w", "3", "--keepalive-timeout", "1.5", cwd=tmp_path)
    (tmp_path / "round_trip.py").write_text(result.stdout)
    values = effective(fulmen_cmd("--print-config", "-c", "round_trip.py", cwd=tmp_path))
    assert values["workers"] == (3, "round_trip.py")
    assert values["keepalive_timeout"] == (1.5, "round_trip.py")


def test_likely_typo_in_config_file_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "conf.py").write_text("worker = 4\n")
    result = fulmen_cmd("--print-config", "-c", "conf.py", cwd=tmp_path)
    assert result.returncode == 0
    (line,) = result.stderr.splitlines()
    assert LOG_LINE.fullmatch(line) and "[WARNING]" in line and "did you mean 'workers'?" in line


# ---- script mode (Fapws4) ---------------------------------------------------


def test_fapws4_script_loads_unchanged(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(FAPWS4_HELLO)
    result = fulmen_cmd("--check-config", "hello.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "OK\n"


def test_script_path_is_relative_to_start_directory(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "hello.py").write_text(FAPWS4_HELLO)
    (tmp_path / "elsewhere").mkdir()
    result = fulmen_cmd("--chdir", "elsewhere", "--check-config", "scripts/hello.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "x = 1\n",
            "hello.py: the script defines neither PATHS (expected PATHS = [('/', handler), ...]) "
            "nor a WSGI callable named 'application'",
        ),
        ("PATHS = '/'\n", "hello.py: PATHS must be a list of (prefix, handler) pairs, got str"),
        ("PATHS = {'/': h}\n", "hello.py: PATHS must be a list of (prefix, handler) pairs, got dict"),
        ("PATHS = []\n", "hello.py: PATHS is empty"),
        ("PATHS = [('/', h), '/x']\n", "hello.py: PATHS[1]: expected a (prefix, handler) pair, got '/x'"),
        (
            "PATHS = [('/', h, 1)]\n",
            "hello.py: PATHS[0]: expected a (prefix, handler) pair, got ('/', <function",
        ),
        ("PATHS = [(b'/', h)]\n", "hello.py: PATHS[0]: the prefix must be a str, got bytes"),
        ("PATHS = [('/', h), ('api', h)]\n", "hello.py: PATHS[1]: the prefix 'api' must start with '/'"),
        ("PATHS = [('/a b', h)]\n", "hello.py: PATHS[0]: the prefix '/a b' contains a space"),
        ("PATHS = [('/a//b', h)]\n", "hello.py: PATHS[0]: the prefix '/a//b' contains an empty segment"),
        ("PATHS = [('/', 'h')]\n", "hello.py: PATHS[0]: the handler for '/' is not callable (it is str)"),
        (
            "PATHS = [('/api', h), ('/api/', h)]\n",
            "hello.py: PATHS[1]: the prefix '/api' is already used by PATHS[0]",
        ),
    ],
)
def test_malformed_paths(tmp_path: Path, body: str, problem: str) -> None:
    (tmp_path / "hello.py").write_text("def h(env, resp):\n    return ''\n\n" + body)
    result = fulmen_cmd("--check-config", "hello.py", cwd=tmp_path)
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"fulmen: error: {problem}")


def test_script_that_raises_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("PATHS = []\nraise ValueError('script failed')\n")
    result = fulmen_cmd("--check-config", "hello.py", cwd=tmp_path)
    assert result.returncode == 4
    assert 'hello.py", line 2, in <module>' in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "fulmen: error: failed to load application 'hello.py': ValueError: script failed"
    )


def test_script_can_import_its_neighbours(tmp_path: Path) -> None:
    (tmp_path / "views.py").write_text("def index(env, resp):\n    return 'index'\n")
    (tmp_path / "site.py").write_text("import views\nPATHS = [('/', views.index)]\n")
    result = fulmen_cmd("--check-config", "site.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_paths_normalisation() -> None:
    def handler(env: object, resp: object) -> str:
        return ""

    routes = loader.normalise_paths(
        [("/", handler), ("/api/", handler), ["/static", handler], ("/a/b/", handler)], "t"
    )
    assert routes == [("/", handler), ("/api", handler), ("/static", handler), ("/a/b", handler)]
    assert all(isinstance(route, tuple) for route in routes)


def test_fapws4_alias_is_fulmen_base(tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text(FAPWS4_HELLO + "import fapws4.base\nSAME = fapws4.base\n")
    loaded = loader.load(loader.parse_target(str(script)))
    assert loaded.script_mode
    module = sys.modules[loader.SCRIPT_MODULE]
    assert module.SAME is fulmen.base
    assert module.Environ is fulmen.base.Environ and module.Start_response is fulmen.base.Start_response
    assert loaded.target == [("/", module.hello)]


def test_base_types() -> None:
    from fulmen.base import Environ, Start_response

    assert issubclass(Environ, dict) and "PATH_INFO" in (Environ.__doc__ or "")
    assert "exc_info" in (Start_response.__doc__ or "")

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
        return None

    assert isinstance(start_response, Start_response)  # any callable fits the protocol


# ---- serving path, with a stand-in for the native extension ------------------


class FakeCore:
    """Records the arguments of serve() instead of serving."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[tuple[Any, list[tuple[int, str, str]], dict[str, Any]]] = []
        self.sockets: list[tuple[Any, ...]] = []

    def serve(self, lifecycle: Any, listeners: list[tuple[int, str, str]], options: dict[str, Any]) -> int:
        # What a worker would serve (without --preload it imports TARGET now).
        target = lifecycle.load_target()
        self.calls.append((target, listeners, options))
        for fd, _, _ in listeners:
            # Inspect the listening socket through a duplicate of its fd.
            with socket.socket(fileno=os.dup(fd)) as sock:
                self.sockets.append(
                    (
                        sock.family,
                        os.get_blocking(fd),
                        os.get_inheritable(fd),
                        sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
                    )
                )
        return self.status


@pytest.fixture
def fake_core(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeCore]:
    core = FakeCore()
    stand_in = types.SimpleNamespace(serve=core.serve)
    # Both: "from . import _core" prefers the package attribute, which is set
    # once the real extension has been imported.
    monkeypatch.setitem(sys.modules, "fulmen._core", stand_in)
    monkeypatch.setattr(fulmen, "_core", stand_in, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [n for n in os.environ if n.startswith("FULMEN_")]:
        monkeypatch.delenv(name)
    yield core


def test_serve_arguments(fake_core: FakeCore, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello.py").write_text(FAPWS4_HELLO)
    status = cli.main(
        ["-b", "127.0.0.1:0", "-b", "unix:s.sock", "-w", "2", "--keepalive-timeout", "1.5", "hello.py"]
    )
    assert status == 0
    ((target, listeners, options),) = fake_core.calls
    assert [prefix for prefix, _ in target] == ["/"]
    (_, host, port), (_, path, unix_port) = listeners
    assert host == "127.0.0.1" and int(port) > 0
    assert path == str(tmp_path / "s.sock") and unix_port == ""
    assert options["workers"] == 2 and options["keepalive_timeout"] == 1.5
    assert options["script_mode"] is True and options["multiprocess"] is True
    assert set(options) == {s.name for s in settings.SETTINGS} | {"script_mode", "multiprocess"}
    # Bound, listening, non-blocking, and not inherited by the app's subprocesses (close-on-exec).
    assert [s[1:] for s in fake_core.sockets] == [(False, False, 1), (False, False, 1)]
    # The socket file is removed once the server has stopped.
    assert not (tmp_path / "s.sock").exists()

    lines = capfd.readouterr().err.splitlines()
    assert all(LOG_LINE.fullmatch(line) for line in lines), lines
    assert lines[0].endswith(f"[INFO] Listening at: http://127.0.0.1:{port} (fulmen {fulmen.__version__})")
    assert lines[1].endswith(f"[INFO] Listening at: unix:{tmp_path / 's.sock'} (fulmen {fulmen.__version__})")


def test_ipv6_listener_url(fake_core: FakeCore, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    (tmp_path / "webapp.py").write_text(APP)
    try:
        status = cli.main(["-b", "[::1]:0", "webapp"])
    finally:
        err = capfd.readouterr().err
    if status == 1 and "cannot listen" in err:
        pytest.skip("::1 is not configured")
    assert status == 0
    ((_, [(_, host, port)], options),) = fake_core.calls
    assert host == "::1" and options["script_mode"] is False and options["multiprocess"] is False
    assert f"Listening at: http://[::1]:{port} " in err


def test_core_status_is_the_exit_status(fake_core: FakeCore, tmp_path: Path) -> None:
    (tmp_path / "webapp.py").write_text(APP)
    fake_core.status = 3  # a worker failed to boot
    assert cli.main(["-b", "127.0.0.1:0", "webapp"]) == 3


def test_address_in_use_is_exit_1(
    fake_core: FakeCore, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "webapp.py").write_text(APP)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = cli.main(["-b", "127.0.0.1:0", "-b", f"127.0.0.1:{port}", "webapp"])
    assert status == 1
    assert fake_core.calls == []
    err = capfd.readouterr().err
    assert err == f"fulmen: error: cannot listen on '127.0.0.1:{port}': Address already in use\n"


def test_unix_socket_file_handling(
    fake_core: FakeCore, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "webapp.py").write_text(APP)
    # A stale socket (nobody listening) is replaced...
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    assert cli.main(["-b", "unix:stale.sock", "webapp"]) == 0
    # ...a live one or a regular file is not.
    (tmp_path / "file.sock").write_text("")
    assert cli.main(["-b", "unix:file.sock", "webapp"]) == 1
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(tmp_path / "live.sock"))
        live.listen()
        assert cli.main(["-b", "unix:live.sock", "webapp"]) == 1
    err = capfd.readouterr().err.splitlines()
    assert err[-2].endswith("file.sock' exists and is not a socket")
    assert err[-1].endswith("live.sock': another server is listening on it")
    assert (tmp_path / "file.sock").read_text() == ""


def test_missing_extension_is_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "fulmen._core", None)  # makes the import fail
    monkeypatch.delattr(fulmen, "_core", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "webapp.py").write_text(APP)
    assert cli.main(["webapp"]) == 1
    assert "fulmen: error: the native extension fulmen._core cannot be imported" in capfd.readouterr().err


# ---- fulmen.run() -------------------------------------------------------------


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, "workers: expected an integer >= 1, got 0"),
        ({"workers": True}, "workers: expected an integer >= 1, got True"),
        ({"bogus": 1}, "bogus: unknown setting"),
        ({"check_config": True}, "check_config: only available on the command line"),
        ({"port": 70000}, "bind: port must be a number from 0 to 65535"),
        ({"port": 1, "bind": [":1"]}, "bind: give either host/port or bind, not both"),
        (
            {"keepalive_timeout": float("inf")},
            "keepalive_timeout: expected a number of seconds >= 0, got inf",
        ),
    ],
)
def test_run_rejects_bad_values(fake_core: FakeCore, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        fulmen.run(wsgi_app, **kwargs)
    assert fake_core.calls == []


def test_run_serves_like_the_cli(fake_core: FakeCore) -> None:
    assert fulmen.run(wsgi_app, host="127.0.0.1", port=0, workers=3, server_header="") == 0
    ((target, [(_, host, _)], options),) = fake_core.calls
    assert target is wsgi_app and host == "127.0.0.1"
    assert options["workers"] == 3 and options["server_header"] == "" and options["multiprocess"] is True


def test_run_accepts_paths(fake_core: FakeCore) -> None:
    assert fulmen.run([("/api/", wsgi_app)], port=0) == 0
    ((target, _, options),) = fake_core.calls
    assert target == [("/api", wsgi_app)] and options["script_mode"] is True


def test_run_reads_environment(fake_core: FakeCore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULMEN_WORKERS", "4")
    assert fulmen.run(wsgi_app, port=0) == 0
    assert fake_core.calls[0][2]["workers"] == 4


# ---- contracts with generated files and the core -------------------------------


def test_core_stub_lists_every_option() -> None:
    stub_path = ROOT / "python" / "fulmen" / "_core.pyi"
    if not stub_path.exists():
        stub_path = Path(fulmen.__file__).parent / "_core.pyi"
    stub = ast.parse(stub_path.read_text())
    (options,) = [node for node in stub.body if isinstance(node, ast.ClassDef) and node.name == "Options"]
    keys = {
        node.target.id
        for node in options.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert keys == {s.name for s in settings.SETTINGS} | {"script_mode", "multiprocess"}


def test_settings_doc_is_up_to_date() -> None:
    tool = ROOT / "tools" / "gen_settings_doc.py"
    if not tool.exists():
        pytest.skip("not a source checkout")
    result = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_table_is_consistent() -> None:
    flags = [s.flag for s in settings.SETTINGS] + [s.short for s in settings.SETTINGS if s.short]
    assert len(flags) == len(set(flags))
    for setting in settings.SETTINGS:
        assert setting.convert(setting.default) == setting.default, setting.name
        assert setting.help.endswith("."), setting.name
