"""gunicorn settings; the values that vary per deployment come from the environment (app/config.py)."""

import os

# The forward pass multiplies small matrices: BLAS threads only add contention between workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from app.config import server_settings  # after the BLAS setting, which numpy reads at import

_settings = server_settings(os.environ)

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
