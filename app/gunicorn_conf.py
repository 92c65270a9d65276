"""gunicorn settings; the values that vary per deployment come from the environment (app/config.py).

They ship inside the package, so `chatbot serve` finds them in an installed wheel as in a checkout;
gunicorn reads them by path (``--config app/gunicorn_conf.py``), before anything imports the app.

The hooks at the end make a preloaded app reloadable (SIGHUP loads the new model in the master
before fresh workers are forked) and keep Prometheus' per-worker files in order.
"""

import atexit
import importlib.util
import os
import shutil
import signal
import tempfile
from functools import partial
from pathlib import Path

# The forward pass multiplies small matrices: BLAS threads only add contention between workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_METRICS_OWNER = "_CHATBOT_METRICS_MASTER"  # the master pid that prepared the metrics directory


def _server_settings() -> dict:
    """Read the settings with app/config.py alone: importing the app package here would load
    Flask, numpy and NLTK before gunicorn has even chosen which application to serve."""
    path = Path(__file__).resolve().parent / "config.py"
    spec = importlib.util.spec_from_file_location("_chatbot_settings", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.server_settings(os.environ)


def _remove_temporary_metrics_dir(directory: str, master_pid: int) -> None:
    if os.getpid() == master_pid:
        shutil.rmtree(directory, ignore_errors=True)


def _prepare_metrics_dir(directory: str | None) -> None:
    """Give prometheus_client's multiprocess mode an empty directory, once per master process.

    It must be in the environment before the app imports prometheus_client. gunicorn reads this
    file again on SIGHUP: the same master keeps its directory, so counters survive a reload.
    """
    if os.environ.get(_METRICS_OWNER) == str(os.getpid()):
        return
    if directory is None:
        directory = tempfile.mkdtemp(prefix="chatbot-metrics-")
        # At any exit of this master, a start stopped by a bad model included (gunicorn's on_exit
        # hook does not run then). Forked workers inherit the handler, so it checks the pid.
        atexit.register(_remove_temporary_metrics_dir, directory, os.getpid())
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):  # left by an earlier server: not this one's counts
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ[_METRICS_OWNER] = str(os.getpid())


_settings = _server_settings()

# gevent's worker gives each connection a greenlet, not a thread: a client that sends part of a
# request and stalls holds a few KB, not one of a handful of threads (256 stalled connections
# froze the 4 threads of gthread; bench/slow_clients.py). The patch comes before the preloaded
# app imports socket, ssl and threading, so every lock and socket the app makes cooperates.
# CHATBOT_WORKER_CLASS=gthread (threads, no patch) is there to compare with (bench/throughput.py).
if _settings["worker_class"] == "gevent":
    from gevent import monkey

    monkey.patch_all()
_prepare_metrics_dir(_settings["metrics_dir"])

bind = f"{_settings['host']}:{_settings['port']}"
workers = _settings["workers"]
worker_class = _settings["worker_class"]
worker_connections = _settings["worker_connections"]  # open connections per worker, stalled ones included
threads = _settings["threads"]  # gthread only
timeout = _settings["timeout"]
graceful_timeout = 20
keepalive = 5  # the gevent worker also drops a connection whose request line and headers take longer
preload_app = True  # load the model once in the master; forked workers share its memory
accesslog = "-"
# gunicorn's default line, but the path without its query string: /predict?data=... carries a
# visitor's message, which must not reach the logs unredacted (nor at all when CHATBOT_LOG is off).
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'
errorlog = "-"
loglevel = _settings["log_level"]
# The app's and the core's log lines (session store outages, model reloads) go to stderr in
# gunicorn's format, at gunicorn's level. gunicorn's own loggers are left out here, so they keep
# their handlers.
logconfig_dict = {
    "root": {"level": "WARNING", "handlers": ["error_console"]},
    "loggers": {
        "app": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
        "chatbot": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
    },
}
wsgi_app = "app:create_app_or_exit()"  # a bad model: one line and exit status 2
control_socket_disable = True  # unused; one shared default path would clash between instances


def on_reload(server) -> None:
    """On SIGHUP, load the model in the master, so the workers forked next serve it.

    gunicorn restarts the workers on SIGHUP but keeps a preloaded app as it was. A bundle that
    does not load is refused: the new workers then serve the old model.
    """
    from app.reload import reload_model
    from chatbot.errors import BundleError

    try:
        reload_model(server.app.wsgi())
    except BundleError as exc:  # every fault of the file: its message says what to fix
        server.log.error("model reload refused, still serving the old model: %s", exc)
    except Exception:  # a bug, not the file: whatever it is, the master and its workers must live on
        server.log.exception("model reload failed, still serving the old model")


def pre_fork(server, worker) -> None:
    """Let the master's pending greenlets finish before a worker copies them: the rate limiter's
    in-memory storage starts a 10 ms timer at load, which a forked worker could not end cleanly
    (a KeyError traceback from threading at every worker boot).

    Then freeze the loaded objects out of the garbage collector's sight: a worker's full
    collection would otherwise write to every one of them (the sentence encoder's tokenizer alone
    holds hundreds of thousands) and so copy their shared pages (16 MiB less PSS for two workers,
    bench/encoder_cost.py's setting)."""
    import gc
    import time

    time.sleep(0.02)  # gevent's sleep under its patch, which lets the timer's greenlet run
    gc.freeze()


def post_fork(server, worker) -> None:
    """Let POST /admin/reload in this worker reach every worker, through a SIGHUP to the master;
    give the requests gunicorn refuses itself (400, 431...) the app's JSON errors and headers."""
    from gunicorn import util

    from app.errors import raw_error_response

    bot = server.app.wsgi().extensions.get("chatbot")  # None in bench/hello_app.py, served alike
    if bot is not None:
        bot.restart_workers = partial(os.kill, server.pid, signal.SIGHUP)
    util.write_error = lambda sock, status, reason, message: util.write_nonblock(
        sock, raw_error_response(status, reason, message)
    )


def child_exit(server, worker) -> None:
    """Drop the live gauges of a worker that is gone, and fold its counters into the archive."""
    from prometheus_client import multiprocess

    from app.metrics import archive_dead_process

    multiprocess.mark_process_dead(worker.pid)
    archive_dead_process(os.environ["PROMETHEUS_MULTIPROC_DIR"], worker.pid)
