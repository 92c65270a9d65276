"""Built-in entities every bot may name: dates, numbers, ordinals, money, e-mails, phone numbers, URLs.

A bot turns them on by naming them in intents.json (as Dialogflow's system entities)::

    "builtin_entities": ["date", "phone_number"], "timezone": "Europe/Berlin", "region": "DE"

Values are normalised: a date is ISO 8601 relative to the conversation's time in the bot's time
zone ("2026-12-04", or "2026-12-04T17:00:00+01:00" with a time), a number "2.5", an ordinal "3",
money "30 EUR", an e-mail with its domain lowercased, a phone number in E.164 ("+491711234567",
read with the bot's region), a URL as written. Relative dates ("next Friday", "in 2 weeks",
"tomorrow at 5 pm") are read from word tables in en, de, es and fr; calendar dates ("24 December",
"24.12.2026") by dateparser in every language it knows.

Every pattern has bounded repeats or a guard against starting mid-word, so a 1,000-character
message costs linear time; only the types a bot names are compiled or run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chatbot.data.entities import Entity

BUILTIN_EXTRACTOR = "builtin"
BUILTIN_TYPES = ("date", "number", "ordinal", "money", "email", "phone_number", "url")
DEFAULT_TIMEZONE = "UTC"
MIN_PHONE_DIGITS = 6  # fewer digits than this is no phone number: the matcher is skipped


def _spaced(names: str) -> tuple[str, ...]:
    """Return the words of a space-separated list: twelve month names fit one line this way."""
    return tuple(names.split())


@dataclass(frozen=True)
class LanguageWords:
    """The words one language uses for relative dates, times, numbers and ordinals."""

    days: dict[str, int]  # "tomorrow" -> 1 (days from today)
    weekdays: tuple[str, ...]  # Monday first
    weekday_before: str  # words that may stand before a weekday ("next", "this")
    weekday_after: str  # words that may follow it ("que viene", "prochain")
    in_units: str  # "in N weeks": the preposition
    units: dict[str, int]  # unit word -> days (months count as 30: "in 2 months" is approximate)
    time_before: str  # "at", "um", "a las", "à"
    time_after: str  # "uhr", "h", "heures"
    afternoon: tuple[str, ...]  # words that put an hour after noon ("pm", "de la tarde")
    morning: tuple[str, ...]
    numbers: dict[str, int]  # "four" -> 4
    ordinals: dict[str, int]  # "third" -> 3
    ordinal_suffix: str  # what follows digits in an ordinal ("st|nd|rd|th")
    months: tuple[str, ...]  # January first, for rendering (and day-month dates)


WORDS: dict[str, LanguageWords] = {
    "en": LanguageWords(
        days={"today": 0, "tonight": 0, "tomorrow": 1, "the day after tomorrow": 2, "day after tomorrow": 2},
        weekdays=("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        weekday_before=r"(?:(?:on\s+)?(?:next|this|coming)\s+|on\s+)",
        weekday_after=r"",
        in_units=r"in",
        units={"day": 1, "days": 1, "week": 7, "weeks": 7, "month": 30, "months": 30},
        time_before=r"at",
        time_after=r"o'clock",
        afternoon=("pm", "p.m.", "in the afternoon", "in the evening"),
        morning=("am", "a.m.", "in the morning"),
        numbers={"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
        | {"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20},
        ordinals={"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7}
        | {"eighth": 8, "ninth": 9, "tenth": 10},
        ordinal_suffix=r"st|nd|rd|th",
        months=_spaced(
            "January February March April May June July August September October November December"
        ),
    ),
    "de": LanguageWords(
        days={"heute": 0, "heute abend": 0, "morgen": 1, "übermorgen": 2},
        weekdays=("montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag", "sonntag"),
        weekday_before=r"(?:(?:am\s+)?(?:nächsten|nächster|nächste|kommenden|kommender|diesen)\s+|am\s+)",
        weekday_after=r"",
        in_units=r"in",
        units={"tag": 1, "tagen": 1, "woche": 7, "wochen": 7, "monat": 30, "monaten": 30},
        time_before=r"um",
        time_after=r"uhr",
        afternoon=("nachmittags", "abends"),
        morning=("morgens", "vormittags"),
        numbers={"null": 0, "eins": 1, "zwei": 2, "drei": 3}
        | {"vier": 4, "fünf": 5, "sechs": 6, "sieben": 7, "acht": 8, "neun": 9, "zehn": 10, "elf": 11}
        | {"zwölf": 12, "zwanzig": 20},
        ordinals={"erste": 1, "ersten": 1, "zweite": 2, "zweiten": 2, "dritte": 3, "dritten": 3}
        | {"vierte": 4, "vierten": 4, "fünfte": 5, "fünften": 5},
        ordinal_suffix=r"(?!)",  # "3." is also the end of a sentence: only words count
        months=_spaced("Januar Februar März April Mai Juni Juli August September Oktober November Dezember"),
    ),
    "es": LanguageWords(
        days={"hoy": 0, "esta noche": 0, "mañana": 1, "pasado mañana": 2},
        weekdays=("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
        weekday_before=r"(?:(?:el\s+)?(?:próximo|este)\s+|el\s+)",
        weekday_after=r"(?:\s+que\s+viene)",
        in_units=r"(?:en|dentro\s+de)",
        units={"día": 1, "días": 1, "semana": 7, "semanas": 7, "mes": 30, "meses": 30},
        time_before=r"a\s+las?",
        time_after=r"(?!)",
        afternoon=("de la tarde", "de la noche", "pm"),
        morning=("de la mañana", "am"),
        numbers={"cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5}
        | {"seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12, "veinte": 20},
        ordinals={"primero": 1, "primera": 1, "primer": 1, "segundo": 2, "segunda": 2, "tercero": 3}
        | {"tercera": 3, "tercer": 3, "cuarto": 4, "cuarta": 4, "quinto": 5, "quinta": 5},
        ordinal_suffix=r"º|ª|o|a",
        months=_spaced(
            "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"
        ),
    ),
    "fr": LanguageWords(
        days={"aujourd'hui": 0, "ce soir": 0, "demain": 1, "après-demain": 2},
        weekdays=("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
        weekday_before=r"(?:ce\s+)",
        weekday_after=r"(?:\s+prochain)",
        in_units=r"dans",
        units={"jour": 1, "jours": 1, "semaine": 7, "semaines": 7, "mois": 30},
        time_before=r"à",
        time_after=r"h|heures?",
        afternoon=("de l'après-midi", "du soir"),
        morning=("du matin",),
        numbers={"zéro": 0, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6}
        | {"sept": 7, "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "vingt": 20},
        ordinals={"premier": 1, "première": 1, "deuxième": 2, "second": 2, "seconde": 2, "troisième": 3}
        | {"quatrième": 4, "cinquième": 5},
        ordinal_suffix=r"er|re|e|ème|eme",
        months=_spaced(
            "janvier février mars avril mai juin juillet août septembre octobre novembre décembre"
        ),
    ),
}
# "a week", "einer Woche", "una semana": articles count as one after "in", and nowhere else.
ARTICLES = frozenset({"a", "an", "ein", "eine", "einem", "einer", "un", "una", "une"})
# Languages without a word table still get numeric dates, times, numbers and the other types.
NO_WORDS = LanguageWords({}, (), "(?!)", "(?!)", "(?!)", {}, "(?!)", "(?!)", (), (), {}, {}, "(?!)", ())

CURRENCIES = {
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "dólares": "USD", "dólar": "USD",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP",
    "chf": "CHF", "franken": "CHF", "francs": "CHF",
    "¥": "JPY", "jpy": "JPY", "yen": "JPY",
}  # fmt: skip


def _words(options: object) -> str:
    """Return an alternation of words, longest first, so "day after tomorrow" beats "tomorrow"."""
    return "|".join(re.escape(word) for word in sorted(options, key=len, reverse=True))  # type: ignore[arg-type]


@dataclass(frozen=True)
class BuiltinSettings:
    """What built-in values are read against: the bot's language, time zone and phone region."""

    language: str = "en"
    timezone: str = DEFAULT_TIMEZONE
    region: str | None = None  # ISO 3166 code for numbers written without +country


