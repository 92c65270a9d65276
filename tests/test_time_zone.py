"""A conversation's own time zone: sent in /api/v1/chat and /api/v1/parse, checked, kept with the session."""

from __future__ import annotations

import dataclasses
import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app import create_app
from app.sessions import SessionState
from chatbot.classifier.bundle import Bundle
from chatbot.classifier.ranker import Ranker
from chatbot.dialogue.decision import Dialogue

BOT_ZONE = "America/New_York"
# Zones without daylight saving, 25 hours apart: their "tomorrow" is never the same day.
EAST, WEST = "Pacific/Kiritimati", "Pacific/Pago_Pago"
OFFSETS = {EAST: "+14:00", WEST: "-11:00"}


@pytest.fixture
def client(tiny_bundle: Bundle):
    """Return a test client of the tiny bot with built-in dates, in New York's time."""
    domain = dataclasses.replace(tiny_bundle.domain, builtins=("date",), timezone=BOT_ZONE)
    dialogue = Dialogue(
        Ranker.from_bundle(dataclasses.replace(tiny_bundle, domain=domain)),
        threshold=0.0,
        rng=random.Random(0),
    )
    return create_app({"TESTING": True, "RATE_LIMIT": None}, dialogue=dialogue).test_client()


def tomorrows(zone: str) -> set[date]:
    """Return the days "tomorrow" may be in a zone while a request runs (two near midnight)."""
    now = datetime.now(ZoneInfo(zone))
    return {(now + timedelta(days=1)).date(), (now + timedelta(days=1, seconds=60)).date()}


def date_value(body: dict) -> str:
    (entity,) = [entity for entity in body["entities"] if entity["entity"] == "date"]
    return entity["value"]


def read_in(value: str, zone: str) -> bool:
    """Say whether a date-time value is 5 pm tomorrow in the zone, with the zone's offset."""
    moment = datetime.fromisoformat(value)
    return (
        moment.date() in tomorrows(zone)
        and moment.hour == 17
        and moment.utcoffset() == datetime.now(ZoneInfo(zone)).utcoffset()
    )


def test_parse_reads_dates_in_the_time_zone_sent(client) -> None:
    for zone in (EAST, WEST):
        body = client.post("/api/v1/parse", json={"text": "tomorrow at 5 pm", "time_zone": zone}).get_json()
        assert date_value(body).endswith("T17:00:00" + OFFSETS[zone]) and read_in(date_value(body), zone)
    batch = client.post("/api/v1/parse", json={"texts": ["tomorrow at 5 pm", "hi"], "time_zone": EAST})
    assert date_value(batch.get_json()["results"][0]).endswith("+14:00")
    # Without one, the bot's zone.
    assert read_in(
        date_value(client.post("/api/v1/parse", json={"text": "tomorrow at 5 pm"}).get_json()), BOT_ZONE
    )


def test_a_conversation_keeps_its_time_zone_until_it_sends_another(client) -> None:
    def chat(session: str, **extra: str) -> str:
        reply = client.post(
            "/api/v1/chat", json={"message": "tomorrow at 5 pm", "session_id": session, **extra}
        )
        assert reply.status_code == 200, reply.get_json()
        return date_value(reply.get_json())

    assert chat("s1", time_zone=EAST).endswith("+14:00")
    assert chat("s1").endswith("+14:00")  # kept with the session
    assert chat("s1", time_zone=WEST).endswith("-11:00")  # the customer moved
    assert read_in(chat("s2"), BOT_ZONE)  # another conversation: the bot's zone


@pytest.mark.parametrize(
    ("zone", "code"),
    [
        ("Mars/Olympus_Mons", "unknown_time_zone"),
        ("Europe/Berlinn", "unknown_time_zone"),
        ("../../etc/passwd", "invalid_field"),
        ("/usr/share/zoneinfo/UTC", "invalid_field"),
        ("", "invalid_field"),
        ("A" * 65, "invalid_field"),
        (120, "invalid_field"),
        (None, "invalid_field"),
    ],
)
def test_a_bad_time_zone_is_refused_with_a_clear_error(client, zone, code: str) -> None:
    for path, body in (("/api/v1/chat", {"message": "hi"}), ("/api/v1/parse", {"text": "hi"})):
        reply = client.post(path, json={**body, "time_zone": zone})
        assert reply.status_code == 422
        error = reply.get_json()["error"]
        assert error["code"] == code and "time_zone" in error["message"], error
        if code == "unknown_time_zone":
            assert zone in error["message"] and "IANA" in error["message"]


def test_the_session_state_keeps_the_time_zone_through_its_json() -> None:
    state = SessionState(context="order", time_zone=EAST)
    assert SessionState.from_json(state.to_json()) == state
    assert "time_zone" not in SessionState(context="order").to_json()  # older readers see no change
    with pytest.raises(ValueError, match="not a session state"):
        SessionState.from_json('{"context": null, "turns": [], "time_zone": "Mars/Olympus_Mons"}')
