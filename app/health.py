"""Liveness, readiness and version endpoints for load balancers and operators."""

from __future__ import annotations

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
    """Say the model is loaded and the process can answer."""
    return jsonify(status="ready", model=current_bot().dialogue.engine.bundle.fingerprint)


@bp.get("/version")
def version() -> Response:
    """Describe the app and the model this process serves."""
    bundle = current_bot().dialogue.engine.bundle
    return jsonify(
        version=chatbot.__version__,
        model={
            "fingerprint": bundle.fingerprint,
            "trained_at": bundle.created_at,
            "intents": len(bundle.intents),
            "data_sha256": bundle.data_sha256,
            "threshold": current_bot().dialogue.threshold,
        },
    )