def check_timezone(name: str) -> str:
    """Return a valid IANA time zone name; raise ValueError naming it otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')") from exc
    return name


class BuiltinExtractor:
    """Find the built-in entities a bot names; each type's patterns are compiled once, here."""

    def __init__(self, names: tuple[str, ...], settings: BuiltinSettings = BuiltinSettings()) -> None:
        self.names = frozenset(names)
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.words = WORDS.get(settings.language, NO_WORDS)
        words = self.words
        number_word = _words(words.numbers)
        self.number_words = {word.casefold(): value for word, value in words.numbers.items()}
        self._number = re.compile(
            rf"(?<![\w.,])(?:\d{{1,15}}(?:[.,]\d{{1,6}})?|(?:{number_word}))(?![\w]|[.,]\d)", re.IGNORECASE
        )
        self._ordinal = re.compile(
            rf"(?<![\w.,])(?:(?P<digits>\d{{1,4}})(?:{words.ordinal_suffix})|(?P<word>{_words(words.ordinals) or '(?!)'}))(?!\w)",
            re.IGNORECASE,
        )
        currency = _words(CURRENCIES)
        amount = r"\d{1,12}(?:[.,]\d{3}){0,4}(?:[.,]\d{1,2})?"
        self._money = re.compile(
            rf"(?<![\w.,])(?:(?P<before>{currency})\s?(?P<amount1>{amount})|(?P<amount2>{amount})\s?(?P<after>{currency}))(?!\w)",
            re.IGNORECASE,
        )
        self._email = re.compile(
            r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}", re.IGNORECASE
        )
        self._url = re.compile(r"(?<!\w)(?:https?://|www\.)[^\s<>\"']{1,2000}", re.IGNORECASE)
        weekday = _words(words.weekdays) or "(?!)"
        amount_word = rf"\d{{1,3}}|{_words({*words.numbers, *ARTICLES}) if words.numbers else '(?!)'}"
        self._day = re.compile(
            rf"(?<!\w)(?:(?P<rel>{_words(words.days) or '(?!)'})"
            rf"|(?P<wd>{words.weekday_before}?(?P<weekday>{weekday}){words.weekday_after}?)"
            rf"|(?P<inn>{words.in_units}\s+(?P<count>{amount_word})\s+(?P<unit>{_words(words.units) or '(?!)'}))"
            rf"|(?P<iso>\d{{4}}-\d{{1,2}}-\d{{1,2}})"
            rf"|(?P<numeric>\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?|\d{{1,2}}\.\d{{1,2}}\.(?:\d{{2,4}})?)"
            rf"|(?P<named>\d{{1,2}}\.?\s{{1,3}}(?:de\s+)?(?:{_words(m.casefold() for m in words.months) or '(?!)'})(?:\s{{1,3}}(?:de\s+)?\d{{4}})?"
            rf"|(?:{_words(m.casefold() for m in words.months) or '(?!)'})\s{{1,3}}\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s{{1,3}}\d{{4}})?))(?!\w)",
            re.IGNORECASE,
        )
        pm = _words(words.afternoon) or "(?!)"
        am = _words(words.morning) or "(?!)"
        self._time = re.compile(
            rf"(?<![\w:])(?:(?:{words.time_before})\s+)?(?P<hour>\d{{1,2}})(?:[:h](?P<minute>\d{{2}}))?"
            rf"(?:\s?(?:(?P<pm>{pm})|(?P<am>{am})|(?:{words.time_after})))?(?!\w)",
            re.IGNORECASE,
        )
        self._time_needs = re.compile(
            rf"^(?:(?:{words.time_before})\s|.*(?::|(?:{pm})$|(?:{am})$|(?:{words.time_after})$))",
            re.IGNORECASE,
        )

    def warm_up(self) -> None:
        """Load dateparser's and phonenumbers' tables now, at model load: seconds, not on a message."""
        if "date" in self.names:
            _calendar_date("1 January 2000", self.settings.language, date(2000, 1, 1))
        if "phone_number" in self.names:
            import phonenumbers

            region = self.settings.region or "US"  # its tables load per country, on first use
            example = phonenumbers.example_number(region)
            self._phones(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL))

    def extract(self, text: str, now: datetime | None = None, time_zone: str | None = None) -> list[Entity]:
        """Return the built-in entities in a text; where two overlap, the longer one wins.

        Dates are read against ``now`` (default: the clock) in ``time_zone``, the conversation's
        IANA zone (default: the bot's); check a zone from outside with ``check_timezone`` first.
        """
        found: list[Entity] = []
        names = self.names
        if "date" in names:
            zone = self.zone if time_zone is None else ZoneInfo(time_zone)
            found += self._dates(text, now or datetime.now(zone), zone)
        if "money" in names and not text.isalpha():
            found += self._amounts(text)
        if "email" in names and "@" in text:
            found += [
                Entity("email", _email_value(m.group()), m.start(), m.end(), BUILTIN_EXTRACTOR)
                for m in self._email.finditer(text)
            ]
        if "url" in names and ("//" in text or "www." in text.casefold()):
            found += [
                Entity(
                    "url",
                    m.group().rstrip(".,;:!?)"),
                    m.start(),
                    m.start() + len(m.group().rstrip(".,;:!?)")),
                    BUILTIN_EXTRACTOR,
                )
                for m in self._url.finditer(text)
            ]
        if "phone_number" in names and sum(ch.isdigit() for ch in text) >= MIN_PHONE_DIGITS:
            found += self._phones(text)
        if "ordinal" in names:
            found += self._ordinals(text)
        if "number" in names:
            found += [
                Entity("number", self._number_value(m.group()), m.start(), m.end(), BUILTIN_EXTRACTOR)
                for m in self._number.finditer(text)
            ]
        return _longest(found)

    def _number_value(self, written: str) -> str:
        folded = written.casefold()
        if folded in self.number_words:
            return str(self.number_words[folded])
        return _decimal(written)

    def _ordinals(self, text: str) -> list[Entity]:
        found = []
        for match in self._ordinal.finditer(text):
            value = match.group("digits") or str(self.words.ordinals.get(match.group().casefold(), ""))
            if value:
                found.append(
                    Entity("ordinal", str(int(value)), match.start(), match.end(), BUILTIN_EXTRACTOR)
                )
        return found

    def _amounts(self, text: str) -> list[Entity]:
        found = []
        for match in self._money.finditer(text):
            amount = match.group("amount1") or match.group("amount2")
            currency = CURRENCIES[(match.group("before") or match.group("after")).casefold()]
            value = f"{_money_amount(amount)} {currency}"
            found.append(Entity("money", value, match.start(), match.end(), BUILTIN_EXTRACTOR))
        return found

    def _phones(self, text: str) -> list[Entity]:
        import phonenumbers  # here, not at import: only bots that name phone_number load its tables

        found = []
        matcher = phonenumbers.PhoneNumberMatcher(
            text, self.settings.region or "ZZ", leniency=phonenumbers.Leniency.VALID
        )
        for match in matcher:
            value = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            found.append(Entity("phone_number", value, match.start, match.end, BUILTIN_EXTRACTOR))
        return found

    def _dates(self, text: str, now: datetime, zone: ZoneInfo) -> list[Entity]:
        """Find days and times; a day and a time next to each other make one entity."""
        now = now.astimezone(zone)
        days = [(m.start(), m.end(), self._day_value(m, now.date())) for m in self._day.finditer(text)]
        days = [day for day in days if day[2] is not None]
        times = [
            (m.start(), m.end(), _clock(m))
            for m in self._time.finditer(text)
            if self._time_needs.match(m.group()) and _clock(m) is not None
        ]
        times = [item for item in times if not any(start <= item[0] < end for start, end, _ in days)]
        found = []
        used: set[int] = set()
        for start, end, day in days:
            joined = next(
                (t for t in times if _adjacent(text, end, t[0]) or _adjacent(text, t[1], start)), None
            )
            if joined is not None:
                used.add(id(joined))
                start, end = min(start, joined[0]), max(end, joined[1])
                found.append(Entity("date", _iso(day, joined[2], zone), start, end, BUILTIN_EXTRACTOR))
            else:
                found.append(Entity("date", day.isoformat(), start, end, BUILTIN_EXTRACTOR))  # type: ignore[union-attr]
        for item in times:
            if id(item) not in used:
                clock = item[2]
                day = (
                    now.date() if clock > now.time().replace(tzinfo=None) else now.date() + timedelta(days=1)
                )
                found.append(Entity("date", _iso(day, clock, zone), item[0], item[1], BUILTIN_EXTRACTOR))
        return found

    def _day_value(self, match: re.Match[str], today: date) -> date | None:
        words = self.words
        if match.group("rel"):
            offset = {key.casefold(): value for key, value in words.days.items()}[
                match.group("rel").casefold()
            ]
            return today + timedelta(days=offset)
        if match.group("weekday"):
            target = [day.casefold() for day in words.weekdays].index(match.group("weekday").casefold())
            ahead = (target - today.weekday()) % 7 or 7  # the next one after today
            return today + timedelta(days=ahead)
        if match.group("inn"):
            count = match.group("count")
            amount = int(count) if count.isdigit() else self.number_words.get(count.casefold(), 1)
            unit = {key.casefold(): value for key, value in words.units.items()}[
                match.group("unit").casefold()
            ]
            return today + timedelta(days=amount * unit)
        return _calendar_date(match.group(), self.settings.language, today)


