"""Slots, templates and actions in intents.json: validation messages, rendering, the allowlist."""

from __future__ import annotations

import copy
import re

import pytest

from chatbot.data.actions import check_action_urls, is_allowed, parse_webhook_reply, sign, verify
from chatbot.data.intents import load_domain, validate_intents
from chatbot.data.slots import render
from chatbot.errors import IntentsError
from tests.support import DEFAULT_INTENTS, SLOT_DATA, TINY_INTENTS, record_figures

ACTION = {"url": "http://127.0.0.1:8081/orders/status", "timeout_ms": 500}


def bot(**order_changes) -> dict:
    """Return the tiny intents with slots declared and the "order" intent changed."""
    data = copy.deepcopy(TINY_INTENTS) | copy.deepcopy(SLOT_DATA)
    data["intents"][2].update(order_changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bot(require=[{"slot": "colour", "ask": "?"}]), "requires slot 'colour', which is not defined"),
        (bot(require=[{"slot": "order_number"}]), '"require"[0] needs an "ask" question'),
        (bot(require="order_number"), '"require" must be a list'),
        (bot(responses=["Order {number}"]), "uses slot {number}, which is not defined"),
        (bot(action={"url": "ftp://x/"}), "must be an http:// or https:// URL"),
        (bot(action={**ACTION, "timeout_ms": 60_000}), "timeout_ms must be an integer from 1 to 10000"),
        (bot(action={**ACTION, "fallback": "Sorry {who}"}), "uses slot {who}"),
        (bot(handoff="yes"), '"handoff" must be true or false'),
        (bot(action={"url": "http://127.0.0.1:99999/orders"}), "has a bad port"),
        (bot(action={"url": "http://127.0.0.1:80x/orders"}), "has a bad port"),
        (bot(action={"url": "http://h/orders/../admin"}), "must be written as 'http://h/admin'"),
        (bot(action={"url": "http://h/orders/..;/admin"}), "cannot be made unambiguous"),
        (bot() | {"slots": {"order_number": {"entity": "sku"}}}, "entity 'sku' is not defined"),
        (bot() | {"entities": {"n": {"regex": "(?<=a)b"}}}, "entity 'n': \"regex\" is not a valid"),
    ],
)
def test_invalid_slots_and_actions_are_named(data: dict, message: str) -> None:
    with pytest.raises(IntentsError, match=re.escape(message)):
        validate_intents(data, source="bot.json")


def test_literal_braces_that_name_no_slot_are_text() -> None:
    text = "Use {{ and } freely, or {not a slot}"
    intents = validate_intents(bot(responses=[text]))  # not refused as an unknown slot
    assert text in [response for intent in intents for response in intent.responses]
    assert render(text, {"order_number": "12345"}) == text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("{__class__}", "Order {__class__} is late"),
        ("{0.__globals__}", "Order {0.__globals__} is late"),
        ("<script>alert(1)</script>", "Order <script>alert(1)</script> is late"),
        ("{order_number}", "Order {order_number} is late"),  # a value is never rendered again
        ("\\1 \\g<0>", "Order \\1 \\g<0> is late"),  # nor read as a regex replacement
    ],
)
def test_slot_values_render_literally(value: str, shown: str) -> None:
    assert render("Order {order_number} is late", {"order_number": value}) == shown


def test_unset_slots_render_empty() -> None:
    assert render("Order {order_number}.", {}) == "Order ."


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8081/orders/status", True),
        ("http://127.0.0.1:8081/", True),
        ("http://127.0.0.1:8082/orders/status", False),
        ("https://127.0.0.1:8081/orders/status", False),
        ("http://127.0.0.1:8081@evil.example/orders", False),
        ("http://shop.example/api/orders", True),
        ("http://shop.example/api-evil/orders", False),
        ("http://shop.example/apiorders", False),
    ],
)
def test_allowlist_matches_scheme_host_port_and_path_prefix(url: str, allowed: bool) -> None:
    assert is_allowed(url, ["http://127.0.0.1:8081/", "http://shop.example/api"]) is allowed


