"""Operations (issue 8): pid file, umask, user and group, socket activation, titles, daemon.

Real processes throughout: the server is started as the tests' user (root on
the test machine) and checked from outside, through /proc, the file system
and real connections, some made by a process running as another user.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import APPS, LISTEN_RE, read_response, request, server_env
from test_cli import fulmen_cmd, one_error_line

NOBODY = pwd.getpwnam("nobody")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
# A Python another user may run (the tests' own may live under /root); its
# processes are the neighbours that connect as that user.
OTHER_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
SOURCE = str(Path(__file__).resolve().parent.parent / "python")


@pytest.fixture
def shared_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory every user may enter (pytest's own tmp tree is root's only)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="fulmen-ops-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def get(srv, target: str) -> tuple[int, bytes]:
    status, _, body, _ = request(srv, f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    return status, body


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.02)


# ---- pid file ------------------------------------------------------------------------


def test_pid_file_written_then_removed(serve, tmp_path: Path) -> None:
    pidfile = tmp_path / "run" / "app.pid"
    pidfile.parent.mkdir()
    srv = serve("--pid", str(pidfile), "opsapp")
    assert pidfile.read_text() == f"{srv.proc.pid}\n"
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    assert srv.stop() == 0
    assert not pidfile.exists()
    assert list(pidfile.parent.iterdir()) == []  # no temporary file left behind


def test_stale_pid_file_is_replaced(serve, tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid nobody has any more
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{dead.pid}\n")
    srv = serve("-p", str(pidfile), "opsapp")
    assert pidfile.read_text() == f"{srv.proc.pid}\n"


def test_live_pid_file_refuses_to_start(tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # this test process is alive
    (tmp_path / "webapp.py").write_text("def application(e, s):\n    return []\n")
    # The sanitizer runtime, if any, as for every process that loads the extension.
    preload = {"LD_PRELOAD": server_env()["LD_PRELOAD"]} if "LD_PRELOAD" in server_env() else {}
    result = fulmen_cmd("-b", "127.0.0.1:0", "--pid", str(pidfile), "webapp", cwd=tmp_path, env=preload)
    assert result.returncode == 1
    assert one_error_line(result) == (
        f"fulmen: error: already running: {str(pidfile)!r} names the live process {os.getpid()} "
        "(stop it, or remove the file if that pid is not a fulmen)"
    )
    assert pidfile.read_text() == f"{os.getpid()}\n"  # left as it was


# ---- umask: who may connect to a unix socket ---------------------------------------


def connect_as(uid: int, gid: int, path: str) -> subprocess.CompletedProcess[str]:
    """Connect to the unix socket *path* from a process running as uid/gid; prints the status line."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.settimeout(10)\n"
        f"s.connect({path!r})\n"
        "s.sendall(b'GET /who HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n')\n"
        "print(s.recv(100).split(b'\\r\\n')[0].decode())\n"
    )
    return subprocess.run([OTHER_PYTHON, "-c", code], user=uid, group=gid, extra_groups=[],
                          capture_output=True, text=True, timeout=30)


@needs_root
def test_default_umask_lets_any_user_connect(serve, shared_dir: Path) -> None:
    path = shared_dir / "app.sock"
    srv = serve("-b", f"unix:{path}", "opsapp")
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o777  # srwxrwxrwx, as gunicorn's default umask 0
    result = connect_as(NOBODY.pw_uid, NOBODY.pw_gid, str(path))
    assert result.stdout.strip() == "HTTP/1.1 200 OK", result.stderr
    assert get(srv, "/who")[0] == 200


@needs_root
def test_umask_restricts_the_socket(serve, shared_dir: Path) -> None:
    path = shared_dir / "app.sock"
    srv = serve("-b", f"unix:{path}", "--umask", "0o077", "opsapp")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    refused = connect_as(NOBODY.pw_uid, NOBODY.pw_gid, str(path))
    assert refused.returncode != 0 and "PermissionError" in refused.stderr
    assert get(srv, "/who")[0] == 200


