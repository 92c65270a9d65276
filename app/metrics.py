"""Prometheus metrics at ``/metrics``: requests, latency, predictions, fallbacks and the model served.

Under gunicorn, app/gunicorn_conf.py points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the
app is imported. prometheus_client then keeps each worker's values in files there and ``/metrics``
adds up every worker's, whichever worker answers the scrape. Without that variable (tests, one
process) the values live in this app's own registry.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import prometheus_client
from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

import chatbot
from app.bot import Bot
from app.timer import elapsed_seconds
from chatbot.dialogue.decision import Reply

bp = Blueprint("metrics", __name__)

# Seconds; a /predict answer takes about a millisecond, a batch of 256 or a slow client far more.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Every label value comes from a fixed set: a client chooses its method and path, and each new
# value would be a new series that no worker ever frees (19,545 made-up methods: 51 MB a worker).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ENDPOINT = "unmatched"
LABEL_SETS = 4096  # label sets whose series each Metrics keeps at hand


class ModelInfo(Collector):
    """Report the model this process serves when scraped, so a reload shows at once."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def collect(self) -> Iterator[Metric]:
        """Yield ``chatbot_model_info`` with the model's identity as labels and the value 1."""
        bundle = self.bot.dialogue.bundle
        family = GaugeMetricFamily(
            "chatbot_model_info",
            "The model this replica serves (value 1).",
            labels=["fingerprint", "trained_at", "app_version"],
        )
        family.add_metric([bundle.fingerprint, bundle.created_at, chatbot.__version__], 1)
        yield family


class Metrics:
    """The service's metrics, registered in a registry of their own (one per app)."""

    def __init__(self, bot: Bot, multiprocess_dir: str | None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chatbot_http_requests",
            "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chatbot_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "chatbot_predictions",
            "Replies by intent: the one answered, or the best guess when falling back.",
            ["intent"],
            registry=self.registry,
        )
        self.fallbacks = Counter("chatbot_fallbacks", "Replies that fell back.", registry=self.registry)
        self.actions = Counter(
            "chatbot_action_calls",
            "Webhook calls of intents' actions by intent and outcome (ok, or how they failed).",
            ["intent", "outcome"],
            registry=self.registry,
        )
        self.handoffs = Counter(
            "chatbot_handoffs",
            "Conversations handed over to a person (started), handed back (released), and handoffs "
            "refused because no one is told about them (unstaffed).",
            ["event"],
            registry=self.registry,
        )
        self.model_info = ModelInfo(bot)
        self.registry.register(self.model_info)

        # The series of each label set, looked up once: labels() checks and locks on every call.
        # The label values come from fixed sets (routes, methods, statuses, intents), so these stay small.
        self.requests_of = lru_cache(maxsize=LABEL_SETS)(
            lambda endpoint, method, status: self.requests.labels(endpoint, method, str(status))
        )
        self.latency_of = lru_cache(maxsize=LABEL_SETS)(self.latency.labels)
        self.predictions_of = lru_cache(maxsize=LABEL_SETS)(self.predictions.labels)

    def observe_replies(self, replies: Iterable[Reply]) -> None:
        """Count the replies by intent and the fallbacks among them."""
        for reply in replies:
            self.predictions_of(reply.intent).inc()
            if reply.fallback:
                self.fallbacks.inc()

    def exposition(self) -> bytes:
        """Render every metric of this app in the Prometheus text format, all workers summed."""
        if self.multiprocess_dir is None:
            return prometheus_client.generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        registry.register(self.model_info)
        return prometheus_client.generate_latest(registry)


def archive_dead_process(directory: str, pid: int) -> None:
    """Add a dead worker's counters and histograms to one archive file per kind, and remove its own.

    prometheus_client keeps each worker's values in files named by its pid, and a counter must not
    go down when a worker goes: without this, every reload left two more files behind (57 after
    30 SIGHUPs), each read by every scrape. The archive is built aside and renamed into place, so
    a scrape sees the dead worker's values once, not twice (it reads only ``*.db``).
    """
    for kind in ("counter", "histogram"):
        dead = Path(directory) / f"{kind}_{pid}.db"
        if not dead.exists():
            continue
        archive = Path(directory) / f"{kind}_archive.db"
        building = archive.with_suffix(".building")
        if archive.exists():
            shutil.copyfile(archive, building)
        merged = MmapedDict(str(building))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(dead)):
                merged.write_value(key, merged.read_value(key)[0] + value, timestamp)
        finally:
            merged.close()
        os.replace(building, archive)
        dead.unlink()


def init_app(app: Flask, bot: Bot) -> None:
    """Create the app's metrics; count every request and observe its time (app/timer.py)."""
    metrics = app.extensions["metrics"] = Metrics(bot, app.config["METRICS_DIR"])

    @app.after_request
    def count_request(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else UNMATCHED_ENDPOINT
        method = request.method if request.method in METHODS else OTHER_METHOD
        metrics.requests_of(endpoint, method, response.status_code).inc()
        if (seconds := elapsed_seconds()) is not None:
            metrics.latency_of(endpoint).observe(seconds)
        return response

    app.register_blueprint(bp)


def observe_replies(replies: Iterable[Reply]) -> None:
    """Count replies in the metrics of the app handling this request."""
    current_app.extensions["metrics"].observe_replies(replies)


def observe_action(intent: str, outcome: str) -> None:
    """Count one webhook call of an intent's action and how it ended."""
    current_app.extensions["metrics"].actions.labels(intent, outcome).inc()


def observe_handoff(event: str) -> None:
    """Count a handoff ``started``, ``released``, ``notify_failed`` or ``unstaffed``."""
    current_app.extensions["metrics"].handoffs.labels(event).inc()


@bp.get("/metrics")
def metrics_view() -> Response:
    """Serve the metrics for a Prometheus scrape."""
    return Response(
        current_app.extensions["metrics"].exposition(), content_type=prometheus_client.CONTENT_TYPE_LATEST
    )