ESCAPING_URLS = [
    "http://127.0.0.1:8081/orders/../admin/delete-all",
    "http://127.0.0.1:8081/orders/%2e%2e/admin",
    "http://127.0.0.1:8081/orders/%2E%2E/admin",
    "http://127.0.0.1:8081/orders/..%2fadmin",
    "http://127.0.0.1:8081/orders/%2e%2e%2Fadmin",
    "http://127.0.0.1:8081/orders/..;/admin",
    "http://127.0.0.1:8081/orders/%252e%252e/admin",
    "http://127.0.0.1:8081/orders\\..\\admin",
    "http://127.0.0.1:8081@evil.example/orders/x",
    "http://127.0.0.1:8081/orders/./x",
    "http://127.0.0.1:8081/orders/x\t",
    "http://127.0.0.1:99999/orders/x",
]


@pytest.mark.parametrize("url", ESCAPING_URLS)
def test_paths_that_leave_the_allowed_prefix_or_stay_ambiguous_are_refused(url: str) -> None:
    """Behind nginx, /orders/../admin reached /admin: the allowlist compares normalized paths."""
    assert not is_allowed(url, ["http://127.0.0.1:8081/orders/"])


def test_default_bot_actions_are_checked_against_the_allowlist() -> None:
    intents = validate_intents(bot(action=ACTION))
    check_action_urls(intents, ["http://127.0.0.1:8081/"])
    with pytest.raises(IntentsError, match=r"intent 'order': action url .* is not in the allowlist"):
        check_action_urls(intents, ["https://shop.example/"])


def test_default_bot_declares_the_order_number() -> None:
    domain = load_domain(DEFAULT_INTENTS)
    assert domain.slots == {"order_number": "order_number", "delivery_date": "date", "phone": "phone_number"}
    assert domain.slot_types() == {"order_number": "text", "delivery_date": "date", "phone": "phone_number"}
    assert [entity.value for entity in domain.extractor().extract("where is order 12345")] == ["12345"]


def test_signatures_verify_and_webhook_replies_are_checked() -> None:
    assert verify(b'{"a": 1}', "s" * 16, sign(b'{"a": 1}', "s" * 16))
    assert not verify(b'{"a": 2}', "s" * 16, sign(b'{"a": 1}', "s" * 16))
    reply = parse_webhook_reply(
        b'{"text": "Shipped", "slots": {"order_number": "A1", "x": "y"}}', ["order_number"]
    )
    assert (reply.text, reply.slots) == ("Shipped", {"order_number": "A1"})
    for body in (b"not json", b"[]", b'{"text": 3}', b'{"quick_replies": "a"}', b'{"slots": {"a": 1}}'):
        with pytest.raises(ValueError, match=r"webhook reply|text|quick_replies|slots"):
            parse_webhook_reply(body, ["order_number"])


@pytest.mark.parametrize(
    ("signed_at", "checked_at", "valid"),
    [
        (1_000_000, 1_000_000, True),
        (1_000_000, 1_000_299, True),
        (1_000_000, 1_000_301, False),
        (1_000_400, 1_000_000, False),
    ],
)
def test_a_signature_covers_its_time_and_expires(signed_at: int, checked_at: int, valid: bool) -> None:
    """Issue 21, item 15: a captured event replayed five minutes later is refused."""
    body = b'{"event": "action"}'
    assert verify(body, "s" * 16, sign(body, "s" * 16, timestamp=signed_at), now=checked_at) is valid


@pytest.mark.parametrize(
    "forged",
    [
        lambda signature: signature.replace("t=1000000", "t=1000100"),  # a fresh time on an old MAC
        lambda signature: signature.split(",")[1],  # the MAC alone, as before
        lambda signature: "sha256=" + signature.split("v1=")[1],
        lambda signature: signature.replace("t=1000000", "t=\uff11000100"),  # a fullwidth digit
        lambda signature: "",
    ],
)
def test_a_signature_with_a_changed_or_missing_time_is_refused(forged) -> None:
    body = b'{"event": "action"}'
    signature = sign(body, "s" * 16, timestamp=1_000_000)
    assert not verify(body, "s" * 16, forged(signature), now=1_000_100)


def test_figures_escaping_paths() -> None:
    """Record, for docs/reliability.md, how many spellings of a path outside the prefix are refused."""
    refused = sum(not is_allowed(url, ["http://127.0.0.1:8081/orders/"]) for url in ESCAPING_URLS)
    record_figures("action_allowlist", {"spellings": len(ESCAPING_URLS), "refused": refused})
    assert refused == len(ESCAPING_URLS)
