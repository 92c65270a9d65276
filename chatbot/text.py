"""Turn raw text into stemmed tokens, the same way for training and serving.

NLTKWordTokenizer needs no downloaded data (unlike ``nltk.word_tokenize``, which wants punkt).
Its ~40 regular expressions cost about 0.1 ms a message, so plain messages take a fast path that
gives the same tokens (a property test compares the two on generated text).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from nltk.stem.lancaster import LancasterStemmer
from nltk.tokenize.destructive import NLTKWordTokenizer

_tokenizer = NLTKWordTokenizer()
_stemmer = LancasterStemmer()

# Lower-case ASCII words separated by spaces and ending in ? ! or full stops: on such text the NLTK
# tokenizer only splits off the end punctuation (which tokenize drops anyway) and the clitics...
_PLAIN = re.compile(r"[a-z0-9' ]*[?!]*\.*")
_CLITIC = re.compile(r"([a-z0-9]+)('s|'m|'d|'ll|'re|'ve|n't)")  # "what's" -> "what", "'s"
# ...and these words, which it splits in two ("cannot" -> "can", "not"). Anything else goes to NLTK.
_SPLIT_WORDS = frozenset({"cannot", "gimme", "gonna", "gotta", "lemme", "wanna"})


def normalize(text: str) -> str:
    """Fold compatibility forms (full-width letters, ligatures) and case."""
    return unicodedata.normalize("NFKC", text).casefold()


def tokenize(text: str) -> list[str]:
    """Split text into stemmed, lower-case word tokens, dropping punctuation."""
    return [stem(word) for word in words(text)]


def words(text: str) -> list[str]:
    """Split text into normalised, unstemmed words, dropping punctuation (what n-grams are cut from)."""
    return [token for token in split_words(normalize(text)) if not _is_punctuation(token)]


def split_words(text: str) -> list[str]:
    """Split normalised text into NLTK's word tokens (the fast path leaves out end punctuation)."""
    if _PLAIN.fullmatch(text):
        words = _split_plain(text.rstrip("?!.").split())
        if words is not None:
            return words
    return _tokenizer.tokenize(text)


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


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    """Stem one token; cached because the Lancaster stemmer is the slowest step per request."""
    return _stemmer.stem(token)


def _is_punctuation(token: str) -> bool:
    return all(unicodedata.category(char).startswith("P") for char in token)
