"""Test infrastructure: start the processes that tests, benchmarks and scripts need on 127.0.0.1, and stop them for sure.

The one place for: a free loopback port; a program started in its own process group with its
output in a file; waiting until it is ready; stopping the whole group (a signal, then SIGKILL after a
timeout, then SIGKILL for anything of the group still left); and reading a process tree's memory
(PSS from smaps_rollup) and CPU time from /proc. gunicorn with the repository's app/gunicorn_conf.py,
redis-server, nginx and PostgreSQL are its subclasses of ``Process``; ``ThreadedHTTPServer`` runs
a small HTTP server in this process instead (a test's webhook or web site).

It needs only the standard library (psycopg only for PostgresServer.start), so tests, bench/ and
scripts/ import it freely and shell scripts call it from the repository root::

    python -m tests.harness free-port                  # prints a free loopback port
    python -m tests.harness start-gunicorn --model M [--workers N] [--log FILE] [--env K=V ...]
                                                       # prints "PID URL" once /readyz answers 200
    python -m tests.harness stop PID                   # SIGTERM the group, SIGKILL after --timeout

Exceptions::

    HarnessError
    ├── ProgramMissingError  a system program is not installed
    ├── ProcessExitedError   a process died while we waited for it
    └── NotReadyError        a condition did not come true in time
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Self

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "app" / "gunicorn_conf.py"
LOOPBACK = "127.0.0.1"
RESERVED_PORTS = frozenset({5000})  # the development server's port (make run): never take it
STOP_TIMEOUT_S = 10.0
GUNICORN_STOP_TIMEOUT_S = 30.0  # above app/gunicorn_conf.py's graceful_timeout (20 s)
GUNICORN_START_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 40


class HarnessError(Exception):
    """Something the harness started or waited for went wrong."""


class ProgramMissingError(HarnessError):
    """A system program is not installed."""


class ProcessExitedError(HarnessError):
    """A process exited while it should have been running."""


class NotReadyError(HarnessError):
    """A condition did not come true before its timeout."""


# ---- ports and readiness ---------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now (never a reserved one)."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def port_open(port: int) -> bool:
    """Return whether something accepts TCP connections on a loopback port."""
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Return whether a GET of ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):  # refused, reset, timed out or an HTTP error status
        return False


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until ``condition()`` is truthy and return its value; raise NotReadyError after ``timeout``.

    The condition's docstring (or repr) names it in the error.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotReadyError(f"still not true after {timeout} s: {condition.__doc__ or condition}")
        time.sleep(interval)


def find_program(name: str) -> str:
    """Return a system program's path (sbin included); raise ProgramMissingError without it."""
    found = shutil.which(name, path=os.defpath + ":/usr/sbin:/usr/bin")
    if found is None:
        raise ProgramMissingError(
            f"{name} is missing: make test installs it (apt-get install {Path(name).name})"
        )
    return found


# ---- /proc -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the harness uses."""

    state: str  # Z: a zombie, gone but for its exit status
    ppid: int
    pgid: int
    cpu_ticks: int  # user + system time, in clock ticks


def read_stat(pid: int) -> ProcStat:
    """Read /proc/<pid>/stat; raise FileNotFoundError or ProcessLookupError if the process is gone."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return ProcStat(fields[0], int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]))


def all_stats() -> dict[int, ProcStat]:
    """Return the stat of every process still there."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                stats[int(entry.name)] = read_stat(int(entry.name))  # skipped: gone while we looked
    return stats


def children(pid: int) -> set[int]:
    """Return the pids of a process's living children (a gunicorn master's: its workers)."""
    return {child for child, stat in all_stats().items() if stat.ppid == pid and stat.state != "Z"}


