"""Turn raw text into stemmed tokens, the same way for training and serving, in the bot's language.

English (the default) has its own path, below. Other languages (chatbot.text.languages) split on Unicode
letters, marks and digits (so Devanagari vowel signs and Thai tone marks stay inside their word, and
French elisions such as "l'alarme" give "l", "alarme"), fold Latin accents where users leave them
out, and stem with NLTK's Snowball stemmer where one exists. Scripts written without spaces (Thai)
give one "word" per run of letters; the engine splits it into training words (chatbot.text.segment).

English is split by the Penn Treebank conventions and stemmed by the Lancaster (Paice/Husk)
stemmer, both written for this project (chatbot/text/treebank.py, chatbot/text/lancaster.py) to give
NLTK's tokens and stems without importing NLTK, which would bring scikit-learn and scipy. The tokenizer's ~40 regular expressions cost about
0.05 ms a message, so plain messages take a fast path that gives the same tokens (a property test
compares the two).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

import regex

from chatbot.text import lancaster, treebank
from chatbot.text.languages import DEFAULT_LANGUAGE, LANGUAGES

# Other languages: a word is a run of letters, combining marks and digits; any other character
# that is neither space nor punctuation (a symbol, an emoji) is a word of its own run.
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+|[^\s\p{L}\p{M}\p{N}\p{P}]+")
_LATIN_ACCENTS = regex.compile(r"(?<=\p{Latin})\p{Mn}+")  # after NFD: the accents of Latin letters

# Lower-case ASCII words separated by spaces and ending in ? ! or full stops: on such text the NLTK
# tokenizer only splits off the end punctuation (which tokenize drops anyway) and the clitics...
_PLAIN = re.compile(r"[a-z0-9' ]*[?!]*\.*")
_CLITIC = re.compile(r"([a-z0-9]+)('s|'m|'d|'ll|'re|'ve|n't)")  # "what's" -> "what", "'s"
# ...and these words, which it splits in two ("cannot" -> "can", "not"). Anything else takes the
# whole tokenizer.
_SPLIT_WORDS = frozenset({"cannot", "gimme", "gonna", "gotta", "lemme", "wanna"})
# Longer words, counted after NFKC (one U+3300 becomes 4-5 letters), are kept as they are: neither
# stemmed nor cached. No language needs longer words, and with them the stem cache's entries, and so
# a worker's memory, are bounded in bytes whatever the input (up to 4,000 characters a word took
# 15.8 KB an entry, ~1 GB for a full cache).
MAX_WORD_CHARS = 40
STEM_CACHE_WORDS = 16384  # ~500 bytes an entry at most: ~8 MB a worker


def normalize(text: str) -> str:
    """Fold compatibility forms (full-width letters, ligatures) and case."""
    return unicodedata.normalize("NFKC", text).casefold()


def fold_accents(text: str) -> str:
    """Drop the accents of Latin letters ("Teléfono" -> "Telefono"), keeping every other mark."""
    return unicodedata.normalize("NFC", _LATIN_ACCENTS.sub("", unicodedata.normalize("NFD", text)))


def fold(text: str) -> str:
    """Fold compatibility forms, case and the accents of Latin letters: "Crème" -> "creme".

    The one folding rule for matching typed text case- and accent-insensitively (entity lookups
    use it): the marks of other scripts (Devanagari vowel signs, Thai tone marks) are part of the
    word and stay.
    """
    return fold_accents(normalize(text))


def tokenize(text: str, language: str = DEFAULT_LANGUAGE) -> list[str]:
    """Split text into stemmed, lower-case word tokens, dropping punctuation."""
    return [stem(word, language) for word in words(text, language)]


def words(text: str, language: str = DEFAULT_LANGUAGE) -> list[str]:
    """Split text into normalised, unstemmed words, dropping punctuation (what n-grams are cut from)."""
    if language == DEFAULT_LANGUAGE:
        return [token for token in split_words(normalize(text)) if not _is_punctuation(token)]
    text = normalize(text)
    if LANGUAGES[language].fold_accents:
        text = fold_accents(text)
    return _WORD.findall(text)


def split_words(text: str) -> list[str]:
    """Split normalised text into NLTK's word tokens (the fast path leaves out end punctuation)."""
    if _PLAIN.fullmatch(text):
        words = _split_plain(text.rstrip("?!.").split())
        if words is not None:
            return words
    return treebank.tokenize(text)


def _split_plain(words: list[str]) -> list[str] | None:
    tokens: list[str] = []
    for word in words:
        if "'" in word:
            clitic = _CLITIC.fullmatch(word)
            if clitic is None:
                return None
            tokens += clitic.groups()
        else:
            tokens.append(word)
    return tokens if _SPLIT_WORDS.isdisjoint(tokens) else None


def stem(token: str, language: str = DEFAULT_LANGUAGE) -> str:
    """Stem one token, through a cache: the stemmer is the slowest step per request.

    A token longer than MAX_WORD_CHARS is returned as it is, neither stemmed nor cached.
    """
    return token if len(token) > MAX_WORD_CHARS else _stem_word(token, language)


@lru_cache(maxsize=STEM_CACHE_WORDS)
def _stem_word(token: str, language: str) -> str:
    return stemmer(language)(token)


@lru_cache(maxsize=len(LANGUAGES))
def stemmer(language: str) -> Callable[[str], str]:
    """Return the stemming function of a language: Lancaster for English, Snowball, or none."""
    if language == DEFAULT_LANGUAGE:
        return lancaster.stem
    snowball = LANGUAGES[language].snowball
    if snowball is None:
        return str
    from nltk.stem.snowball import SnowballStemmer  # imports all of NLTK: only for the bots that need it

    return SnowballStemmer(snowball).stem


stem.cache_clear = _stem_word.cache_clear  # type: ignore[attr-defined]  # tests time a cold cache
stem.cache_info = _stem_word.cache_info  # type: ignore[attr-defined]


def _is_punctuation(token: str) -> bool:
    return all(unicodedata.category(char).startswith("P") for char in token)
