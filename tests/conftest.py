"""Shared fixtures: a tiny bot trained once per session, the app around it, and a real server."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from app import create_app
from chatbot.bundle import CHECKSUM_KEY, METADATA_KEY, Bundle, metadata_checksum
from chatbot.config import ModelConfig
from chatbot.data import Intent, validate_intents
from chatbot.dialogue import Dialogue
from chatbot.engine import Engine
from chatbot.slots import validate_domain

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INTENTS = ROOT / "data" / "intents.json"
# Git-ignored: a test run leaves the tree as it was; `make reliability-report` publishes the figures.
FIGURES_DIR = ROOT / "build" / "reliability"

TINY_INTENTS = {
    "intents": [
        {
            "tag": "greeting",
            "patterns": ["hi", "hello", "hey there", "good morning", "what's up", "hello bot"],
            "responses": ["Hello!", "Hi there."],
        },
        {
            "tag": "goodbye",
            "patterns": ["bye", "goodbye", "see you later", "cya", "have a good day", "talk to you soon"],
            "responses": ["Bye!", "See you."],
        },
        {
            "tag": "order",
            "patterns": ["where is my order", "track my parcel", "order status", "my delivery is late"],
            "responses": ["What is your order number?"],
            "context_set": "order_number",
        },
        {
            "tag": "order_number",
            "patterns": ["it is 12345", "order number 555", "the number is 42", "number 777"],
            "responses": ["Thanks, looking it up."],
            "context_filter": "order_number",
            "context_set": "",
        },
        {"tag": "fallback", "patterns": [], "responses": ["Sorry, say again?"]},
    ]
}
TINY_CONFIG = ModelConfig(epochs=200, seed=7, deep_weight=0.5)  # both parts, so tests cover both
# The tiny bot with an order number to remember and look up, and a goodbye that hands over.
SLOT_DATA = {
    "entities": {"order_number": {"regex": r"[a-z]{1,3}-?\d{4,6}|\d{5,6}"}},
    "slots": {"order_number": {"entity": "order_number"}},
}
ASK_NUMBER = "Which order number?"
DEFAULT_ORDERS_URL = "http://127.0.0.1:8081/"  # where the default bot's order_status looks orders up
ORDERS_SECRET = "orders-secret-0123456789"


def with_slots(bundle: Bundle, action_url: str | None = None, timeout_ms: int = 1000) -> Bundle:
    """Return the tiny bundle whose order intents require an order number and call ``action_url``."""
    require = [{"slot": "order_number", "ask": ASK_NUMBER}]
    action = {"url": action_url, "timeout_ms": timeout_ms, "fallback": "No lookup for {order_number} now."}
    changes = {
        "order": {"require": require, "responses": ["Order {order_number} is on its way."]},
        "order_number": {"require": require, "responses": ["Order {order_number}, noted."]},
        "goodbye": {"handoff": True, "responses": ["A person will answer here."]},
    }
    raw = copy.deepcopy(TINY_INTENTS) | SLOT_DATA
    for intent in raw["intents"]:
        intent.update(changes.get(intent["tag"], {}))
        if action_url and intent["tag"] in ("order", "order_number"):
            intent["action"] = action
    return dataclasses.replace(bundle, intents=tuple(validate_intents(raw)), domain=validate_domain(raw))


@pytest.fixture(scope="session", autouse=True)
def conversation_log_off() -> Iterator[None]:
    """Keep the conversation log off in apps and servers, unless a test turns it on.

    Apps built on the default model path would write their database beside models/ in the repo.
    """
    previous = os.environ.get("CHATBOT_LOG")
    os.environ["CHATBOT_LOG"] = "off"
    yield
    if previous is None:
        os.environ.pop("CHATBOT_LOG", None)
    else:
        os.environ["CHATBOT_LOG"] = previous


@pytest.fixture(scope="session")
def tiny_intents() -> list[Intent]:
    """Return the tiny bot's validated intents."""
    return validate_intents(TINY_INTENTS)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_intents: list[Intent], tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """Train the tiny bot once per session and return it as saved and loaded from disk."""
    from chatbot.train import train

    path = train(tiny_intents, TINY_CONFIG).save(tmp_path_factory.mktemp("tiny") / "tiny.h5")
    return Bundle.load(path)


