"""The numpy engine gives Keras' probabilities without TensorFlow."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.config import ModelConfig
from chatbot.classifier.ranker import Ranker
from chatbot.classifier.vocab import UNK_ID, Vocabulary
from chatbot.errors import UnsupportedModelError
from chatbot.text.tokens import stem
from tests.support import ROOT


def random_bundle(model, vocabulary_size: int, config: ModelConfig) -> Bundle:
    """Wrap an untrained Keras model in a bundle, as training would."""
    from chatbot.training.fit import extract_weights, json_architecture

    labels = tuple(f"intent{i}" for i in range(model.output_shape[-1]))
    from chatbot.data.intents import Intent

    return Bundle(
        architecture=json_architecture(model),
        weights=extract_weights(model),
        vocabulary=Vocabulary(("<pad>", "<unk>", *(f"w{i:04d}" for i in range(vocabulary_size - 2)))),
        labels=labels,
        intents=tuple(Intent(label, ("x",), ("y",)) for label in labels),
        config=config,
        data_sha256="0" * 64,
    )


def parity_inputs(vocabulary_size: int, max_length: int, seed: int) -> np.ndarray:
    """Return 1,000 padded id sequences, including empty and fully unknown ones."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocabulary_size, size=(1000, max_length), dtype=np.int32)
    lengths = rng.integers(0, max_length + 1, size=1000)
    ids[np.arange(max_length) >= lengths[:, None]] = 0
    ids[0] = 0  # empty text
    ids[1, :3] = UNK_ID  # only unknown words
    ids[1, 3:] = 0
    ids[2] = UNK_ID
    return ids


def build(kind: str, config: ModelConfig, vocabulary_size: int, labels: int):
    """Build a Keras model of one of the shapes the engine supports."""
    import keras
    from keras import layers

    from chatbot.classifier.model import build_model

    if kind == "trainer":
        return build_model(vocabulary_size, labels, config)
    if kind in ("ensemble", "mixed_ensemble"):
        from chatbot.classifier.model import average_models

        members = []
        for seed in range(3):
            keras.utils.set_random_seed(config.seed + seed)
            # Members of different widths cannot be stacked into one array: they run one by one.
            units = config.lstm_units + (seed if kind == "mixed_ensemble" else 0)
            members.append(build_model(vocabulary_size, labels, config.replace(lstm_units=units)))
        return average_models(members)
    keras.utils.set_random_seed(config.seed)
    inputs = keras.Input(shape=(config.max_length,), dtype="int32")
    x = layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True)(inputs)
    if kind == "bidirectional":
        x = layers.Bidirectional(layers.LSTM(config.lstm_units, return_sequences=True))(x)
        x = layers.LSTM(config.lstm_units, recurrent_activation="hard_sigmoid")(x)
    else:  # stacked, tanh dense
        x = layers.LSTM(config.lstm_units, return_sequences=True, activation="relu")(x)
        x = layers.Bidirectional(layers.LSTM(config.lstm_units))(x)
        x = layers.Dense(config.dense_units or 8, activation="tanh")(x)
    outputs = layers.Dense(labels, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "config", "vocabulary_size", "labels"),
    [
        ("trainer", ModelConfig(max_length=12, seed=1), 50, 7),
        (
            "trainer",
            ModelConfig.for_dataset(10_000).replace(embedding_dim=16, lstm_units=12, max_length=10, seed=5),
            120,
            9,
        ),
        (
            "trainer",
            ModelConfig(embedding_dim=16, lstm_units=24, dense_units=32, max_length=20, seed=2),
            300,
            20,
        ),
        ("bidirectional", ModelConfig(embedding_dim=8, lstm_units=8, max_length=9, seed=3), 40, 3),
        (
            "ensemble",
            ModelConfig.for_dataset(10_000).replace(embedding_dim=8, lstm_units=6, max_length=8, seed=6),
            60,
            5,
        ),
        ("mixed_ensemble", ModelConfig(embedding_dim=8, lstm_units=4, max_length=8, seed=7), 60, 5),
        (
            "stacked",
            ModelConfig(embedding_dim=12, lstm_units=6, dense_units=10, max_length=15, seed=4),
            90,
            5,
        ),
    ],
)
def test_numpy_matches_keras(kind: str, config: ModelConfig, vocabulary_size: int, labels: int) -> None:
    model = build(kind, config, vocabulary_size, labels)
    engine = Ranker.from_bundle(random_bundle(model, vocabulary_size, config))
    token_ids = parity_inputs(vocabulary_size, config.max_length, config.seed)
    expected = np.asarray(model(token_ids, training=False))
    actual = engine.forward(token_ids)
    assert np.abs(actual - expected).max() <= 1e-5
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()


