"""The text pipeline: same tokens for training and serving, any unicode input, no downloads."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot.text.tokens import STEM_CACHE_WORDS, normalize, stem, tokenize
from tests.harness import memory_kib, wait_until
from tests.support import record_figures


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello", ["hello"]),
        ("What's up?", ["what", "'s", "up"]),
        ("Is anyone there?", ["is", "anyon", "ther"]),
        ("I am Leaving", ["i", "am", "leav"]),
        ("HELLO, how are YOU!!", ["hello", "how", "ar", "you"]),
        ("?!...", []),
        ("", []),
        ("   ", []),
        ("café naïve", ["café", "naïv"]),
        ("\uff28\uff25\uff2c\uff2c\uff2f", ["hello"]),  # full-width letters fold to ASCII
        ("日本語 😀", ["日本語", "😀"]),
        ("a\x00b\ud800", ["a\x00b\ud800"]),  # control and lone surrogate characters do not crash
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokenize_is_stable_and_case_insensitive() -> None:
    assert tokenize("Where is my ORDER?") == tokenize("where is my order") == tokenize("Where is my ORDER?")


def test_normalize_folds_case_and_compatibility_forms() -> None:
    assert normalize("Straße ﬁle") == "strasse file"


def test_stem_is_cached() -> None:
    stem.cache_clear()
    stem("leaving")
    stem("leaving")
    assert stem.cache_info().hits == 1


def nltk_tokens(text: str) -> list[str]:
    """Tokenise with NLTK's own tokenizer, which chatbot/text/treebank.py matches."""
    from nltk.tokenize.destructive import NLTKWordTokenizer

    from chatbot.text.tokens import _is_punctuation

    return [token for token in NLTKWordTokenizer().tokenize(text) if not _is_punctuation(token)]


def words_of(text: str) -> list[str]:
    from chatbot.text.tokens import _is_punctuation, split_words

    return [token for token in split_words(text) if not _is_punctuation(token)]


def test_fast_path_matches_nltk_on_every_short_text() -> None:
    alphabet = "ab0 ?!."
    texts = [""]
    for _ in range(5):
        texts += [text + char for text in texts[-(len(alphabet) ** 5) :] for char in alphabet]
    for text in set(texts):
        assert words_of(text) == nltk_tokens(text), text


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                *[
                    "what",
                    "is",
                    "it",
                    "cannot",
                    "wanna",
                    "gonna",
                    "gimme",
                    "0",
                    "42",
                    "?",
                    "!",
                    ".",
                    "'",
                    "what's",
                    "don't",
                    "can't",
                    "i'm",
                    "we'll",
                ],
                *[
                    "they're",
                    "you've",
                    "he'd",
                    "'s",
                    "n't",
                    "o'clock",
                    "dogs'",
                    "'tis",
                    "more'n",
                    "d'ye",
                    "it's's",
                    "isn't",
                    "'twas",
                    "''",
                    "a'b",
                ],
                "",
                " ",
            ]
        ),
        max_size=8,
    ).map(" ".join)
    | st.text(alphabet="abcdnst0 ?!.,'\"-", max_size=12)
)
def test_fast_path_matches_nltk(text: str) -> None:
    assert words_of(text) == nltk_tokens(text)


# Time per character allowed to tokenize, far above the slowest input measured (about 11 µs a
# character, for "ﷺ", which NFKC expands to 18 letters): a regular expression that backtracks
# would take quadratic or exponential time and blow through it.
SECONDS_PER_CHAR = 1e-4
SECONDS_BASE = 0.02
# Inputs that make tokenizers backtrack or expand: runs of quotes, dashes, brackets, clitics,
# combining marks and characters that NFKC turns into many.
ADVERSARIAL_UNITS = ["'", "a'", "-", "x,", "(", '"', "[]{}<>", "don't ", "http://", "\u0300", "ﷺ", "1,000."]


def tokenize_seconds(text: str) -> float:
    """Return the best of three timings of a cold tokenize (stems not cached), in this thread's CPU
    time: a shared machine's other work lengthens the wall-clock time, not this."""
    timings = []
    for _ in range(3):
        stem.cache_clear()
        started = time.thread_time()
        tokenize(text)
        timings.append(time.thread_time() - started)
    return min(timings)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=1000))  # any unicode, up to the longest message the server accepts