@pytest.fixture(scope="session")
def tiny_model_path(tiny_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh copy of the tiny bundle's file."""
    return tiny_bundle.save(tmp_path_factory.mktemp("tiny-copy") / "model.h5")


@pytest.fixture(scope="session")
def retrained_bundle(tiny_bundle: Bundle) -> Bundle:
    """Return the tiny bot with slightly other weights: another model, as a retraining makes."""
    weights = {layer: dict(values) for layer, values in tiny_bundle.weights.items()}
    last_layer = list(weights)[-1]
    bias = list(weights[last_layer])[-1]
    weights[last_layer][bias] = weights[last_layer][bias] + 0.01
    return dataclasses.replace(tiny_bundle, weights=weights, created_at="2030-01-01T00:00:00+00:00")


@pytest.fixture(scope="session")
def default_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the default bot of data/intents.json once per session, through the CLI."""
    path = tmp_path_factory.mktemp("default") / "chatbot_model.h5"
    run_cli("train", "--data", str(DEFAULT_INTENTS), "--out", str(path), check=True)
    return path


# A German bot with its widget texts in German; one answer is Arabic, to show right-to-left text.
GERMAN_INTENTS = {
    "language": "de-DE",
    "widget": {
        "title": "Hilfe-Chat",
        "welcome": "Hallo! Stell mir eine Frage.",
        "placeholder": "Nachricht eingeben…",
        "send": "Senden",
        "restart": "Neues Gespräch beginnen",
        "retry": "Nochmal versuchen",
        "error_network": "Der Chat ist gerade nicht erreichbar. Bitte versuche es gleich noch einmal.",
    },
    "intents": [
        {
            "tag": "wecker",
            "patterns": [
                "Stell einen Wecker für sieben Uhr",
                "Weck mich morgen um acht",
                "Wecker auf 6 Uhr stellen",
                "Kannst du mich morgen früh wecken",
                "Ich brauche einen Wecker",
            ],
            "responses": ["Der Wecker ist gestellt."],
        },
        {
            "tag": "wetter",
            "patterns": [
                "Wie wird das Wetter morgen",
                "Regnet es heute",
                "Brauche ich einen Regenschirm",
                "Wie warm ist es draußen",
                "Wettervorhersage für München",
            ],
            "responses": ["Morgen wird es sonnig."],
        },
        {
            "tag": "arabisch",
            "patterns": [
                "Sag etwas auf Arabisch",
                "Sprichst du Arabisch",
                "Antworte auf Arabisch",
                "Arabische Begrüßung bitte",
                "Wie grüßt man auf Arabisch",
            ],
            "responses": ["مرحبا! كيف يمكنني مساعدتك اليوم؟"],
        },
    ],
}


@pytest.fixture(scope="session")
def german_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the German bot once per session, through the CLI as an author would."""
    folder = tmp_path_factory.mktemp("german")
    data = write_json(folder / "intents.json", GERMAN_INTENTS)
    run_cli("train", "--data", str(data), "--out", str(folder / "model.h5"), check=True)
    return folder / "model.h5"


@dataclasses.dataclass(frozen=True)
class OrderBot:
    """The default bot, its actions pointed at a running example order service (deploy/orders)."""

    model_path: Path
    env: dict[str, str]  # the server settings that allow the service's URL
    orders_url: str
    orders_log: Path


@pytest.fixture(scope="session")
def order_bot(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderBot]:
    """Run deploy/orders/orders.py on a free loopback port and the default bot calling it.

    The default bot calls 127.0.0.1:8081; on a shared machine that port may be anyone's, so the
    bundle's action URLs are moved to the service's own port (no retraining: only URLs change).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    directory = tmp_path_factory.mktemp("orders")
    bundle = Bundle.load(default_model_path)
    intents = tuple(
        dataclasses.replace(
            intent,
            action=dataclasses.replace(
                intent.action, url=intent.action.url.replace(DEFAULT_ORDERS_URL, base)
            ),
        )
        if intent.action
        else intent
        for intent in bundle.intents
    )
    model_path = dataclasses.replace(bundle, intents=intents).save(directory / "model.h5")
    log_path = directory / "orders.log"
    env = {"CHATBOT_ACTION_ALLOWLIST": base, "CHATBOT_ACTION_SECRET": ORDERS_SECRET}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy" / "orders" / "orders.py"), "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "CHATBOT_ACTION_SECRET": ORDERS_SECRET},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def listens() -> bool:
            """the order service accepts connections"""
            if process.poll() is not None:
                raise AssertionError(f"orders.py exited:\n{log_path.read_text()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listens, timeout=10)
        yield OrderBot(model_path, env, base, log_path)
    finally:
        stop_process(process, signal.SIGTERM, timeout=5)


@pytest.fixture
def engine(tiny_bundle: Bundle) -> Engine:
    """Return a numpy engine for the tiny bot."""
    return Engine.from_bundle(tiny_bundle)


@pytest.fixture
def dialogue(engine: Engine) -> Dialogue:
    """Return a dialogue over the tiny bot with a seeded choice of responses."""
    return Dialogue(engine, threshold=0.5, rng=random.Random(0))


@pytest.fixture
def app(dialogue: Dialogue):
    """Return the Flask app around the tiny bot, with fresh sessions per test."""
    return create_app(
        {"TESTING": True, "CORS_ORIGINS": ("http://127.0.0.1:8001",), "RATE_LIMIT": None}, dialogue=dialogue
    )


@pytest.fixture
def client(app):
    """Return a Flask test client."""
    return app.test_client()


def run_cli(*args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m chatbot`` in a subprocess, as a user would."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **kwargs.pop("env", {})}
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"chatbot {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """Send ``sig`` to a running process and wait for it; kill it if it outlives ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Server:
    """A real gunicorn process serving the app on a loopback port."""

    def __init__(
        self, model_path: Path, env: dict[str, str] | None = None, app_uri: str | None = None
    ) -> None:
        self.app_uri = app_uri  # None: the app gunicorn.conf.py names
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CHATBOT_MODEL": str(model_path),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "CHATBOT_RATE_LIMIT": "off",  # tests send far more than a person would; test_security limits
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        # A file, not a pipe: an unread pipe fills up and blocks gunicorn. Closed by the fixture.
        self.log_file = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115

    def start(self, timeout: float = 30.0) -> Server:
        """Start gunicorn and wait until /readyz answers."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py")]
            + ([self.app_uri] if self.app_uri else []),
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"gunicorn did not become ready:\n{self.output()}")

    def stop(self) -> None:
        """Stop gunicorn and its workers."""
        stop_process(self.process, signal.SIGTERM, timeout=20)

    def output(self) -> str:
        """Stop the server and return what it printed."""
        self.stop()
        self.log_file.seek(0)
        return self.log_file.read()

    def log_so_far(self) -> str:
        """Return what the running server printed so far, leaving the file's offset to gunicorn."""
        descriptor = self.log_file.fileno()
        return os.pread(descriptor, os.fstat(descriptor).st_size, 0).decode(errors="replace")

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET a path of the server."""
        return requests.get(f"{self.url}{path}", **{"timeout": 10, **kwargs})

    def post(self, path: str, payload: dict, **kwargs) -> requests.Response:
        """POST JSON to the server."""
        return requests.post(f"{self.url}{path}", json=payload, **{"timeout": 10, **kwargs})


def worker_pids(server: Server) -> set[int]:
    """Return the pids of the gunicorn master's children: its workers."""
    master = server.process.pid
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        if int(fields[1]) == master:
            children.add(int(stat.parent.name))
    return children


@contextlib.contextmanager
def running_servers() -> Iterator:
    """Yield a function that starts real servers; stop all of them on exit."""
    servers: list[Server] = []

    def start(model_path: Path, env: dict[str, str] | None = None, app_uri: str | None = None) -> Server:
        server = Server(model_path, env, app_uri)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
            server.log_file.close()


@pytest.fixture
def serve() -> Iterator:
    """Start real servers for a test and stop all of them afterwards."""
    with running_servers() as start:
        yield start


def write_json(path: Path, value: object) -> Path:
    """Write a JSON file and return its path."""
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def rewrite_metadata(path: Path, edit: Callable[[dict], object], architecture: dict | None = None) -> Path:
    """Edit a saved bundle's metadata (and architecture) in place and sign it again, as a tool would.

    The checksum then matches: what is left to catch a bad value is the validation at load.
    """
    import h5py

    with h5py.File(path, "r+") as file:
        metadata = json.loads(file[METADATA_KEY][()])
        edit(metadata)
        if architecture is not None:
            file.attrs["model_config"] = json.dumps(architecture)
        metadata[CHECKSUM_KEY] = metadata_checksum(metadata, json.loads(file.attrs["model_config"]))
        del file[METADATA_KEY]
        file.create_dataset(METADATA_KEY, data=json.dumps(metadata))
    return path


def record_figures(name: str, figures: dict[str, object]) -> None:
    """Keep a test's measured figures for docs/reliability.md (``make reliability-report``)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    figures = {**figures, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    (FIGURES_DIR / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def wait_until(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05) -> object:
    """Poll until ``condition()`` is truthy and return its value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {condition.__doc__ or condition}")
        time.sleep(interval)


def require_program(path: str) -> str:
    """Return a system program's path; skip the test without it, except under CI where it fails."""
    found = shutil.which(path, path=os.defpath + ":/usr/sbin:/usr/bin")
    if found is None:
        message = f"{path} is missing: make test installs it (apt-get install {Path(path).name})"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing program there is a broken setup
        pytest.skip(message)
    return found


class Process:
    """A system program run on loopback for a test, with its output in a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "output.log"
        self.process: subprocess.Popen | None = None

    def launch(self, command: list[str]) -> None:
        """Start the program in its directory."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the program (SIGKILL is a crash) and wait for it."""
        stop_process(self.process, sig, timeout=10)

    def check_running(self) -> None:
        """Fail with the program's output if it has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.process.args[0]} exited:\n{self.log_path.read_text()}")


class RedisServer(Process):
    """A real redis-server on a loopback port, with no persistence."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start redis-server (again, on the same port after a stop) and wait until it answers."""
        import redis

        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.launch([require_program("redis-server"), *options, "--dir", str(self.directory)])
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers() -> bool:
            """redis-server answers PING"""
            self.check_running()
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, timeout=10)
        client.close()
        return self


