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
import re
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatbot.data.slots import MAX_SLOT_CHARS
from chatbot.errors import IntentsError

MAX_TIMEOUT_MS = 10_000  # a chat answer must not wait longer than this on a webhook
DEFAULT_TIMEOUT_MS = 2_000
MAX_REPLY_TEXT = 2_000  # characters of a webhook's text shown to the user
MAX_QUICK_REPLIES = 10
SIGNATURE_HEADER = "X-Chatbot-Signature"
MAX_SIGNATURE_AGE = 300  # seconds a signed event stays valid: later, it is a replay


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
    try:
        urlsplit(raw["url"]).port  # noqa: B018 - reading it is the check: urllib raises for a port out of range
    except ValueError as exc:
        raise IntentsError(f'{where}: "action" url {raw["url"]!r} has a bad port ({exc})') from exc
    if (normal := normalize_url(raw["url"])) != raw["url"]:
        fix = "cannot be made unambiguous" if normal is None else f"must be written as {normal!r}"
        raise IntentsError(f'{where}: "action" url {raw["url"]!r} {fix} (see normalize_url)')
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


def normalize_url(url: str) -> str | None:
    """Return a URL as a server would read its path, or None when servers could read it differently.

    Percent-encoded unreserved characters and slashes are decoded and dot segments removed (RFC
    3986, 6.2.2), so ``/orders/../admin``, ``/orders/%2e%2e/admin`` and ``/orders/..%2fadmin`` all
    read ``/admin``. Refused as ambiguous: user info (``user@host``), a backslash, a semicolon in
    the path (``..;``), an encoded percent sign (double encoding), whitespace and control
    characters, and a port out of range. The scheme and host are lower-cased; a fragment is dropped.
    """
    if any(character in _AMBIGUOUS or ord(character) < 0x21 for character in url):
        return None
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it is the check: urllib raises for a port out of range
    except ValueError:
        return None
    if "@" in parts.netloc or ";" in parts.path or "%25" in parts.path:
        return None
    path = _remove_dot_segments(_ENCODED.sub(_decode_unreserved, parts.path)) if parts.path else ""
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


_AMBIGUOUS = frozenset("\\\x7f")
_ENCODED = re.compile("%([0-9A-Fa-f]{2})")
_UNRESERVED_OR_SLASH = frozenset(string.ascii_letters + string.digits + "-._~/")


def _decode_unreserved(match: re.Match[str]) -> str:
    character = chr(int(match.group(1), 16))
    return character if character in _UNRESERVED_OR_SLASH else match.group().upper()


def _remove_dot_segments(path: str) -> str:
    kept: list[str] = []
    segments = path.split("/")
    for segment in segments:
        if segment == "..":
            if len(kept) > 1:  # the first segment is the empty one before the leading slash
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")  # "/a/b/.." is the folder "/a/"
    return "/".join(kept) if kept != [""] else "/"


def is_allowed(url: str, allowlist: Iterable[str]) -> bool:
    """Say whether a URL is under one of the allowed prefixes: same scheme, host and port, path below.

    Both sides are normalized first (``normalize_url``); a URL that stays ambiguous, or that is not
    written in its normal form, is never allowed, so the URL called is the URL checked.
    """
    if (normal := normalize_url(url)) is None or normal != url:
        return False
    target = urlsplit(normal)
    for prefix in allowlist:
        if (normal_prefix := normalize_url(prefix)) is None:
            continue
        allowed = urlsplit(normal_prefix)
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


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return the ``X-Chatbot-Signature`` value: ``t=<unix time>,v1=<hex HMAC-SHA256 of "t." + body>``.

    The time is signed with the body, so a receiver can refuse a captured event replayed later
    (``verify`` allows ``MAX_SIGNATURE_AGE`` seconds either way, for clock skew).
    """
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_mac(body, secret, timestamp)}"


def verify(body: bytes, secret: str, signature: str, now: float | None = None) -> bool:
    """Check a signature in constant time and its age (for webhook implementations such as deploy/orders)."""
    fields = dict(part.partition("=")[::2] for part in signature.split(","))
    timestamp = fields.get("t", "")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > MAX_SIGNATURE_AGE:
        return False
    return hmac.compare_digest(_mac(body, secret, int(timestamp)), fields.get("v1", ""))


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


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