@pytest.mark.parametrize("dense_units", [0, 10])
def test_numpy_matches_keras_for_the_lstm_beside_the_sentence_vector(dense_units: int) -> None:
    import keras

    from chatbot.classifier.model import build_model

    config = ModelConfig(embedding_dim=8, lstm_units=6, dense_units=dense_units, max_length=9, seed=5)
    keras.utils.set_random_seed(config.seed)
    model = build_model(50, 4, config, vector_dim=16)
    engine = Ranker.from_bundle(random_bundle(model, 50, config))
    token_ids = parity_inputs(50, config.max_length, config.seed)
    vectors = np.random.default_rng(0).normal(size=(len(token_ids), 16)).astype(np.float32)
    expected = np.asarray(model([token_ids, vectors], training=False))
    actual = engine.forward(token_ids, vectors)
    assert np.abs(actual - expected).max() <= 1e-5
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()
    with pytest.raises(ValueError, match="needs the sentence vectors"):
        engine.forward(token_ids, None)


def test_numpy_matches_keras_for_the_model_averaged_with_a_softmax_on_the_vector() -> None:
    import keras

    from chatbot.classifier.model import build_model, with_vector_head

    config = ModelConfig(embedding_dim=8, lstm_units=6, max_length=9, seed=6)
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(size=(16, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    joined = build_model(50, 4, config, vector_dim=16)
    model = with_vector_head(joined, kernel, bias)
    engine = Ranker.from_bundle(random_bundle(model, 50, config))
    token_ids = parity_inputs(50, config.max_length, config.seed)
    vectors = rng.normal(size=(len(token_ids), 16)).astype(np.float32)
    expected = np.asarray(model([token_ids, vectors], training=False))
    actual = engine.forward(token_ids, vectors)
    assert np.abs(actual - expected).max() <= 1e-5
    # The average of the two softmaxes: neither alone.
    logits = vectors @ kernel + bias
    vector_alone = np.exp(logits - logits.max(axis=1, keepdims=True))
    vector_alone /= vector_alone.sum(axis=1, keepdims=True)
    joined_alone = np.asarray(joined([token_ids, vectors], training=False))
    assert np.abs(actual - (vector_alone + joined_alone) / 2).max() <= 1e-5
    assert np.abs(actual - joined_alone).max() > 1e-3


def test_rank_orders_all_labels(engine: Ranker) -> None:
    ranking = engine.rank("hello there")
    scores = [score for _, score in ranking.label_probabilities]
    assert ranking.top[0] == "greeting"
    assert sorted(ranking.label_probabilities, key=lambda item: -item[1]) == list(ranking.label_probabilities)
    assert {name for name, _ in ranking.label_probabilities} == set(engine.labels)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert ranking.known_words == 2


def test_rank_batch_equals_single(engine: Ranker) -> None:
    texts = ["bye", "where is my order", "", "zzz qqq"]
    for text, ranking in zip(texts, engine.rank_batch(texts), strict=True):
        single = engine.rank(text)
        assert [name for name, _ in ranking.label_probabilities] == [
            name for name, _ in single.label_probabilities
        ]
        assert np.allclose(
            [s for _, s in ranking.label_probabilities], [s for _, s in single.label_probabilities], atol=1e-6
        )


def test_unknown_words_are_counted(engine: Ranker) -> None:
    assert engine.rank("zzz qqq").known_words == 0
    assert engine.rank("").known_words == 0


def test_unsupported_layer_fails_at_load(tiny_bundle: Bundle) -> None:
    architecture = {
        "config": {"layers": [*tiny_bundle.layers(), {"class_name": "Conv1D", "name": "conv", "config": {}}]}
    }
    with pytest.raises(UnsupportedModelError, match=r"'conv' \(Conv1D\) is not supported"):
        Ranker.from_bundle(dataclasses.replace(tiny_bundle, architecture=architecture))


def test_unsupported_activation_fails_at_load(tiny_bundle: Bundle) -> None:
    layers = [
        {**layer, "config": {**layer["config"], "activation": "gelu"}} if layer["name"] == "intent" else layer
        for layer in tiny_bundle.layers()
    ]
    with pytest.raises(UnsupportedModelError, match="activation 'gelu'"):
        Ranker.from_bundle(dataclasses.replace(tiny_bundle, architecture={"config": {"layers": layers}}))


def test_serving_path_does_not_import_tensorflow(tiny_model_path) -> None:
    code = (
        "import sys; from chatbot.dialogue.decision import load_dialogue; import app; "
        f"load_dialogue({str(tiny_model_path)!r}).reply('hello'); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_keras_backend_gives_the_same_rankings(tiny_bundle: Bundle) -> None:
    numpy_engine = Ranker.from_bundle(tiny_bundle)
    keras_engine = Ranker.from_bundle(tiny_bundle, "keras")
    texts = ["hello", "where is my order", "", "zzz", "the number is 42 and more words than seen"]
    for ours, theirs in zip(numpy_engine.rank_batch(texts), keras_engine.rank_batch(texts), strict=True):
        assert [name for name, _ in ours.label_probabilities] == [
            name for name, _ in theirs.label_probabilities
        ]
        assert np.allclose(
            [s for _, s in ours.label_probabilities], [s for _, s in theirs.label_probabilities], atol=1e-5
        )


def test_unknown_backend_is_refused(tiny_bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="unknown engine 'torch'"):
        Ranker.from_bundle(tiny_bundle, "torch")


def test_rank_remembers_recent_word_sequences(engine: Ranker) -> None:
    engine.rank_words.cache_clear()
    first = engine.rank("Hello there!")
    second = engine.rank("hello there")  # other text, same words: answered from the cache
    assert second is first
    assert engine.rank_words.cache_info().hits == 1
    assert engine.rank("hello") is not first


def test_probabilities_mix_the_lstm_and_the_ngram_model(tiny_bundle: Bundle) -> None:
    texts = [["where", "is", "my", "order"], ["hello"], []]
    tokens = [[stem(word) for word in text] for text in texts]
    engine = Ranker.from_bundle(tiny_bundle)
    vectors = engine.encoder.encode([" ".join(text) for text in texts])  # the words it reads, once each
    deep = engine.forward(tiny_bundle.vocabulary.encode_batch(tokens, 8), vectors)
    assert np.allclose(engine.part_probabilities(texts)[0], deep, atol=1e-6)
    wide = tiny_bundle.ngram_model.predict_proba(list(zip(texts, tokens, strict=True)))
    for weight in (0.0, 0.3, 1.0):
        bundle = dataclasses.replace(tiny_bundle, config=tiny_bundle.config.replace(deep_weight=weight))
        mixed = Ranker.from_bundle(bundle).predict_proba(texts)
        assert np.allclose(mixed, weight * deep + (1 - weight) * wide, atol=1e-6)
    without_ngrams = dataclasses.replace(tiny_bundle, ngram_model=None)
    assert np.allclose(Ranker.from_bundle(without_ngrams).predict_proba(texts), deep, atol=1e-6)


@pytest.mark.slow
def test_german_bot_reads_german_and_falls_back_in_german(german_model_path) -> None:
    from chatbot.dialogue.decision import Dialogue
    from chatbot.text.languages import fallback_response

    bundle = Bundle.load(german_model_path)
    assert bundle.config.language == "de"
    assert bundle.config.off_topic_weight == 0.0  # the generic off-topic queries are English
    assert bundle.widget_strings["retry"] == "Nochmal versuchen"
    engine = Ranker.from_bundle(bundle)
    assert engine.rank("Wie ist das Wetter in Munchen?").top[0] == "wetter"  # typed without the umlaut
    assert engine.rank("WECKER um 7 stellen!").top[0] == "wecker"
    assert engine.rank("Wettervorhersagen").top[0] == "wetter"  # Snowball: the same stem
    reply = Dialogue(engine, threshold=1.01).reply("Wecker")  # no confidence reaches 1.01
    assert reply.fallback and reply.response == fallback_response("de")
    assert reply.response.startswith("Entschuldigung")


THAI_INTENTS = {
    "language": "th",
    "intents": [
        {
            "tag": "timer",
            "patterns": ["ตั้ง เวลา 10 นาที", "เพิ่ม เวลา ใน นาฬิกา จับ เวลา", "หยุด การ จับ เวลา", "จับ เวลา 5 นาที"],
            "responses": ["ok"],
        },
        {
            "tag": "weather",
            "patterns": ["พรุ่งนี้ ฝน จะ ตก ไหม", "อากาศ วันนี้ เป็น อย่างไร", "วันนี้ ร้อน ไหม", "พยากรณ์ อากาศ"],
            "responses": ["ok"],
        },
    ],
}


@pytest.mark.slow
def test_thai_bot_answers_text_typed_without_spaces() -> None:
    """MTOP's Thai is segmented with spaces; users type none: both read the same."""
    from chatbot.data.intents import validate_intents, validate_language
    from chatbot.training.train import default_config, train

    intents = validate_intents(THAI_INTENTS)
    bundle = train(intents, default_config(intents, validate_language(THAI_INTENTS)))
    engine = Ranker.from_bundle(bundle)
    for segmented in ("อากาศ พรุ่งนี้ เป็น อย่างไร", "ตั้ง นาฬิกา จับ เวลา"):
        unsegmented = segmented.replace(" ", "")
        assert engine.rank(unsegmented).top == engine.rank(segmented).top
    assert engine.rank("อากาศพรุ่งนี้เป็นอย่างไร").top[0] == "weather"
    assert engine.rank("ตั้งนาฬิกาจับเวลา").top[0] == "timer"


def test_a_served_ranker_batches_messages_and_ranks_as_before(tiny_bundle: Bundle) -> None:
    plain = Ranker.from_bundle(tiny_bundle, cache_size=0)
    served = Ranker.from_bundle(tiny_bundle, cache_size=0).serve()
    assert plain.batcher is None and served.batcher is not None
    texts = ["hello there", "where is my order 12345", "", "zzz qqq", "thanks, bye"]
    for text in texts:
        expected, actual = plain.rank(text), served.rank(text)
        assert [label for label, _ in actual.label_probabilities] == [
            label for label, _ in expected.label_probabilities
        ]
        np.testing.assert_allclose(
            [score for _, score in actual.label_probabilities],
            [score for _, score in expected.label_probabilities],
            atol=1e-6,
        )
    assert served.batcher.messages == len(texts)
