"""Training: splits, word dropout, and a reproducible model that knows its own patterns."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.classifier.config import ModelConfig
from chatbot.classifier.ranker import Ranker
from chatbot.classifier.vocab import UNK_ID


def no_vectors(rows: int) -> np.ndarray:
    """Return the sentence vectors of rows for a model that reads none."""
    return np.zeros((rows, 0), dtype=np.float32)


def test_stratified_split_holds_out_every_label() -> None:
    from chatbot.training.train import stratified_split

    labels = np.array([0] * 10 + [1] * 5 + [2] * 20)
    train_rows, validation_rows = stratified_split(labels, 0.2, seed=1)
    assert sorted(train_rows + validation_rows) == list(range(len(labels)))
    assert np.bincount(labels[validation_rows]).tolist() == [2, 1, 4]
    assert stratified_split(labels, 0.2, seed=1) == (train_rows, validation_rows)


def test_can_split_needs_enough_patterns_per_label() -> None:
    from chatbot.training.train import can_split

    config = ModelConfig(min_patterns_for_validation=5)
    assert can_split(np.array([0] * 5 + [1] * 6), config)
    assert not can_split(np.array([0] * 4 + [1] * 6), config)  # one phrase each: too few held out
    # Small intents hold out one phrase each when four fifths of them have two and they give 20.
    assert can_split(np.repeat(np.arange(25), [1] * 5 + [2] * 20), config)
    assert not can_split(np.repeat(np.arange(25), [1] * 6 + [2] * 19), config)
    assert not can_split(np.repeat(np.arange(19), 2), config)
    assert not can_split(np.array([0] * 9), config)
    assert not can_split(np.array([0] * 9 + [1] * 9), ModelConfig(validation_split=0))


def test_small_intents_hold_out_one_phrase_and_a_single_phrase_stays() -> None:
    from chatbot.training.train import stratified_split

    labels = np.array([0] * 10 + [1] * 3 + [2] * 2 + [3])
    train_rows, validation_rows = stratified_split(labels, 0.2, seed=1, min_patterns=5)
    assert sorted(train_rows + validation_rows) == list(range(len(labels)))
    assert np.bincount(labels[validation_rows], minlength=4).tolist() == [2, 1, 1, 0]


def test_word_dropout_replaces_only_known_words() -> None:
    from chatbot.training.fit import WordDropoutBatches

    x = np.tile(np.array([[5, 6, 7, 1, 0, 0]], dtype=np.int32), (400, 1))
    batches = WordDropoutBatches(
        x,
        no_vectors(400),
        np.zeros((400, 1), dtype=np.float32),
        np.ones(400),
        batch_size=400,
        rate=0.25,
        seed=0,
    )
    dropped, _, _ = next(batches.epoch())
    assert (dropped[:, 4:] == 0).all() and (dropped[:, 3] == UNK_ID).all()
    share = (dropped[:, :3] == UNK_ID).mean()
    assert 0.2 < share < 0.3
    assert (x[:, :3] == [5, 6, 7]).all()  # the source array is untouched


@pytest.mark.slow
def test_tiny_bot_knows_every_pattern(tiny_bundle, tiny_intents) -> None:
    engine = Ranker.from_bundle(tiny_bundle)
    for intent in tiny_intents:
        for pattern in intent.patterns:
            assert engine.rank(pattern).top[0] == intent.tag, pattern
    assert tiny_bundle.metrics["train_accuracy"] == 1.0
    assert tiny_bundle.config.max_length == 4  # the longest pattern, within the configured bound


@pytest.mark.slow
def test_training_is_reproducible(tiny_bundle, tiny_intents) -> None:
    from chatbot.training.train import train
    from tests.support import TINY_CONFIG

    assert train(tiny_intents, TINY_CONFIG).fingerprint == tiny_bundle.fingerprint


@pytest.mark.slow
def test_every_bot_trains_its_lstm_beside_the_sentence_vector(tiny_bundle) -> None:
    from chatbot.classifier.encoder import shared_encoder

    classes = {layer["name"]: layer["class_name"] for layer in tiny_bundle.layers()}
    assert classes["lstm"] == "LSTM" and classes["joined"] == "Concatenate"
    assert classes["sentence_vector"] == "InputLayer"
    # The softmax on the vector alone (a logistic regression) is averaged with the joined one.
    assert classes["vector_intent"] == "Dense" and classes["intent_average"] == "Average"
    assert tiny_bundle.encoder == shared_encoder().identity
    assert tiny_bundle.config.deep_weight == 0.5  # too few phrases to hold some out


HINDI_INTENTS = [
    ("greeting", ["नमस्ते", "नमस्कार", "हैलो", "सुप्रभात", "नमस्ते दोस्त", "हाय"]),
    ("goodbye", ["अलविदा", "फिर मिलेंगे", "बाद में मिलते हैं", "शुभ रात्रि", "चलता हूँ", "बाय"]),
    (
        "weather",
        ["आज मौसम कैसा है", "क्या बारिश होगी", "कल का मौसम", "बाहर गर्मी है क्या", "तापमान क्या है", "मौसम बताओ"],
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("language", "encoder", "reason"),
    [("hi", "auto", "it does not cover language 'hi'"), ("en", "none", "encoder: none")],
)
def test_a_bot_trains_without_the_encoder_where_it_does_not_cover_the_language_or_is_opted_out(
    language: str, encoder: str, reason: str
) -> None:
    from chatbot.data.intents import Intent
    from chatbot.training.train import SHARES, encoder_summary, train

    intents = [Intent(tag, tuple(patterns), ("ok",)) for tag, patterns in HINDI_INTENTS]
    config = ModelConfig(language=language, encoder=encoder, epochs=60, off_topic_weight=0.0, seed=3)
    bundle = train(intents, config)
    assert bundle.encoder is None
    assert "sentence_vector" not in {layer["name"] for layer in bundle.layers()}
    assert "lstm" in {layer["name"] for layer in bundle.layers()}  # the LSTM is trained all the same
    assert encoder_summary(bundle) == f"without the sentence encoder ({reason})"
    assert bundle.config.deep_weight in SHARES and bundle.metrics["deep_weight"] == bundle.config.deep_weight
    engine = Ranker.from_bundle(bundle)
    assert engine.encoder is None
    for tag, patterns in HINDI_INTENTS:
        assert [engine.rank(pattern).top[0] for pattern in patterns] == [tag] * len(patterns)


@pytest.mark.slow
def test_the_share_is_chosen_on_the_validation_set(tiny_intents) -> None:
    from chatbot.training.train import SHARES, train
    from tests.support import TINY_CONFIG

    bundle = train(tiny_intents, TINY_CONFIG.replace(epochs=20, patience=5), validation=tiny_intents)
    assert bundle.config.deep_weight == bundle.metrics["deep_weight"] and bundle.config.deep_weight in SHARES
    assert bundle.metrics["held_out_accuracy_mixed"] >= max(
        bundle.metrics["held_out_accuracy_keras"], bundle.metrics["held_out_accuracy_ngrams"]
    )


@pytest.mark.slow
def test_large_ensemble_trains_with_a_validation_set_and_serves_in_numpy(tiny_intents, tmp_path) -> None:
    from chatbot.classifier.bundle import Bundle
    from chatbot.training.train import train

    # Without the encoder, a large bot is an ensemble of two BiLSTMs; with it, one model.
    config = ModelConfig.for_dataset(10_000).replace(
        embedding_dim=8, lstm_units=8, epochs=3, ensemble_size=2, encoder="none"
    )
    bundle = Bundle.load(train(tiny_intents, config, validation=tiny_intents).save(tmp_path / "large.h5"))
    classes = [layer["class_name"] for layer in bundle.layers()]
    assert classes.count("Bidirectional") == 2
    assert {"SpatialDropout1D", "Average"} <= set(classes)
    assert 1 <= bundle.metrics["epochs"] <= 3
    assert set(bundle.history) >= {"loss", "val_loss", "accuracy", "val_accuracy"}
    texts = ["hello", "where is my order", "zzz"]
    numpy_rankings = Ranker.from_bundle(bundle).rank_batch(texts)
    keras_rankings = Ranker.from_bundle(bundle, "keras").rank_batch(texts)
    for ours, theirs in zip(numpy_rankings, keras_rankings, strict=True):
        assert np.allclose(
            [s for _, s in ours.label_probabilities], [s for _, s in theirs.label_probabilities], atol=1e-5
        )


@pytest.mark.slow
def test_weight_averaging_serves_the_averaged_weights_that_scored_best(tiny_intents) -> None:
    import keras

    from chatbot.classifier.encoder import shared_encoder
    from chatbot.classifier.model import load_keras_model
    from chatbot.training.fit import one_hot
    from chatbot.training.train import make_examples, train
    from tests.support import TINY_CONFIG

    # Without the softmax on the vector, fitted after the Keras fit: the model is the one Keras scored.
    config = TINY_CONFIG.replace(
        ema_momentum=0.9, epochs=30, patience=5, label_smoothing=0.1, vector_head_c=0.0
    )
    bundle = train(tiny_intents, config, validation=tiny_intents)
    best = int(np.argmax(bundle.history["val_accuracy"]))  # the epoch early stopping kept
    examples = make_examples(tiny_intents, bundle.labels).with_vectors(shared_encoder())
    x = examples.inputs(bundle.config.max_length, bundle.vocabulary)
    y = one_hot(examples.label_ids, len(bundle.labels))
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(y, load_keras_model(bundle)(x))
    # The loss is a continuous function of the weights: the raw weights would not give it.
    assert float(loss) == pytest.approx(bundle.history["val_loss"][best], rel=1e-4)


@pytest.mark.slow
def test_refit_with_label_smoothing_stops_once_patterns_fit(tiny_intents) -> None:
    from chatbot.training.train import train
    from tests.support import TINY_CONFIG

    # Smoothed targets never teach a confidence of 0.9: the bar is relative to what they teach.
    config = TINY_CONFIG.replace(label_smoothing=0.3, epochs=150)
    bundle = train(tiny_intents, config)
    assert bundle.metrics["epochs"] < config.epochs
    assert bundle.metrics["train_accuracy"] == 1.0


def test_the_vector_regression_is_made_as_sure_of_the_training_texts_as_the_joined_softmax() -> None:
    from chatbot.training.fit import matching_sharpness

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 6))
    label_ids = logits.argmax(axis=1)
    for confidence in (0.7, 0.95):
        factor = matching_sharpness(logits, label_ids, confidence)
        scaled = np.exp(logits * factor)
        mean = np.mean(scaled[np.arange(200), label_ids] / scaled.sum(axis=1))
        assert factor > 1.0 and mean == pytest.approx(confidence, abs=1e-3)
    # Already that sure: left as it is, never made less sure.
    assert matching_sharpness(logits * 50, label_ids, 0.7) == 1.0


def test_stop_when_fitted_keeps_the_weights_it_checked() -> None:
    import keras

    from chatbot.training.fit import StopWhenFitted

    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(2, activation="softmax")])
    model.set_weights([np.array([[0.0, 0.0]], dtype=np.float32), np.array([5.0, -5.0], dtype=np.float32)])
    checked = [w.copy() for w in model.get_weights()]
    callback = StopWhenFitted(np.zeros((3, 1), dtype=np.float32), np.zeros(3, dtype=int), 1, 0.9)
    callback.set_model(model)
    callback.on_epoch_end(0)
    assert model.stop_training
    model.set_weights([np.ones_like(w) for w in checked])  # what Keras does with averaged weights
    callback.on_train_end()
    assert all((a == b).all() for a, b in zip(model.get_weights(), checked, strict=True))


def test_batches_group_similar_lengths_and_cut_padding() -> None:
    from chatbot.training.fit import WordDropoutBatches

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 20, size=1000)
    x = np.zeros((1000, 20), dtype=np.int32)
    for row, length in enumerate(lengths):
        x[row, :length] = 5
    y = np.arange(1000)
    batches = WordDropoutBatches(x, no_vectors(1000), y, np.ones(1000), batch_size=32, rate=0.0, seed=1)
    seen, widths, spreads = [], [], []
    for batch_x, batch_y, _ in batches.epoch():
        seen += batch_y.tolist()
        widths.append(batch_x.shape[1])
        assert batch_x.shape[1] == lengths[batch_y].max()  # cut to the longest row
        spreads.append(lengths[batch_y].max() - lengths[batch_y].min())
    assert sorted(seen) == list(range(1000))  # every row once per epoch
    assert np.mean(spreads) < 3  # rows of similar length share a batch
    assert np.mean(widths) < 20


def test_dataset_declares_varying_widths() -> None:
    from chatbot.training.fit import WordDropoutBatches

    # The first batches all have width 3 and a later one width 5: a guessed signature would break.
    x = np.zeros((40, 5), dtype=np.int32)
    x[:, :3] = 4
    x[-4:, :5] = 4
    y = np.eye(2, dtype=np.float32)[np.zeros(40, dtype=int)]
    batches = WordDropoutBatches(
        x, no_vectors(40), y, np.ones(40, dtype=np.float32), batch_size=4, rate=0.0, seed=0
    )
    widths = {batch_x.shape[1] for batch_x, _, _ in batches.dataset().as_numpy_iterator()}
    assert widths == {3, 5}
