"""Swap the served model for the bundle at CHATBOT_MODEL without a restart; a bad bundle is refused.

Three ways lead here. ``POST /admin/reload`` (app/admin.py) loads the bundle in the worker that got
the request. gunicorn preloads the app, so the other workers only see a new model once they are
forked again: the endpoint then sends SIGHUP to the master. On SIGHUP, ``on_reload`` in
app/gunicorn_conf.py calls ``reload_model`` in the master before gunicorn forks fresh workers and
stops the old ones gracefully. Either way the bundle is loaded and checked before it replaces the
one in service, and any failure leaves the old model answering.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from chatbot.data.actions import check_action_urls
from chatbot.dialogue.decision import Dialogue, load_dialogue
from chatbot.errors import BundleError, IntentsError

log = logging.getLogger(__name__)


def load_configured_dialogue(app: Flask) -> Dialogue:
    """Load the bundle the app's settings name; raise BundleError when it cannot serve.

    A bundle whose actions call URLs outside CHATBOT_ACTION_ALLOWLIST cannot serve: the allowlist
    is the operator's, so it is checked here, at start and at every reload, not at training.
    """
    config = app.config
    dialogue = load_dialogue(config["MODEL_PATH"], config["THRESHOLD"], config["ENGINE"])
    try:
        check_action_urls(dialogue.bundle.intents, config["ACTION_ALLOWLIST"], config["MODEL_PATH"])
    except IntentsError as exc:
        raise BundleError(str(exc)) from exc
    return dialogue


def reload_model(app: Flask, restarts_workers: bool = True) -> Dialogue:
    """Load the configured bundle and serve it in this process; on BundleError the old one stays.

    ``restarts_workers``: the reload goes on by forking fresh workers (always, from SIGHUP).
    """
    bot = app.extensions["chatbot"]
    old = bot.dialogue.bundle.fingerprint
    dialogue = load_configured_dialogue(app)
    bot.dialogue = dialogue
    log.info(
        "model reloaded: serving %s (was %s); %s",
        dialogue.bundle.fingerprint,
        old,
        conversations_after_reload(app, restarts_workers)["reason"],
    )
    return dialogue


def conversations_after_reload(app: Flask, restarts_workers: bool) -> dict[str, Any]:
    """Say whether conversations keep their context across a reload, and why.

    In-memory sessions live in the worker processes, and under gunicorn a reload replaces them
    all (the preloaded model can only reach workers by forking new ones): their conversations
    start afresh. Handing sessions from old workers to new ones would need a store outside the
    workers, which is what REDIS_URL is.
    """
    store = app.extensions["chatbot"].sessions.status()["store"]
    if store != "memory":
        return {"kept": True, "reason": f"conversations are kept: they live in {store}"}
    if not restarts_workers:
        return {"kept": True, "reason": "conversations are kept: this process serves the new model"}
    return {
        "kept": False,
        "reason": "in-memory conversations start afresh: the workers that held them are replaced "
        "(set REDIS_URL to keep them across reloads)",
    }