def test_any_text_tokenizes_the_same_every_time_in_time_bounded_by_its_length(text: str) -> None:
    stem.cache_clear()
    first = tokenize(text)
    assert all(isinstance(token, str) and token for token in first)
    assert tokenize(text) == first  # the stem cache changes nothing
    assert tokenize_seconds(text) <= SECONDS_BASE + SECONDS_PER_CHAR * len(text)


@pytest.mark.parametrize("unit", ADVERSARIAL_UNITS)
def test_adversarial_text_takes_time_linear_in_its_length(unit: str) -> None:
    short = (unit * 1000)[:1000]
    long = (unit * 10_000)[:10_000]
    seconds_short, seconds_long = tokenize_seconds(short), tokenize_seconds(long)
    assert seconds_long <= SECONDS_BASE + SECONDS_PER_CHAR * len(long)
    assert seconds_long <= 30 * seconds_short + 0.01  # ten times the text: about ten times the time


@pytest.mark.slow
def test_long_words_leave_a_workers_memory_bounded(serve, tiny_model_path: Path) -> None:
    """Issue 13, finding 4: the stem cache kept words of up to 4,000 characters, +99 MB a worker."""
    server = serve(tiny_model_path)
    (worker,) = wait_until(lambda: server.worker_pids())
    headers = {"Content-Type": "application/json"}

    def send(batch: int) -> None:
        # 10 new words of 1,000 four-byte characters that NFKC keeps as they are: the largest
        # batch allowed (10,000 characters), a 40 KB body.
        texts = [chr(0x20000 + batch * 10 + i) + "\U00021000" * 999 for i in range(10)]
        body = json.dumps({"texts": texts}, ensure_ascii=False).encode()
        assert (
            requests.post(f"{server.url}/api/v1/parse", data=body, headers=headers, timeout=10).status_code
            == 200
        )

    for batch in range(5):  # warm up: the allocator's arenas, the first answers
        send(batch)
    before = memory_kib(worker, "Rss") * 1024
    for batch in range(5, 305):
        send(batch)
    growth = memory_kib(worker, "Rss") * 1024 - before
    assert growth < 8 * 2**20
    record_figures(
        "long_words", {"requests": 300, "words": 300 * 10, "rss_growth_mib": round(growth / 2**20, 1)}
    )


# ---- other languages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "tokens"),
    [
        ("Stell den Wecker für 5 Uhr!", "de", ["stell", "den", "weck", "fur", "5", "uhr"]),
        ("Häuser, HAEUSER", "de", ["haus", "haeus"]),  # umlauts fold like the users who skip them
        (
            "Mets l'alarme à 7h, s'il te plaît",
            "fr",
            ["met", "l", "alarm", "a", "7h", "s", "il", "te", "plait"],
        ),
        ("¿Qué tiempo hará mañana?", "es", ["que", "tiemp", "har", "manan"]),
        ("ما هو الطقس اليوم؟ 😀", "ar", ["ما", "هو", "طقس", "يوم", "😀"]),
        # Devanagari vowel signs are marks inside the word, never split off, never folded; no stemmer.
        ("मेरे लिए 5 बजे का अलार्म लगाओ।", "hi", ["मेरे", "लिए", "5", "बजे", "का", "अलार्म", "लगाओ"]),
        # Thai typed without spaces is one word per run (the engine segments it: test_segment.py).
        ("เพิ่ม อีก สิบ นาที Floss", "th", ["เพิ่ม", "อีก", "สิบ", "นาที", "floss"]),
        ("เพิ่มอีกสิบนาที Floss", "th", ["เพิ่มอีกสิบนาที", "floss"]),
        ("", "de", []),
    ],
)
def test_tokenize_other_languages(text: str, language: str, tokens: list[str]) -> None:
    assert tokenize(text, language) == tokens


