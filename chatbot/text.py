"""Turn raw text into stemmed tokens, the same way for training and serving.

NLTKWordTokenizer needs no downloaded data (unlike ``nltk.word_tokenize``, which wants punkt).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from nltk.stem.lancaster import LancasterStemmer
from nltk.tokenize.destructive import NLTKWordTokenizer

_tokenizer = NLTKWordTokenizer()
_stemmer = LancasterStemmer()


def normalize(text: str) -> str:
    """Fold compatibility forms (full-width letters, ligatures) and case."""
    return unicodedata.normalize("NFKC", text).casefold()


def tokenize(text: str) -> list[str]:
    """Split text into stemmed, lower-case word tokens, dropping punctuation."""
    return [stem(token) for token in _tokenizer.tokenize(normalize(text)) if not _is_punctuation(token)]


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    """Stem one token; cached because the Lancaster stemmer is the slowest step per request."""
    return _stemmer.stem(token)


def _is_punctuation(token: str) -> bool:
    return all(unicodedata.category(char).startswith("P") for char in token)