def process_tree(root: int) -> list[int]:
    """Return ``root`` and all its descendants."""
    by_parent: dict[int, list[int]] = {}
    for pid, stat in all_stats().items():
        by_parent.setdefault(stat.ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(by_parent.get(pid, []))
    return tree


def group_members(pgid: int) -> list[int]:
    """Return the living processes of a process group."""
    return [pid for pid, stat in all_stats().items() if stat.pgid == pgid and stat.state != "Z"]


def memory_kib(pid: int, field: str = "Pss") -> int:
    """Return a field of /proc/<pid>/smaps_rollup (``Pss``, ``Rss``, ...) in KiB.

    0 for a process that is gone or holds no memory (a zombie's rollup is empty).
    """
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def tree_memory_kib(root: int, field: str = "Pss") -> int:
    """Return the sum of a memory field over a process and its descendants, in KiB."""
    return sum(memory_kib(pid, field) for pid in process_tree(root))


def cpu_seconds(pids: Sequence[int]) -> float:
    """Return the user + system CPU seconds the given processes have used so far (gone ones: 0)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            ticks += read_stat(pid).cpu_ticks
    return ticks / os.sysconf("SC_CLK_TCK")


# ---- stopping --------------------------------------------------------------------------------


def kill_group(pgid: int, timeout: float = 5.0) -> bool:
    """SIGKILL every process of a group (nothing if it is empty); return whether all died in ``timeout``.

    A killed process dies when it is next scheduled, not when the signal is sent: a caller that
    looked right away found one still running (CI).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(NotReadyError):
        wait_until(lambda: not group_members(pgid), timeout=timeout, interval=0.01)
        return True
    return False


def stop_group(pgid: int, sig: int = signal.SIGTERM, timeout: float = GUNICORN_STOP_TIMEOUT_S) -> bool:
    """Stop a process group we did not start in this process: ``sig``, then SIGKILL after ``timeout``.

    Returns whether the group ended on ``sig`` alone.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    with contextlib.suppress(NotReadyError):
        wait_until(lambda: not group_members(pgid), timeout=timeout)
        return True
    if not kill_group(pgid):
        raise NotReadyError(f"process group {pgid} still has processes 5 s after SIGKILL")
    return False


_RUNNING: set[Process] = set()  # stopped at exit, whatever stopped the caller first


@atexit.register
def _kill_what_is_left() -> None:
    """SIGKILL the group of every process still running when Python exits (a test run cut short)."""
    for process in list(_RUNNING):
        process.kill()


# ---- servers in this process ----------------------------------------------------------------


class ThreadedHTTPServer:
    """An HTTP server on a free loopback port, in threads of this process, for a ``with`` block."""

    def __init__(self, handler: Callable[..., BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.server.daemon_threads = True  # a request still hanging never holds up the exit
        self.port = self.server.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, name=f"server {self.url}", daemon=True
        )

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# ---- processes -------------------------------------------------------------------------------


class Process:
    """A program started in its own process group, its output in a file, stopped with its group.

    ``log_path`` None: the output goes to an anonymous temporary file, closed by ``close()``.
    ``error_log_path``: stderr goes there instead of beside stdout.
    """

    stop_timeout = STOP_TIMEOUT_S
    find_program = staticmethod(find_program)  # tests swap in one that skips a test without it

    def __init__(
        self,
        command: Sequence[str] = (),
        *,
        cwd: Path = ROOT,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        error_log_path: Path | None = None,
        popen_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.log_path = log_path
        self.error_log_path = error_log_path
        self.popen_options = dict(popen_options or {})
        # A file, not a pipe: an unread pipe fills up and blocks the program.
        self._temporary_log: IO[bytes] | None = None if log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.perf_counter() just before the start

    @property
    def pid(self) -> int:
        """Return the pid of the started program (the leader of its process group)."""
        if self.process is None:
            raise HarnessError(f"{self.name} was never started")
        return self.process.pid

    @property
    def name(self) -> str:
        """Return the program's name, for messages (the module's, for ``python -m module``)."""
        if self.command[1:2] == ["-m"]:
            return self.command[2]
        return Path(self.command[0]).name if self.command else type(self).__name__

    def launch(self, command: Sequence[str] | None = None) -> Self:
        """Start the program (again, after a stop) without waiting for it to be ready."""
        if command is not None:
            self.command = list(command)
        with contextlib.ExitStack() as files:
            if self._temporary_log is not None:
                stdout: IO[bytes] = self._temporary_log
            else:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                stdout = files.enter_context(open(self.log_path, "ab"))
            stderr: IO[bytes] | int = subprocess.STDOUT
            if self.error_log_path is not None:
                stderr = files.enter_context(open(self.error_log_path, "ab"))
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own group: stop() reaches every child it forks
                **self.popen_options,
            )
        _RUNNING.add(self)
        return self

    def running(self) -> bool:
        """Return whether the program was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def check_running(self) -> None:
        """Raise ProcessExitedError, with the end of its output, if the program has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ProcessExitedError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")

    def wait_ready(self, condition: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
        """Wait until ``condition()`` is truthy while the program runs; stop it and raise if not."""

        def ready() -> Any:
            self.check_running()
            return condition()

        ready.__doc__ = condition.__doc__
        try:
            return wait_until(ready, timeout=timeout, interval=interval)
        except NotReadyError as exc:
            self.stop()
            raise NotReadyError(f"{self.name} not ready: {exc}\n{self.log_tail()}") from exc

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int | None:
        """Send ``sig`` and wait; SIGKILL the group after ``timeout`` and anything of it left over.

        Returns the exit status (None if it never started). SIGKILL as ``sig`` is a crash.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                kill_group(self.process.pid)
                self.process.wait()
        if group_members(self.process.pid):  # a child outliving its parent, such as a worker
            kill_group(self.process.pid)
        _RUNNING.discard(self)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a machine failure would, and reap the leader."""
        if self.process is not None and (self.process.poll() is None or group_members(self.process.pid)):
            kill_group(self.process.pid)
            self.process.wait()
        _RUNNING.discard(self)

    def close(self) -> None:
        """Stop the program and close its temporary log."""
        self.stop()
        if self._temporary_log is not None:
            self._temporary_log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_so_far(self) -> str:
        """Return what the program printed so far (stdout; stderr too unless it has its own file)."""
        if self._temporary_log is not None:
            descriptor = self._temporary_log.fileno()
            # pread: the file offset is the program's, which still appends to it.
            return os.pread(descriptor, os.fstat(descriptor).st_size, 0).decode(errors="replace")
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last lines the program printed (its error log if it has one)."""
        if self.error_log_path is not None and self.error_log_path.exists():
            text = self.error_log_path.read_text(errors="replace")
        else:
            text = self.log_so_far()
        return "\n".join(text.splitlines()[-lines:])


