"""The speed limit for /predict: the same Flask stack answering a fixed string, no model."""

from flask import Flask, Response, jsonify


def create_app() -> Flask:
    """Build a Flask app whose ``POST /predict`` answers "Hello!" without reading the body."""
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> Response:
        return Response("Hello!", mimetype="text/plain")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
