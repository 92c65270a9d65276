"""Liveness, readiness and version endpoints for load balancers and operators."""

from __future__ import annotations

import os
import socket

from flask import Blueprint, Response, jsonify

import chatbot
from app.bot import current_bot

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Say the process is alive."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Say the model is loaded and the process can answer, and whether conversations keep context.

    A session store outage is reported as ``degraded`` with status 200: every replica shares the
    store, so taking them out of the load balancer would stop a bot that can still answer.
    """
    bot = current_bot()
    sessions = bot.sessions.status()
    return jsonify(
        status="ready" if sessions["available"] else "degraded",
        model=bot.dialogue.bundle.fingerprint,
        sessions=sessions,
    )


@bp.get("/version")
def version() -> Response:
    """Describe the app, the model this process serves and which process it is."""
    dialogue = current_bot().dialogue  # read once: a reload may swap it meanwhile
    bundle = dialogue.bundle
    return jsonify(
        version=chatbot.__version__,
        model={
            "fingerprint": bundle.fingerprint,
            "trained_at": bundle.created_at,
            "intents": len(bundle.intents),
            "data_sha256": bundle.data_sha256,
            "threshold": dialogue.threshold,
        },
        served_by={"host": socket.gethostname(), "pid": os.getpid()},
    )
