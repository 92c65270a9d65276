"""Built-in entities: the formats people type, per type and language, normalised, against a fixed clock."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chatbot.data.builtin_entities import (
    BUILTIN_TYPES,
    BuiltinExtractor,
    BuiltinSettings,
    display_value,
)

# Thursday 3 December 2026, 10:00 in Berlin: every relative date below is read against it.
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
EXTRACTORS: dict[str, BuiltinExtractor] = {}


def extractor(language: str) -> BuiltinExtractor:
    if language not in EXTRACTORS:
        EXTRACTORS[language] = BuiltinExtractor(
            BUILTIN_TYPES, BuiltinSettings(language, "Europe/Berlin", "DE")
        )
    return EXTRACTORS[language]


CASES = [
    # dates
    ("en", "deliver it next Friday", "date", "2026-12-04", "next Friday"),
    ("en", "in 2 weeks please", "date", "2026-12-17", "in 2 weeks"),
    ("en", "in a week", "date", "2026-12-10", "in a week"),
    ("en", "tomorrow at 5 pm", "date", "2026-12-04T17:00:00+01:00", "tomorrow at 5 pm"),
    ("en", "the day after tomorrow", "date", "2026-12-05", "the day after tomorrow"),
    ("en", "on Monday", "date", "2026-12-07", "on Monday"),
    ("en", "on 24 December", "date", "2026-12-24", "24 December"),
    ("en", "December 24th, 2027", "date", "2027-12-24", "December 24th, 2027"),
    ("en", "on 2026-12-31", "date", "2026-12-31", "2026-12-31"),
    ("en", "at 17:30", "date", "2026-12-03T17:30:00+01:00", "at 17:30"),
    ("en", "at 9 am", "date", "2026-12-04T09:00:00+01:00", "at 9 am"),
    ("de", "nächsten Freitag", "date", "2026-12-04", "nächsten Freitag"),
    ("de", "in 2 Wochen", "date", "2026-12-17", "in 2 Wochen"),
    ("de", "morgen um 17 Uhr", "date", "2026-12-04T17:00:00+01:00", "morgen um 17 Uhr"),
    ("de", "übermorgen", "date", "2026-12-05", "übermorgen"),
    ("de", "am 24.12.2026", "date", "2026-12-24", "24.12.2026"),
    ("de", "am 24. Dezember", "date", "2026-12-24", "24. Dezember"),
    ("es", "el próximo viernes", "date", "2026-12-04", "el próximo viernes"),
    ("es", "el viernes que viene", "date", "2026-12-04", "el viernes que viene"),
    ("es", "en 2 semanas", "date", "2026-12-17", "en 2 semanas"),
    ("es", "mañana a las 5 de la tarde", "date", "2026-12-04T17:00:00+01:00", "mañana a las 5 de la tarde"),
    ("es", "el 24 de diciembre", "date", "2026-12-24", "24 de diciembre"),
    ("fr", "vendredi prochain", "date", "2026-12-04", "vendredi prochain"),
    ("fr", "dans 2 semaines", "date", "2026-12-17", "dans 2 semaines"),
    ("fr", "demain à 17h", "date", "2026-12-04T17:00:00+01:00", "demain à 17h"),
    ("fr", "après-demain", "date", "2026-12-05", "après-demain"),
    ("fr", "le 24 décembre", "date", "2026-12-24", "24 décembre"),
    # numbers and ordinals
    ("en", "a table for four", "number", "4", "four"),
    ("en", "I need 12 mugs", "number", "12", "12"),
    ("en", "about 2.5 kg", "number", "2.5", "2.5"),
    ("en", "the third one", "ordinal", "3", "third"),
    ("en", "the 2nd item", "ordinal", "2", "2nd"),
    ("de", "ein Tisch für vier", "number", "4", "vier"),
    ("de", "2,5 Liter", "number", "2.5", "2,5"),
    ("de", "die dritte Tasse", "ordinal", "3", "dritte"),
    ("es", "mesa para cuatro", "number", "4", "cuatro"),
    ("es", "1,5 litros", "number", "1.5", "1,5"),
    ("es", "el segundo", "ordinal", "2", "segundo"),
    ("fr", "une table pour quatre", "number", "4", "quatre"),
    ("fr", "le 1er", "ordinal", "1", "1er"),
    ("fr", "la troisième", "ordinal", "3", "troisième"),
    # money
    ("en", "around 30 euros", "money", "30 EUR", "30 euros"),
    ("en", "it was $5.99", "money", "5.99 USD", "$5.99"),
    ("en", "£1,200.50 in total", "money", "1200.50 GBP", "£1,200.50"),
    ("de", "etwa 30 Euro", "money", "30 EUR", "30 Euro"),
    ("de", "1.234,50 €", "money", "1234.50 EUR", "1.234,50 €"),
    ("es", "unos 20 euros", "money", "20 EUR", "20 euros"),
    ("fr", "environ 15 €", "money", "15 EUR", "15 €"),
    ("fr", "12,50 EUR", "money", "12.50 EUR", "12,50 EUR"),
    # e-mail addresses
    (
        "en",
        "mail me at Jane.Doe+shop@Example.COM.",
        "email",
        "Jane.Doe+shop@example.com",
        "Jane.Doe+shop@Example.COM",
    ),
    ("de", "meine Adresse: max@mail.de", "email", "max@mail.de", "max@mail.de"),
    ("es", "escribe a ana@correo.es", "email", "ana@correo.es", "ana@correo.es"),
    ("fr", "écrivez à luc@exemple.fr", "email", "luc@exemple.fr", "luc@exemple.fr"),
    # phone numbers (region DE for numbers without a country code)
    ("en", "call me on +44 20 7946 0958", "phone_number", "+442079460958", "+44 20 7946 0958"),
    ("en", "my number is +1 (415) 555-2671", "phone_number", "+14155552671", "+1 (415) 555-2671"),
    ("de", "meine neue Nummer ist 0171 1234567", "phone_number", "+491711234567", "0171 1234567"),
    ("de", "Tel. 030 12345678", "phone_number", "+493012345678", "030 12345678"),
    ("es", "llámame al +34 612 34 56 78", "phone_number", "+34612345678", "+34 612 34 56 78"),
    ("fr", "appelez le +33 6 12 34 56 78", "phone_number", "+33612345678", "+33 6 12 34 56 78"),
    # URLs
    ("en", "see https://example.com/a?b=1.", "url", "https://example.com/a?b=1", "https://example.com/a?b=1"),
    ("de", "auf www.beispiel.de", "url", "www.beispiel.de", "www.beispiel.de"),
    ("es", "en http://tienda.es/x", "url", "http://tienda.es/x", "http://tienda.es/x"),
    ("fr", "sur https://boutique.fr", "url", "https://boutique.fr", "https://boutique.fr"),
]


@pytest.mark.parametrize(
    ("language", "text", "entity", "value", "span"), CASES, ids=[f"{c[0]}-{c[2]}-{c[1]}" for c in CASES]
)
def test_builtin_values_are_found_and_normalised(
    language: str, text: str, entity: str, value: str, span: str
) -> None:
    found = [item for item in extractor(language).extract(text, NOW) if item.entity == entity]
    assert [(item.value, text[item.start : item.end]) for item in found] == [(value, span)]
    assert all(item.extractor == "builtin" for item in found)


@pytest.mark.parametrize(
    "text",
    ["hello there", "what are your opening hours", "order 12345 please", "version 2.5.1", "a.b@c"],
)
def test_no_date_money_or_phone_where_there_is_none(text: str) -> None:
    found = extractor("en").extract(text, NOW)
    assert [item.entity for item in found if item.entity in ("date", "money", "phone_number", "email")] == []


def test_only_the_named_types_run() -> None:
    dates_only = BuiltinExtractor(("date",), BuiltinSettings("en"))
    assert [item.entity for item in dates_only.extract("4 mugs tomorrow for $5 at bob@x.com", NOW)] == [
        "date"
    ]


def test_the_time_zone_decides_today() -> None:
    late = datetime(2026, 12, 3, 23, 30, tzinfo=ZoneInfo("UTC"))  # already Friday in Tokyo
    tokyo = BuiltinExtractor(("date",), BuiltinSettings("en", "Asia/Tokyo"))
    assert tokyo.extract("tomorrow", late)[0].value == "2026-12-05"


RENDERED = [
    ("en", "2026-12-04", "Friday, 4 December 2026"),
    ("de", "2026-12-04T17:00:00+01:00", "Freitag, 4. Dezember 2026 um 17:00"),
    ("es", "2026-12-04", "viernes, 4 de diciembre de 2026"),
    ("fr", "2026-12-04", "vendredi 4 décembre 2026"),
    ("hi", "2026-12-04", "2026-12-04"),
]


@pytest.mark.parametrize(("language", "value", "said"), RENDERED)
def test_dates_are_said_in_the_bots_language(language: str, value: str, said: str) -> None:
    assert display_value("date", value, language) == said


def test_numbers_are_said_with_the_local_decimal_mark() -> None:
    assert display_value("number", "2.5", "de") == "2,5"
    assert display_value("number", "2.5", "en") == "2.5"


LONG_TEXTS = {
    "digits": "1" * 1000,
    "digits-and-dots": "1." * 500,
    "letters": "a" * 1000,
    "at-signs": "a@" * 500,
    "words": "tomorrow at 5 " * 71,
    "mixed": "call +49 171 1234567 or mail x@y.de next Friday for 30 euros " * 16,
}


@pytest.mark.parametrize("shape", sorted(LONG_TEXTS))
def test_a_long_message_costs_linear_time(shape: str) -> None:
    """A 1,000-character message costs about ten times a 100-character one, never a hundred."""
    every = BuiltinExtractor(BUILTIN_TYPES, BuiltinSettings("en", "Europe/Berlin", "DE"))
    long_text = LONG_TEXTS[shape][:1000]
    short_text = long_text[:100]

    def seconds(text: str) -> float:
        every.extract(text, NOW)  # warm caches
        best = float("inf")
        for _ in range(15):  # the best of many: other processes only ever add time
            started = time.perf_counter()
            every.extract(text, NOW)
            best = min(best, time.perf_counter() - started)
        return best

    ratio = seconds(long_text) / seconds(short_text)
    # Linear is 10x; quadratic would be 100x. The bound leaves room for a busy machine.
    assert ratio < 30, f"{shape}: 1,000 characters took {ratio:.0f}x 100 characters"


def test_the_conversations_time_zone_overrides_the_bots() -> None:
    """One instant, three zones: "tomorrow" and the offset of "at 5 pm" follow the zone asked for."""
    late = datetime(2026, 12, 3, 23, 30, tzinfo=ZoneInfo("UTC"))  # Friday 08:30 in Tokyo
    berlin_bot = BuiltinExtractor(("date",), BuiltinSettings("en", "Europe/Berlin"))
    assert berlin_bot.extract("tomorrow at 5 pm", late)[0].value == "2026-12-05T17:00:00+01:00"
    assert berlin_bot.extract("tomorrow at 5 pm", late, "Asia/Tokyo")[0].value == "2026-12-05T17:00:00+09:00"
    assert berlin_bot.extract("tomorrow", late, "America/Los_Angeles")[0].value == "2026-12-04"
    assert berlin_bot.extract("at 5 pm", late, "Asia/Tokyo")[0].value == "2026-12-04T17:00:00+09:00"
