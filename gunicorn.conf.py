"""gunicorn settings; the values that vary per deployment come from the environment (app/config.py)."""

import importlib.util
import os
from pathlib import Path

# The forward pass multiplies small matrices: BLAS threads only add contention between workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _server_settings() -> dict:
    """Read the settings with app/config.py alone: importing the app package here would load
    Flask, numpy and NLTK before gunicorn has even chosen which application to serve."""
    path = Path(__file__).resolve().parent / "app" / "config.py"
    spec = importlib.util.spec_from_file_location("_chatbot_settings", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.server_settings(os.environ)


_settings = _server_settings()

bind = f"{_settings['host']}:{_settings['port']}"
workers = _settings["workers"]
threads = _settings["threads"]  # threads > 1 selects the gthread worker: a slow client holds one thread
worker_class = "gthread"
timeout = _settings["timeout"]
graceful_timeout = 20
keepalive = 5
preload_app = True  # load the model once in the master; forked workers share its memory
accesslog = "-"
errorlog = "-"
loglevel = "info"
wsgi_app = "app:create_app()"
control_socket_disable = True  # unused; one shared default path would clash between instances