def _iso(day: date, clock: time, zone: ZoneInfo) -> str:
    return datetime.combine(day, clock, tzinfo=zone).isoformat()


def _adjacent(text: str, end: int, start: int) -> bool:
    """Say whether only spaces or a comma separate two spans (end before start)."""
    return 0 <= start - end <= 3 and not text[end:start].strip(" ,")


def _clock(match: re.Match[str]) -> time | None:
    hour = int(match.group("hour"))
    minute = int(match.group("minute") or 0)
    if match.group("pm") and hour < 12:
        hour += 12
    elif match.group("am") and hour == 12:
        hour = 0
    return time(hour, minute) if hour < 24 and minute < 60 else None


@lru_cache(maxsize=1024)
def _calendar_date(written: str, language: str, today: date) -> date | None:
    """Read a calendar date with dateparser (cached: the same words on the same day read the same)."""
    import dateparser  # here, not at import: only bots that name dates load its tables

    settings = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": datetime.combine(today, time()),
        "REQUIRE_PARTS": ["day", "month"],
    }
    languages = (
        [language] if language in dateparser.languages.loader.LocaleDataLoader().get_locale_map() else None
    )
    parsed = dateparser.parse(written.replace(" de ", " "), languages=languages, settings=settings)
    return parsed.date() if parsed is not None else None