def gunicorn_command(app_uri: str | None = None) -> list[str]:
    """Return the command that runs gunicorn with app/gunicorn_conf.py; ``app_uri`` overrides its app."""
    return [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), *([app_uri] if app_uri else [])]


class Gunicorn(Process):
    """gunicorn as deployed (app/gunicorn_conf.py) serving a model on a free loopback port, rate limiter off.

    The limiter is off because every user of the harness sends far more than a person would;
    ``env`` may turn it on (test_security does).
    """

    stop_timeout = GUNICORN_STOP_TIMEOUT_S

    def __init__(
        self,
        model_path: Path,
        env: Mapping[str, str] | None = None,
        app_uri: str | None = None,
        *,
        workers: int | None = None,
        log_path: Path | None = None,
        error_log_path: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        settings = {
            "CHATBOT_MODEL": str(Path(model_path).resolve()),
            "HOST": LOOPBACK,
            "PORT": str(self.port),
            "CHATBOT_RATE_LIMIT": "off",
            **({"WEB_CONCURRENCY": str(workers)} if workers else {}),
        }
        super().__init__(
            gunicorn_command(app_uri),
            env={**os.environ, **settings, **(env or {})},
            log_path=log_path,
            error_log_path=error_log_path,
        )

    def start(self, timeout: float = GUNICORN_START_TIMEOUT_S) -> Self:
        """Start gunicorn and wait until /readyz answers 200."""
        self.launch()
        readyz = f"{self.url}/readyz"

        def ready() -> bool:
            """gunicorn answers 200 on /readyz"""
            return http_ok(readyz)

        self.wait_ready(ready, timeout, interval=0.1)
        return self

    def worker_pids(self) -> set[int]:
        """Return the pids of the master's living workers."""
        return children(self.pid)


class RedisServer(Process):
    """A real redis-server on a loopback port, in ``directory``, with no persistence."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(cwd=directory, log_path=directory / "output.log")
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> Self:
        """Start redis-server (again, on the same port after a stop) and wait until it answers PING."""
        options = ["--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
        self.launch([self.find_program("redis-server"), *options, "--dir", str(self.directory)])
        self.wait_ready(self.answers_ping, timeout=10)
        return self

    def answers_ping(self) -> bool:
        """redis-server answers PING"""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class Nginx(Process):
    """A real nginx on a loopback port, balancing round-robin over the given upstream URLs."""

    def __init__(self, directory: Path, upstreams: Sequence[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(cwd=directory, log_path=directory / "output.log")
        self.directory = directory
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        servers = "".join(f"        server {url.removeprefix('http://')};\n" for url in upstreams)
        temp_paths = "".join(
            f"    {kind}_temp_path {directory / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, nginx would run its worker as nobody, who cannot enter pytest's private tmp dirs.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.config = directory / "nginx.conf"
        self.config.write_text(
            f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} warn;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n    access_log off;\n{temp_paths}"
            f"    upstream chatbot {{\n{servers}    }}\n"
            f"    server {{\n        listen {LOOPBACK}:{self.port};\n"
            "        location / { proxy_pass http://chatbot; proxy_set_header Host $host; }\n"
            "    }\n}\n"
        )

    def start(self) -> Self:
        """Start nginx in the foreground and wait until it proxies /healthz."""
        paths = ["-p", str(self.directory), "-c", str(self.config), "-e", str(self.directory / "error.log")]
        self.launch([self.find_program("nginx"), *paths, "-g", "daemon off;"])
        healthz = f"{self.url}/healthz"

        def proxies() -> bool:
            """nginx proxies /healthz"""
            return http_ok(healthz)

        self.wait_ready(proxies, timeout=10)
        return self


class PostgresServer(Process):
    """A real PostgreSQL server on a loopback port, in a throwaway data directory, fsync off.

    The server refuses to run as root, so under root it runs as the ``postgres`` user in a
    directory that user owns (pytest's temporary folders are private to root). ``crash()`` kills the
    postmaster and its backends together, as a machine failure would.
    """

    def __init__(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="chatbot-pg-"))
        as_user = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}
        super().__init__(cwd=directory, log_path=directory / "output.log", popen_options=as_user)
        self.directory = directory
        self.port = free_port()
        self.url = f"postgresql://chatbot@{LOOPBACK}:{self.port}/postgres"
        self.data = directory / "data"
        try:
            if as_user:
                shutil.chown(directory, "postgres", "postgres")
            subprocess.run(
                [self.program("initdb"), "-D", str(self.data), "-U", "chatbot", "--auth=trust", "-E", "UTF8"],
                check=True,
                capture_output=True,
                **as_user,
            )
        except BaseException:
            self.remove()
            raise

    def program(self, name: str) -> str:
        """Return the path of a PostgreSQL server program (Debian keeps them out of PATH)."""
        found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        return str(found[-1]) if found else self.find_program(name)

    def start(self) -> Self:
        """Start the server (again, on the same port and data after a stop) and wait until it answers."""
        import psycopg

        options = ["-h", LOOPBACK, "-p", str(self.port), "-k", str(self.directory), "-c", "fsync=off"]
        self.launch([self.program("postgres"), "-D", str(self.data), *options])

        def answers() -> bool:
            """postgres accepts a connection"""
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
            except psycopg.OperationalError:
                return False
            return True

        self.wait_ready(answers, timeout=20)
        return self

    def crash(self) -> None:
        """Kill the postmaster and every backend at once."""
        if self.running():
            self.kill()

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int | None:
        """Stop the server (SIGTERM means fast shutdown, SIGINT to postgres), killing what is left."""
        return super().stop(signal.SIGINT if sig == signal.SIGTERM else sig, timeout)

    def remove(self) -> None:
        """Delete the data directory (after a stop)."""
        shutil.rmtree(self.directory, ignore_errors=True)


# ---- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("free-port", help="print a TCP port free on 127.0.0.1")
    start = commands.add_parser(
        "start-gunicorn", help="start gunicorn (app/gunicorn_conf.py, rate limiter off) and print 'PID URL'"
    )
    start.add_argument("--model", type=Path, required=True, help="trained .h5 bundle")
    start.add_argument("--workers", type=int, help="WEB_CONCURRENCY")
    start.add_argument("--log", type=Path, help="where gunicorn's output goes (default: a new file in /tmp)")
    start.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="more environment")
    start.add_argument("--timeout", type=float, default=GUNICORN_START_TIMEOUT_S, help="seconds to wait")
    stop = commands.add_parser("stop", help="stop a process group: SIGTERM, then SIGKILL after --timeout")
    stop.add_argument("pid", type=int, help="the group's leader, as start-gunicorn printed it")
    stop.add_argument("--timeout", type=float, default=GUNICORN_STOP_TIMEOUT_S)
    args = parser.parse_args(argv)
    if args.command == "start-gunicorn" and any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status says whether it worked."""
    args = parse_args(argv)
    if args.command == "free-port":
        print(free_port())
        return 0
    if args.command == "stop":
        return 0 if stop_group(args.pid, timeout=args.timeout) else 1
    log = args.log or Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
    env = dict(item.split("=", 1) for item in args.env)
    server = Gunicorn(args.model, env, workers=args.workers, log_path=log)
    try:
        server.start(timeout=args.timeout)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _RUNNING.discard(server)  # it outlives this command: the caller stops it with `stop PID`
    print(server.pid, server.url, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