class Nginx(Process):
    """A real nginx on a loopback port, balancing round-robin over the given upstream URLs."""

    def __init__(self, directory: Path, upstreams: list[str]) -> None:
        super().__init__(directory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
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
            f"    server {{\n        listen 127.0.0.1:{self.port};\n"
            "        location / { proxy_pass http://chatbot; proxy_set_header Host $host; }\n"
            "    }\n}\n"
        )

    def start(self) -> Nginx:
        """Start nginx in the foreground and wait until it proxies /healthz."""
        nginx = require_program("nginx")
        error_log = self.directory / "error.log"
        paths = ["-p", str(self.directory), "-c", str(self.config), "-e", str(error_log)]
        self.launch([nginx, *paths, "-g", "daemon off;"])

        def proxies() -> bool:
            """nginx proxies /healthz"""
            self.check_running()
            try:
                return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(proxies, timeout=10)
        return self


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Collect the system programs a test starts and stop every one afterwards, even on failure."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


def postgres_program(name: str) -> str:
    """Return the path of a PostgreSQL server program (Debian keeps them out of PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else require_program(name)


class PostgresServer(Process):
    """A real PostgreSQL server on a loopback port, in a throwaway data directory, fsync off.

    The server refuses to run as root, so under root it runs as the ``postgres`` user in a
    directory that user owns. It runs in its own process group: a crash test kills the postmaster
    and its backends together, as a machine failure would.
    """

    def __init__(self) -> None:
        # pytest's own temporary folders are private to root; the postgres user needs its own.
        super().__init__(Path(tempfile.mkdtemp(prefix="chatbot-pg-")))
        self.port = free_port()
        self.url = f"postgresql://chatbot@127.0.0.1:{self.port}/postgres"
        self.data = self.directory / "data"
        self.as_user = (
            {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}
        )
        if self.as_user:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            [postgres_program("initdb"), "-D", str(self.data), "-U", "chatbot", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            **self.as_user,
        )

    def start(self) -> PostgresServer:
        """Start the server (again, on the same port and data after a stop) and wait until it answers."""
        import psycopg

        options = ["-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.directory), "-c", "fsync=off"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [postgres_program("postgres"), "-D", str(self.data), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self.as_user,
            )

        def answers() -> bool:
            """postgres accepts a connection"""
            self.check_running()
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
            except psycopg.OperationalError:
                return False
            return True

        wait_until(answers, timeout=20)
        return self

    def crash(self) -> None:
        """Kill the postmaster and every backend at once (SIGKILL to its process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGINT: fast shutdown), killing whatever is left of it."""
        stop_process(self.process, signal.SIGINT if sig == signal.SIGTERM else sig, timeout=10)
        self.crash()

    def remove(self) -> None:
        """Delete the data directory (after a stop)."""
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """Start one PostgreSQL server for a test module; stop and delete it afterwards."""
    require_program(postgres_program("postgres"))
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
        server.remove()


class WebhookServer:
    """A real HTTP server on 127.0.0.1 playing a webhook; ``mode`` says how it answers.

    Modes: ``ok`` (a JSON reply naming the order), ``hang`` (never answers), ``500``, ``invalid``
    (not JSON) and ``huge`` (10 MB). Every request's body and headers are kept in ``received``.
    """

    HUGE_BYTES = 10 * 1024 * 1024

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.received: list[tuple[dict, dict]] = []
        self.release = threading.Event()  # ends hanging requests at shutdown
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                webhook.received.append((body, dict(self.headers)))
                if webhook.mode == "hang":
                    webhook.release.wait(30)
                    return
                status, payload = 200, b""
                if webhook.mode == "ok":
                    number = body.get("slots", {}).get("order_number", "?")
                    answer = {"text": f"Order {number} ships today.", "quick_replies": ["Thanks"]}
                    payload = json.dumps(answer).encode()
                elif webhook.mode == "500":
                    status, payload = 500, b'{"text": "broken"}'
                elif webhook.mode == "invalid":
                    payload = b"<html>not json</html>"
                elif webhook.mode == "huge":
                    payload = b'{"text": "' + b"x" * webhook.HUGE_BYTES + b'"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # The client may stop reading: that is what a size cap does.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
