"""The conversation log's setting: the variable that names its database, and what a URL may be.

A module of its own, free of SQLAlchemy: app/config.py (which gunicorn reads before the app is
loaded) and `chatbot review` both read the setting by this one name and check it by this one rule.
"""

from __future__ import annotations

DATABASE_URL_VARIABLE = "CHATBOT_DATABASE_URL"
DATABASE_URL_PREFIXES = ("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")


def check_database_url(raw: str) -> str:
    """Return a configured database URL, or raise ValueError for a scheme the log cannot use."""
    if not raw.startswith(DATABASE_URL_PREFIXES):
        raise ValueError("must start with sqlite:///, postgresql:// or postgresql+psycopg://")
    return raw
