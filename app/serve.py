"""``chatbot serve``: the one command that needs the web layer, registered on the core's CLI.

The core's command line never names the web layer: it runs the commands that installed packages
declare in the ``chatbot.commands`` entry-point group (pyproject.toml), as Flask's CLI loads
``flask.commands``. This one replaces the process with gunicorn, configured by the settings file
that ships inside this package, so an installed wheel serves as a checkout does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from chatbot.cli import verbosity

GUNICORN_CONFIG = Path(__file__).resolve().parent / "gunicorn_conf.py"
GUNICORN_LOG_LEVELS = {-2: "error", -1: "warning", 0: "info", 1: "debug", 2: "debug"}  # by -v minus -q


def add_serve_command(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    """Declare ``serve`` with the core CLI's ``add_command`` (its shared -v/-q options included)."""
    serve = add_command("serve", help="serve the HTTP API with gunicorn")
    serve.add_argument(
        "--model", type=Path, help="model file (default: $CHATBOT_MODEL or models/chatbot_model.h5)"
    )
    serve.add_argument("--port", type=int, help="port (default: $PORT or 5000)")
    serve.set_defaults(command=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn serving the app factory (app/gunicorn_conf.py names it).

    The options reach gunicorn as the environment variables that app/config.py reads, so there is
    one reader of each setting.
    """
    if args.model:
        os.environ["CHATBOT_MODEL"] = str(args.model)
    if args.port:
        os.environ["PORT"] = str(args.port)
    if level := verbosity(args):  # without -v/-q, $CHATBOT_LOG_LEVEL or the config file decides
        os.environ["CHATBOT_LOG_LEVEL"] = GUNICORN_LOG_LEVELS[level]
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG)])
    return 0  # pragma: no cover - execvp does not return