def test_english_path_is_nltk_and_lancaster_on_the_default_bot() -> None:
    """The default English bot reads its text exactly as before languages existed."""
    from nltk.stem.lancaster import LancasterStemmer
    from nltk.tokenize.destructive import NLTKWordTokenizer

    from chatbot.data.intents import load_intents
    from chatbot.text.tokens import _is_punctuation
    from tests.support import DEFAULT_INTENTS

    lancaster, tokenizer = LancasterStemmer(), NLTKWordTokenizer()
    for intent in load_intents(DEFAULT_INTENTS):
        for pattern in intent.patterns:
            expected = [
                lancaster.stem(token)
                for token in tokenizer.tokenize(normalize(pattern))
                if not _is_punctuation(token)
            ]
            assert tokenize(pattern) == tokenize(pattern, "en") == expected, pattern


def test_stems_of_each_language_are_cached_apart_and_caches_are_bounded() -> None:
    from chatbot.text.tokens import stemmer

    stem.cache_clear()
    assert stem("wecker", "de") == "weck"
    assert stem("wecker", "en") == "weck"  # Lancaster: the same token, cached apart per language
    assert stem("wecker", "hi") == "wecker"  # no stemmer for Hindi: words as written
    assert stem.cache_info().currsize == 3 and stem.cache_info().maxsize == STEM_CACHE_WORDS
    assert stemmer.cache_info().maxsize is not None


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=1000), st.sampled_from(["de", "fr", "fi", "hu", "ar", "ru", "hi", "th"]))
def test_any_text_in_any_language_tokenizes_in_time_bounded_by_its_length(text: str, language: str) -> None:
    from chatbot.text.tokens import stemmer

    stemmer(language)  # loaded with the model (chatbot.classifier.ranker), not per message
    stem.cache_clear()
    started = time.thread_time()
    tokens = tokenize(text, language)
    assert time.thread_time() - started <= SECONDS_BASE + SECONDS_PER_CHAR * len(text)
    assert all(isinstance(token, str) and token for token in tokens)
    assert tokenize(text, language) == tokens


# Every character class the tokenizer's rules treat apart: quotes of every kind, brackets, dashes,
# clitics, the punctuation it splits off, digits, spaces of every kind and a few letters.
TOKENIZER_ALPHABET = (
    "ab'\"`-.,;:!?()[]{}<>\u00ab\u00bb\u201c\u201d\u2018\u2019\u201e*@#$%&\u2013\u2014 \t\n07\u00e9\u00df"
)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=TOKENIZER_ALPHABET, max_size=30) | st.text(max_size=30))
def test_ported_tokenizer_matches_nltk(text: str) -> None:
    from nltk.tokenize.destructive import NLTKWordTokenizer

    from chatbot.text import treebank

    assert treebank.tokenize(text) == NLTKWordTokenizer().tokenize(text)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz\u00e91'-", max_size=16) | st.text(max_size=16))
def test_ported_stemmer_matches_nltk(word: str) -> None:
    from nltk.stem.lancaster import LancasterStemmer

    from chatbot.text import lancaster

    assert lancaster.stem(word) == LancasterStemmer().stem(word)


def test_ported_stemmer_matches_nltk_on_every_word_the_benchmarks_use() -> None:
    from nltk.stem.lancaster import LancasterStemmer

    from chatbot.data.intents import load_intents
    from chatbot.text import lancaster
    from tests.support import DEFAULT_INTENTS, ROOT

    paraphrases = ROOT / "bench" / "data" / "default_bot_paraphrases.intents.json"
    texts = [
        pattern
        for path in (DEFAULT_INTENTS, paraphrases)
        for i in load_intents(path)
        for pattern in i.patterns
    ]
    texts += (ROOT / "chatbot" / "resources" / "off_topic.txt").read_text().splitlines()
    vocabulary = {word for text in texts for word in re.findall(r"[\w']+", normalize(text))}
    assert len(vocabulary) > 500
    nltk_stemmer = LancasterStemmer()
    assert {word: lancaster.stem(word) for word in vocabulary} == {
        word: nltk_stemmer.stem(word) for word in vocabulary
    }


@pytest.mark.slow  # trains the German bot
def test_a_german_bot_loads_its_stemmer_with_the_model(german_model_path: Path) -> None:
    """The Snowball stemmer imports NLTK (a second or more): never on a worker's first message."""
    import subprocess
    import sys

    from tests.support import ROOT

    script = (
        "import sys; from chatbot.classifier.bundle import Bundle; from chatbot.classifier.ranker import Ranker; "
        f"Ranker.from_bundle(Bundle.load({str(german_model_path)!r})); print('nltk' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