# ---- user and group ----------------------------------------------------------------------


@needs_root
def test_workers_run_as_user_and_group(serve, shared_dir: Path) -> None:
    path = shared_dir / "app.sock"
    # --preload: the application is imported by root, as this machine's Python lives under /root.
    srv = serve("-b", f"unix:{path}", "-w", "2", "--user", "nobody", "--group", str(NOBODY.pw_gid), "--preload",
                "opsapp")
    # The master keeps root; each worker is nobody, without root's supplementary groups.
    assert proc_status(srv.proc.pid)["Uid"].split()[0] == "0"
    workers = srv.worker_pids()
    assert len(workers) == 2
    for pid in workers:
        status = proc_status(pid)
        assert status["Uid"].split() == [str(NOBODY.pw_uid)] * 4
        assert status["Gid"].split() == [str(NOBODY.pw_gid)] * 4
        assert status["Groups"].strip() == ""
    who = json.loads(get(srv, "/who")[1])
    assert who["uid"] == NOBODY.pw_uid and who["gid"] == NOBODY.pw_gid and who["groups"] == []
    assert who["pid"] in workers
    # The socket file belongs to the workers' user, as gunicorn does it.
    info = path.stat()
    assert (info.st_uid, info.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    # A worker that dies is replaced by another nobody.
    os.kill(workers[0], signal.SIGKILL)
    srv.wait_for("Booting worker with pid", start=len(srv.lines))
    deadline = time.monotonic() + 10
    while len(srv.worker_pids()) < 2 or workers[0] in srv.worker_pids():
        assert time.monotonic() < deadline, srv.log
        time.sleep(0.02)
    # The new worker is forked by root and switches user as its first step: wait for that
    # step (read in the window right after the fork, under ASan, it was still root).
    (replacement,) = [pid for pid in srv.worker_pids() if pid not in workers]
    while proc_status(replacement)["Uid"].split() != [str(NOBODY.pw_uid)] * 4:
        assert time.monotonic() < deadline, srv.log
        time.sleep(0.02)
    for pid in srv.worker_pids():
        status = proc_status(pid)
        assert status["Uid"].split() == [str(NOBODY.pw_uid)] * 4
        assert status["Groups"].strip() == ""


@needs_root
def test_workers_die_with_their_master_after_switching_user(serve) -> None:
    # Switching user clears the parent-death signal; fulmen sets it again.
    srv = serve("--user", "nobody", "--preload", "opsapp")
    (worker,) = srv.worker_pids()
    srv.proc.kill()
    srv.proc.wait()
    wait_gone(worker)
    srv.allowed_rc.add(-signal.SIGKILL)


def test_user_switch_without_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "webapp.py").write_text("def application(e, s):\n    return []\n")
    if os.geteuid() == 0:
        # As nobody (fulmen from the source tree: --check-config needs no native extension).
        code = ["-m", "fulmen", "--user", "root", "--check-config", "webapp"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
        env["PYTHONPATH"] = SOURCE
        result = subprocess.run([OTHER_PYTHON, *code], cwd="/", env=env, user=NOBODY.pw_uid,
                                group=NOBODY.pw_gid, extra_groups=[], capture_output=True, text=True, timeout=60)
        uid = NOBODY.pw_uid
    else:
        result = fulmen_cmd("--user", "root", "--check-config", "webapp", cwd=tmp_path)
        uid = os.geteuid()
    assert result.returncode == 2, result.stderr
    assert one_error_line(result) == (
        f"fulmen: error: --user: switching the workers to user 'root' needs root (fulmen runs as uid {uid})"
    )


# ---- environment, python path, names ----------------------------------------------------


def test_env_and_pythonpath_reach_the_application(serve, tmp_path: Path) -> None:
    (tmp_path / "site" / "libs").mkdir(parents=True)
    (tmp_path / "site" / "libs" / "extra_mod.py").write_text("VALUE = 42\n")
    srv = serve("--chdir", str(tmp_path / "site"), "--pythonpath", "libs,.", "-e", "APP_MODE=prod",
                "-e", "EMPTY=", "opsapp")
    assert get(srv, "/?env=APP_MODE") == (200, b"prod")
    assert get(srv, "/?env=EMPTY") == (200, b"")
    assert get(srv, "/?import=extra_mod") == (200, b"42")  # relative to --chdir, as in gunicorn


def test_process_titles(serve) -> None:
    srv = serve("-w", "2", "-n", "shop-api", "opsapp")
    with open(f"/proc/{srv.proc.pid}/cmdline", "rb") as handle:
        assert handle.read().split(b"\0")[0] == b"fulmen: master [shop-api]"
    assert Path(f"/proc/{srv.proc.pid}/comm").read_text() == "fulmen: master\n"
    for pid in srv.worker_pids():
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert handle.read().split(b"\0")[0] == b"fulmen: worker [shop-api]"
        assert Path(f"/proc/{pid}/comm").read_text() == "fulmen: worker\n"


def test_default_title_names_the_target(serve) -> None:
    srv = serve("opsapp:application")
    with open(f"/proc/{srv.proc.pid}/cmdline", "rb") as handle:
        assert handle.read().split(b"\0")[0] == b"fulmen: master [opsapp:application]"


# ---- socket activation -------------------------------------------------------------------


def activation_wrapper(fds: list[int], args: list[str]) -> list[str]:
    """A command that moves *fds* to 3, 4, ... (as systemd passes them), then execs fulmen.

    exec keeps the pid, so LISTEN_PID, set just before it, names fulmen itself.
    """
    code = (
        "import os, sys\n"
        f"fds = {fds!r}\n"
        "moved = [os.dup(fd) for fd in fds]\n"  # above every target first, so no move clobbers another
        "for target, fd in enumerate(moved, 3):\n"
        "    os.dup2(fd, target)\n"
        "    os.set_inheritable(target, True)\n"
        "for fd in set(moved + fds) - set(range(3, 3 + len(fds))):\n"
        "    os.close(fd)\n"
        "os.environ['LISTEN_PID'] = str(os.getpid())\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'fulmen', *sys.argv[1:]])\n"
    )
    return [sys.executable, "-c", code, *args]


class Activated:
    """fulmen started as systemd starts it: sockets on fd 3.., LISTEN_PID = its own pid."""

    def __init__(self, socks: list[socket.socket], args: list[str], names: str | None = None) -> None:
        env = server_env({"PYTHONPATH": str(APPS), "LISTEN_FDS": str(len(socks))})
        if names is not None:
            env["LISTEN_FDNAMES"] = names
        fds = [sock.fileno() for sock in socks]
        self.proc = subprocess.Popen(activation_wrapper(fds, args), env=env, pass_fds=fds,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if " ready" in line:
                break
        assert any(" ready" in line for line in self.lines), "\n".join(self.lines)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.lines += out.splitlines()
        assert self.proc.returncode == 0, "\n".join(self.lines)
        return "\n".join(self.lines)


def http_get(connect: socket.socket, target: str) -> bytes:
    with connect as s:
        s.settimeout(10)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        return read_response(s)[2]


def test_socket_activation_tcp_and_unix(tmp_path: Path) -> None:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    port = tcp.getsockname()[1]
    unix_path = str(tmp_path / "activated.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen()
    server = Activated([tcp, unix], ["-b", "127.0.0.1:1", "opsapp"], names="web:admin")
    try:
        log = "\n".join(server.lines)
        assert f"Listening at: http://127.0.0.1:{port} (fd 3, web)" in log
        assert f"Listening at: unix:{unix_path} (fd 4, admin)" in log
        assert "Serving on the 2 socket(s) systemd passed (LISTEN_FDS); --bind is not used" in log
        assert http_get(socket.create_connection(("127.0.0.1", port)), "/?env=LISTEN_FDS") == b"<unset>"
        unix_client = socket.socket(socket.AF_UNIX)
        unix_client.connect(unix_path)
        assert http_get(unix_client, "/?env=LISTEN_PID") == b"<unset>"
        # The default bind (127.0.0.1:1 here) was not opened.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", 1), timeout=2).close()
    finally:
        server.stop()
    # The socket file is systemd's: fulmen leaves it in place.
    assert os.path.exists(unix_path)
    # The sockets stay usable by their owner after fulmen stopped.
    assert tcp.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    tcp.close()
    unix.close()


def test_listen_pid_of_another_process_is_ignored(serve) -> None:
    # LISTEN_* meant for a parent: the normal --bind is used (and fd 3 is not touched).
    srv = serve("opsapp", env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    assert get(srv, "/?env=LISTEN_FDS") == (200, b"1")


def test_socket_activation_with_a_non_socket_is_one_line(tmp_path: Path) -> None:
    reader, writer = os.pipe()
    env = server_env({"PYTHONPATH": str(APPS), "LISTEN_FDS": "1"})
    result = subprocess.run(activation_wrapper([reader], ["opsapp"]), env=env, pass_fds=(reader,),
                            capture_output=True, text=True, timeout=60)
    os.close(reader)
    os.close(writer)
    assert result.returncode == 1
    assert one_error_line(result).startswith("fulmen: error: LISTEN_FDS: descriptor 3 is not a socket")


# ---- daemon ----------------------------------------------------------------------------------


def test_daemon_detaches_and_serves(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    log = tmp_path / "daemon.log"
    env = server_env({"PYTHONPATH": str(APPS)})
    with open(log, "w") as out:
        started = subprocess.run(
            [sys.executable, "-m", "fulmen", "--daemon", "-b", "127.0.0.1:0", "--pid", str(pidfile), "opsapp"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60,
        )
    assert started.returncode == 0, log.read_text()
    # The command returned only once the pid file was written.
    daemon = int(pidfile.read_text())
    try:
        assert Path(f"/proc/{daemon}").exists()
        assert os.getsid(daemon) != os.getsid(0)  # its own session: no controlling terminal
        assert proc_status(daemon)["PPid"] != str(os.getpid())
        # The log went on to the file the command's stderr pointed at.
        deadline = time.monotonic() + 20
        while not (match := LISTEN_RE.search(log.read_text())) or " ready" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        port = int(match.group(3))
        body = http_get(socket.create_connection(("127.0.0.1", port)), "/who")
        assert json.loads(body)["ppid"] == daemon
    finally:
        os.kill(daemon, signal.SIGTERM)
        wait_gone(daemon)
    assert not pidfile.exists()
    assert re.search(r"Shutting down: master", log.read_text())


@needs_root
def test_bare_numeric_uid(serve) -> None:
    # A uid with no passwd entry, as containers often use: it is taken as it is.
    uid = 54321
    assert all(entry.pw_uid != uid for entry in pwd.getpwall())
    srv = serve("--user", str(uid), "--group", str(uid), "--preload", "opsapp")
    who = json.loads(get(srv, "/who")[1])
    assert (who["uid"], who["gid"], who["groups"]) == (uid, uid, [])


def test_daemon_that_cannot_bind_fails_on_the_terminal(tmp_path: Path) -> None:
    # The sockets are opened before detaching: the error and the status reach the caller.
    pidfile = tmp_path / "daemon.pid"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = server_env({"PYTHONPATH": str(APPS)})
        result = subprocess.run(
            [sys.executable, "-m", "fulmen", "-D", "-b", f"127.0.0.1:{port}", "-p", str(pidfile), "opsapp"],
            env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
        )
    assert result.returncode == 1
    assert one_error_line(result) == f"fulmen: error: cannot listen on '127.0.0.1:{port}': Address already in use"
    assert not pidfile.exists()
