"""Settings from the environment: defaults, parsing and clear errors."""

from __future__ import annotations

import os

import pytest

from app.config import app_settings, server_settings
from chatbot.classifier.config import LARGE_DATASET, MANY_INTENTS, ModelConfig
from chatbot.cli import build_parser, database_url
from chatbot.errors import ChatbotError


def test_defaults() -> None:
    settings = app_settings({})
    assert settings["MODEL_PATH"] == "models/chatbot_model.h5"
    assert settings["THRESHOLD"] is None
    assert settings["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert settings["CORS_ORIGINS"] == ()
    assert (settings["REDIS_URL"], settings["ADMIN_TOKEN"], settings["METRICS_DIR"]) == (None, None, None)
    assert settings["SESSION_TTL"] == 30 * 60
    assert server_settings({}) == {
        "host": "0.0.0.0",
        "port": 5000,
        "workers": 1,
        "worker_class": "gevent",
        "worker_connections": 1000,
        "threads": 4,
        "timeout": 30,
        "metrics_dir": None,
        "log_level": "info",
    }


def test_values_from_the_environment() -> None:
    settings = app_settings(
        {
            "CHATBOT_MODEL": "/m.h5",
            "CHATBOT_THRESHOLD": "0.7",
            "CHATBOT_CORS_ORIGINS": "http://a.example, https://b.example/",
            "CHATBOT_MAX_MESSAGE_CHARS": "50",
            "REDIS_URL": "redis://cache:6379/0",
            "CHATBOT_ADMIN_TOKEN": " 0123456789abcdef ",
            "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
        }
    )
    assert settings["REDIS_URL"] == "redis://cache:6379/0"
    assert settings["ADMIN_TOKEN"] == "0123456789abcdef"
    assert settings["METRICS_DIR"] == "/run/metrics"
    assert settings["MODEL_PATH"] == "/m.h5"
    assert settings["THRESHOLD"] == 0.7
    assert settings["CORS_ORIGINS"] == ("http://a.example", "https://b.example")
    assert settings["MAX_MESSAGE_CHARS"] == 50
    assert server_settings({"PORT": "8080", "WEB_CONCURRENCY": "3"})["port"] == 8080
    assert server_settings({"CHATBOT_LOG_LEVEL": "DEBUG"})["log_level"] == "debug"
    gthread = server_settings({"CHATBOT_WORKER_CLASS": "gthread", "CHATBOT_THREADS": "8"})
    assert (gthread["worker_class"], gthread["threads"]) == ("gthread", 8)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHATBOT_THRESHOLD", "1.5", "between 0 and 1"),
        ("CHATBOT_THRESHOLD", "high", "could not convert"),
        ("CHATBOT_MAX_BODY_BYTES", "0", "positive integer"),
        ("PORT", "http", "invalid literal"),
        ("CHATBOT_LOG_LEVEL", "loud", "must be one of debug, info, warning"),
        ("CHATBOT_WORKER_CLASS", "sync", "must be one of gevent, gthread"),
        ("CHATBOT_ENGINE", "torch", "must be one of numpy, keras"),
        ("REDIS_URL", "cache:6379", "must start with redis://"),
        ("CHATBOT_ACTION_ALLOWLIST", "http://127.0.0.1:99999/", "has a bad port"),
        ("CHATBOT_HANDOFF_URL", "http://ops.example:80x/hook", "has a bad port"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    read = server_settings if name in {"PORT", "CHATBOT_LOG_LEVEL", "CHATBOT_WORKER_CLASS"} else app_settings
    with pytest.raises(ValueError, match=f"{name}='{value}': .*{message}"):
        read({name: value})


def test_a_short_admin_token_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="CHATBOT_ADMIN_TOKEN=<hidden>: must be at least 16") as error:
        app_settings({"CHATBOT_ADMIN_TOKEN": "hunter2"})
    assert "hunter2" not in str(error.value)


def test_model_config_merges_overrides_and_ignores_unknown_keys() -> None:
    config = ModelConfig().replace(epochs=5, seed=None)
    assert (config.epochs, config.seed) == (5, ModelConfig().seed)
    assert ModelConfig.from_dict({**config.to_dict(), "future_option": 1}) == config


def test_large_datasets_get_the_large_model() -> None:
    from chatbot.classifier.config import LARGE_DATASET

    assert ModelConfig.for_dataset(LARGE_DATASET - 1) == ModelConfig()
    large = ModelConfig.for_dataset(LARGE_DATASET)
    assert large.bidirectional
    assert large.lstm_units > ModelConfig().lstm_units
    assert large.label_smoothing > 0


def test_language_changes_only_what_it_must() -> None:
    """English bots keep every default; other small bots leave out the English off-topic queries."""
    assert ModelConfig.for_dataset(100, "en") == ModelConfig.for_dataset(100) == ModelConfig()
    german = ModelConfig.for_dataset(100, "de")
    assert german == ModelConfig(language="de", off_topic_weight=0.0)
    assert ModelConfig.for_dataset(LARGE_DATASET, "de") == ModelConfig.for_dataset(LARGE_DATASET).replace(
        language="de"
    )
    assert ModelConfig.from_dict(german.to_dict()) == german


def test_review_reads_the_servers_database_setting_by_the_same_name_and_rule(monkeypatch, tmp_path) -> None:
    args = build_parser([]).parse_args(["review", "--model", str(tmp_path / "m.h5")])
    monkeypatch.delenv("CHATBOT_DATABASE_URL", raising=False)
    assert database_url(args) == f"sqlite:///{tmp_path / 'conversations.sqlite3'}"
    monkeypatch.setenv("CHATBOT_DATABASE_URL", "postgresql://db/log")
    assert database_url(args) == app_settings(os.environ)["DATABASE_URL"] == "postgresql://db/log"
    monkeypatch.setenv("CHATBOT_DATABASE_URL", "mysql://db/log")
    with pytest.raises(ChatbotError, match="must start with sqlite:///"):
        database_url(args)


def test_a_bot_with_many_intents_trains_no_fallback_from_generic_queries() -> None:
    """Its intents cover many generic topics: the fallback intent would take its own questions."""
    assert ModelConfig.for_dataset(1_500, "en", MANY_INTENTS - 1).off_topic_weight == 0.5
    assert ModelConfig.for_dataset(1_500, "en", MANY_INTENTS).off_topic_weight == 0.0