def _decimal(written: str) -> str:
    """Return "2,5" or "2.5" as "2.5", and digits as they are."""
    return written.replace(",", ".")


def _money_amount(written: str) -> str:
    """Return an amount with "." for decimals and no thousands separators: "1.234,50" -> "1234.50"."""
    if len(written) > 3 and written[-3] in ".,":
        whole, cents = written[:-3], written[-2:]
        return re.sub(r"[.,]", "", whole) + "." + cents
    return re.sub(r"[.,]", "", written) if re.search(r"[.,]\d{3}$", written) else _decimal(written)


def _email_value(written: str) -> str:
    local, _, domain = written.rpartition("@")
    return f"{local}@{domain.casefold()}"


def _longest(found: list[Entity]) -> list[Entity]:
    """Keep the longest of overlapping entities (a date's "2" is no number), by position."""
    kept: list[Entity] = []
    for entity in sorted(found, key=lambda item: (item.start - item.end, item.start)):
        if all(entity.end <= other.start or entity.start >= other.end for other in kept):
            kept.append(entity)
    return sorted(kept, key=lambda item: item.start)


# Rendering slot values in the bot's language: dates spelled out, decimals with the local comma.
WEEKDAY_NAMES = {
    language: tuple(day.capitalize() if language in ("en", "de") else day for day in words.weekdays)
    for language, words in WORDS.items()
}
DATE_FORMATS = {
    "en": "{weekday}, {day} {month} {year}",
    "de": "{weekday}, {day}. {month} {year}",
    "es": "{weekday}, {day} de {month} de {year}",
    "fr": "{weekday} {day} {month} {year}",
}
TIME_JOINERS = {"en": " at ", "de": " um ", "es": " a las ", "fr": " à "}
DECIMAL_COMMA = frozenset({"de", "es", "fr"})


def display_value(kind: str, value: str, language: str) -> str:
    """Return a slot value as the bot says it: a date spelled out in its language; others as stored."""
    if kind == "number" and language in DECIMAL_COMMA:
        return value.replace(".", ",")
    if kind != "date" or language not in DATE_FORMATS:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    words = WORDS[language]
    fields = {
        "weekday": WEEKDAY_NAMES[language][moment.weekday()],
        "day": moment.day,
        "month": words.months[moment.month - 1],
        "year": moment.year,
    }
    spelled = DATE_FORMATS[language].format(**fields)
    return spelled + f"{TIME_JOINERS[language]}{moment:%H:%M}" if "T" in value else spelled
