"""A test-only app whose ``/boom`` fails unexpectedly, for the error-leak tests under gunicorn.

gunicorn serves it with ``tests.broken_app:create()``; the error names a file path, which must
reach the log and never the client.
"""

from __future__ import annotations

from flask import Flask

from app import create_app

SECRET = "/srv/secret/settings.py"


def create() -> Flask:
    """Return the real app with one extra route that raises."""
    app = create_app()

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError(f"cannot read {SECRET}")

    return app
