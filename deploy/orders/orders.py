"""An example order service: the webhook the default bot's ``order_status`` intent calls.

Replace it with your shop's system: anything that answers ``POST /orders/status`` with JSON works.
The bot sends a JSON event (``intent``, ``entities``, ``slots``, ``session_id``, ``message``),
signed with HMAC-SHA256 over a timestamp and the body in ``X-Chatbot-Signature`` when
CHATBOT_ACTION_SECRET is set; this service checks that signature and its age (an event replayed
later is refused) and answers ``{"text": ..., "quick_replies": [...], "slots": {...}}``. Its
orders are made up, deterministically, from the order number.

    python deploy/orders/orders.py --port 8081   # listens on 127.0.0.1, beside the bot
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chatbot.data.actions import SIGNATURE_HEADER, verify

log = logging.getLogger("orders")

STATUS_PATH = "/orders/status"
MAX_EVENT_BYTES = 64 * 1024
STATUSES = (
    "was shipped yesterday and should arrive within 2 business days",
    "is being packed and ships tomorrow",
    "was delivered on Monday; it is in the parcel box if nobody was home",
    "is on its way with the courier and arrives today",
)


def order_status(order_number: str) -> str:
    """Return a made-up but stable status sentence for an order number."""
    digest = hashlib.sha256(order_number.upper().encode()).digest()
    return f"Order {order_number.upper()} {STATUSES[digest[0] % len(STATUSES)]}."


class OrderHandler(BaseHTTPRequestHandler):
    """Answer the bot's order-status events."""

    secret: str | None = None  # set by serve(); None: signatures are not checked

    def do_POST(self) -> None:
        """Check the event and answer with the order's status."""
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != STATUS_PATH or not 0 < length <= MAX_EVENT_BYTES:
            self.answer(404 if self.path != STATUS_PATH else 400, {"error": "bad request"})
            return
        body = self.rfile.read(length)
        signature = self.headers.get(SIGNATURE_HEADER, "")
        if self.secret is not None and not verify(body, self.secret, signature):
            self.answer(401, {"error": "bad signature"})
            return
        try:
            order_number = json.loads(body)["slots"]["order_number"]
        except (ValueError, KeyError, TypeError):
            self.answer(400, {"error": "no slots.order_number in the event"})
            return
        log.info("order status asked for %s", order_number)
        self.answer(200, {"text": order_status(str(order_number)), "quick_replies": ["Talk to a person"]})

    def answer(self, status: int, value: dict) -> None:
        """Send a JSON reply."""
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Log requests through logging rather than raw stderr."""
        log.debug(format, *args)


def serve(host: str, port: int, secret: str | None) -> ThreadingHTTPServer:
    """Return a server for the order service (call ``serve_forever`` on it)."""
    OrderHandler.secret = secret
    return ThreadingHTTPServer((host, port), OrderHandler)


def main() -> None:
    """Run the service until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s orders %(message)s")
    server = serve(args.host, args.port, os.environ.get("CHATBOT_ACTION_SECRET") or None)
    log.info("order service on http://%s:%d%s", args.host, args.port, STATUS_PATH)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
