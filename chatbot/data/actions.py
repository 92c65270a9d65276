"""Actions: an intent may call the shop's own system (a webhook) to answer. The pure parts live here.

An intent names its webhook as ``"action": {"url": "...", "timeout_ms": 2000, "fallback": "..."}``;
the server POSTs a signed JSON event and shows the webhook's reply. This module describes the
action, checks its URL against the operator's allowlist, signs events and reads replies; the
HTTP call itself is the web layer's (app/actions.py), so the core holds no network code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chatbot.data.slots import MAX_SLOT_CHARS
from chatbot.errors import IntentsError

MAX_TIMEOUT_MS = 10_000  # a chat answer must not wait longer than this on a webhook
DEFAULT_TIMEOUT_MS = 2_000
MAX_REPLY_TEXT = 2_000  # characters of a webhook's text shown to the user
MAX_QUICK_REPLIES = 10
SIGNATURE_HEADER = "X-Chatbot-Signature"


@dataclass(frozen=True)
class Action:
    """A webhook that answers for an intent, and the text to show when it cannot."""

    url: str
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    fallback: str | None = None  # None: the intent's own responses


@dataclass(frozen=True)
class WebhookReply:
    """What a webhook may answer with: text, buttons and slot values (each optional)."""

    text: str | None = None
    quick_replies: tuple[str, ...] = ()
    slots: Mapping[str, str] | None = None


def validate_action(raw: Any, where: str) -> Action:
    """Check an intent's ``action`` object; raise IntentsError naming the field at fault."""
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        raise IntentsError(f'{where}: "action" must be an object with a "url"')
    if unknown := sorted(set(raw) - {"url", "timeout_ms", "fallback"}):
        raise IntentsError(f'{where}: "action" has unknown keys {unknown}')
    if not is_http_url(raw["url"]):
        raise IntentsError(f'{where}: "action" url {raw["url"]!r} must be an http:// or https:// URL')
    timeout_ms = raw.get("timeout_ms", DEFAULT_TIMEOUT_MS)
    if (
        not isinstance(timeout_ms, int)
        or isinstance(timeout_ms, bool)
        or not 1 <= timeout_ms <= MAX_TIMEOUT_MS
    ):
        raise IntentsError(f'{where}: "action" timeout_ms must be an integer from 1 to {MAX_TIMEOUT_MS}')
    fallback = raw.get("fallback")
    if fallback is not None and (not isinstance(fallback, str) or not fallback.strip()):
        raise IntentsError(f'{where}: "action" fallback must be a non-empty string')
    return Action(raw["url"], timeout_ms, fallback)


def is_http_url(url: str) -> bool:
    """Say whether a text is an http:// or https:// URL with a host: the one check for every URL setting."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_allowed(url: str, allowlist: Iterable[str]) -> bool:
    """Say whether a URL is under one of the allowed prefixes: same scheme, host and port, path below."""
    target = urlsplit(url)
    for prefix in allowlist:
        allowed = urlsplit(prefix)
        if (target.scheme, target.hostname, target.port) != (allowed.scheme, allowed.hostname, allowed.port):
            continue
        base = allowed.path.rstrip("/")
        if target.path == base or target.path.startswith(base + "/"):
            return True
    return False


def check_action_urls(intents: Iterable[Any], allowlist: Iterable[str], source: str = "intents") -> None:
    """Raise IntentsError for the first intent whose webhook URL the operator's allowlist does not cover."""
    allowlist = tuple(allowlist)
    for intent in intents:
        if intent.action is not None and not is_allowed(intent.action.url, allowlist):
            shown = ", ".join(allowlist) or "empty"
            raise IntentsError(
                f"{source}: intent {intent.tag!r}: action url {intent.action.url!r} is not in the "
                f"allowlist (CHATBOT_ACTION_ALLOWLIST: {shown})"
            )


def sign(body: bytes, secret: str) -> str:
    """Return the ``X-Chatbot-Signature`` value: ``sha256=`` and the body's HMAC-SHA256 in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    """Check a signature in constant time (for webhook implementations such as deploy/orders)."""
    return hmac.compare_digest(sign(body, secret), signature)


def parse_webhook_reply(body: bytes, slot_names: Iterable[str]) -> WebhookReply:
    """Read a webhook's JSON reply; raise ValueError when it is not the documented shape.

    Unknown slots are dropped, not errors: a webhook may be shared by several bots.
    """
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the webhook reply is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("the webhook reply must be a JSON object")
    text = value.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip() or len(text) > MAX_REPLY_TEXT):
        raise ValueError(f'"text" must be a non-empty string of at most {MAX_REPLY_TEXT} characters')
    quick_replies = value.get("quick_replies", [])
    if not isinstance(quick_replies, list) or len(quick_replies) > MAX_QUICK_REPLIES:
        raise ValueError(f'"quick_replies" must be a list of at most {MAX_QUICK_REPLIES} strings')
    if not all(isinstance(label, str) and 0 < len(label) <= 100 for label in quick_replies):
        raise ValueError('"quick_replies" must hold strings of 1 to 100 characters')
    slots = value.get("slots", {})
    if not isinstance(slots, dict) or not all(isinstance(item, str) for item in slots.values()):
        raise ValueError('"slots" must be an object of slot name -> string')
    known = set(slot_names)
    return WebhookReply(
        text,
        tuple(quick_replies),
        {name: item[:MAX_SLOT_CHARS] for name, item in slots.items() if name in known},
    )
