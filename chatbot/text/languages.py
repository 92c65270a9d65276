"""Name the languages a bot may be written in, and what each one needs from the text pipeline.

A bot's ``language`` (intents.json, default ``en``) is a BCP 47 tag; only its primary subtag
matters here ("de-AT" reads as German). Per language: the NLTK Snowball stemmer where one exists
(it needs no downloaded data), whether accents are folded away (Latin scripts, where users often
type without them; never where the marks are letters, as in Devanagari or Thai), and the built-in
fallback answer. English keeps its own path: Lancaster stemmer and NLTK's English tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_LANGUAGE = "en"
_TAG = re.compile(r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class Language:
    """What the text pipeline does for one language."""

    name: str  # in English, for messages
    snowball: str | None = None  # nltk.stem.snowball stemmer name; None: words are not stemmed
    fold_accents: bool = False  # drop combining accents of Latin letters ("teléfono" -> "telefono")
    spaced: bool = True  # False: written without spaces between words (Thai): the engine splits
    # runs of letters it does not know into the training words (chatbot.text.segment)


LANGUAGES: dict[str, Language] = {
    "en": Language("English", "english"),  # served by the Lancaster path in chatbot.text.tokens
    "ar": Language("Arabic", "arabic"),
    "da": Language("Danish", "danish"),
    "de": Language("German", "german", fold_accents=True),
    "es": Language("Spanish", "spanish", fold_accents=True),
    "fi": Language("Finnish", "finnish"),
    "fr": Language("French", "french", fold_accents=True),
    "hu": Language("Hungarian", "hungarian"),
    "it": Language("Italian", "italian", fold_accents=True),
    "nl": Language("Dutch", "dutch", fold_accents=True),
    "no": Language("Norwegian", "norwegian"),
    "nb": Language("Norwegian Bokmål", "norwegian"),
    "nn": Language("Norwegian Nynorsk", "norwegian"),
    "pt": Language("Portuguese", "portuguese", fold_accents=True),
    "ro": Language("Romanian", "romanian"),
    "ru": Language("Russian", "russian"),
    "sv": Language("Swedish", "swedish"),
    # No stemmer in NLTK that needs no data: words are used as written (character n-grams still
    # share strength across inflections).
    "hi": Language("Hindi"),
    "th": Language("Thai", spaced=False),
    "he": Language("Hebrew"),
    "ja": Language("Japanese", spaced=False),
    "ko": Language("Korean"),
    "pl": Language("Polish"),
    "tr": Language("Turkish"),
    "uk": Language("Ukrainian"),
    "vi": Language("Vietnamese"),
    "zh": Language("Chinese", spaced=False),
}

# The built-in fallback answer, by language; the languages not listed answer in English.
FALLBACK_RESPONSES: dict[str, str] = {
    "en": "Sorry, I didn't understand that. Could you say it another way?",
    "ar": "عذرًا، لم أفهم ذلك. هل يمكنك قوله بطريقة أخرى؟",
    "de": "Entschuldigung, das habe ich nicht verstanden. Kannst du es anders sagen?",
    "es": "Lo siento, no lo he entendido. ¿Puedes decirlo de otra manera?",
    "fr": "Désolé, je n'ai pas compris. Pouvez-vous le dire autrement ?",
    "hi": "माफ़ कीजिए, मैं समझ नहीं पाया। क्या आप इसे दूसरे तरीके से कह सकते हैं?",
    "th": "ขออภัย ฉันไม่เข้าใจ ช่วยพูดอีกแบบได้ไหม",
}


def language_code(tag: str) -> str:
    """Return the supported primary language of a BCP 47 tag ("de-AT" -> "de"); raise ValueError."""
    match = _TAG.fullmatch(tag.strip()) if isinstance(tag, str) else None
    code = match.group(1).lower() if match else None
    if code not in LANGUAGES:
        known = ", ".join(sorted(LANGUAGES))
        raise ValueError(f"unknown language {tag!r}: use an ISO 639-1 code (BCP 47 tag) from {known}")
    return code


def fallback_response(language: str) -> str:
    """Return the built-in fallback answer in a language (English where none is written)."""
    return FALLBACK_RESPONSES.get(language, FALLBACK_RESPONSES[DEFAULT_LANGUAGE])
