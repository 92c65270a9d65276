"""Fit the entity tagger (chatbot/classifier/tagger.py) in Keras on annotated examples.

The model is the numpy tagger's, layer for layer: a word table, a bag of hashed character n-grams
and shape flags, concatenated, read by a bidirectional LSTM, scored by a dense softmax over BIO
tags. Training is seeded; its weights are copied out into plain arrays for the bundle.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.tagger import (
    OUTSIDE,
    PAD_ID,
    PIECE_DIM,
    SHAPE_FEATURES,
    UNKNOWN_ID,
    Tagger,
    TaggerConfig,
    token_spans,
)
from chatbot.data.annotations import AnnotatedText
from chatbot.data.entities import fold
from chatbot.data.intents import Intent

log = logging.getLogger(__name__)


def has_annotations(intents: Sequence[Intent]) -> bool:
    """Say whether any pattern is annotated: only then is a tagger trained (a phrase whose only
    markup is escaped brackets holds no annotation)."""
    return any(example.annotations for intent in intents if intent.annotated for example in intent.examples())


def token_labels(example: AnnotatedText) -> tuple[list[str], list[str]]:
    """Return an example's tokens and BIO labels; a token partly inside a span is left outside it."""
    spans = token_spans(example.text)
    labels = [OUTSIDE] * len(spans)
    for annotation in example.annotations:
        inside = [
            index
            for index, (start, end) in enumerate(spans)
            if start >= annotation.start and end <= annotation.end
        ]
        for position, index in enumerate(inside):
            labels[index] = f"{'B' if position == 0 else 'I'}-{annotation.entity}"
    return [example.text[start:end] for start, end in spans], labels


def fit_tagger(
    examples: Sequence[AnnotatedText],
    config: TaggerConfig | None = None,
    intents: Sequence[str] = (),
) -> Tagger:
    """Train a tagger on annotated examples and return it ready for numpy serving."""
    import keras  # here, not at import: only training needs Keras

    config = config or TaggerConfig()
    keras.utils.set_random_seed(config.seed)
    labelled = [token_labels(example) for example in examples if example.text.strip()]
    entities = tuple(
        sorted({annotation.entity for example in examples for annotation in example.annotations})
    )
    counts = Counter(token.casefold() for tokens, _ in labelled for token in tokens)
    words = tuple(sorted(counts, key=lambda word: (-counts[word], word)))
    draft = Tagger(config, words, entities, {}, {})
    tag_index = {tag: index for index, tag in enumerate(draft.tags)}
    intent_labels = sorted(set(intents))
    with_intents = bool(intents) and config.intent_weight > 0
    model = build_tagger_model(
        len(words) + 2, len(draft.tags), config, len(intent_labels) if with_intents else 0
    )
    intent_ids = np.array([intent_labels.index(intent) for intent in intents]) if with_intents else None
    # Batches of similar length, each padded to its own longest: far fewer LSTM steps than padding
    # every sentence to the longest of all, and a loss that averages over tokens, not padding.
    order = np.argsort([len(tokens) for tokens, _ in labelled], kind="stable")
    batches = []
    for first in range(0, len(order), config.batch_size):
        rows = order[first : first + config.batch_size]
        inputs, targets, weights = _arrays(draft, [labelled[row] for row in rows], tag_index)
        weights *= weights.size / max(weights.sum(), 1.0)
        if intent_ids is not None:
            targets = {"tags": targets, "intent": intent_ids[rows]}  # type: ignore[assignment]
            weights = {"tags": weights, "intent": np.ones(len(rows), dtype=np.float32)}  # type: ignore[assignment]
        batches.append((inputs, targets, weights))
    rng = np.random.default_rng(config.seed)
    for epoch in range(config.epochs):
        losses = []
        for index in rng.permutation(len(batches)):
            inputs, targets, weights = batches[index]
            # Word dropout: some known words are shown as unknown, so the unknown row learns something.
            dropped = (rng.random(inputs["words"].shape) < config.word_dropout) & (inputs["words"] > PAD_ID)
            shown = {**inputs, "words": np.where(dropped, UNKNOWN_ID, inputs["words"])}
            result = model.train_on_batch(shown, targets, sample_weight=weights)
            losses.append(float(np.ravel(result)[0]))
        log.debug("tagger epoch %d: loss %.4f", epoch + 1, float(np.mean(losses)))
    synonyms = {
        fold(example.text[annotation.start : annotation.end]): annotation.value
        for example in examples
        for annotation in example.annotations
        if annotation.value is not None
    }
    exported = export_weights(model, config)
    if config.transition_weight > 0:
        exported["transitions"] = config.transition_weight * _transition_scores(labelled, draft.tags)
    if with_intents and config.intent_prior > 0:
        kernel, bias = model.get_layer("intent").get_weights()
        exported["intent_kernel"], exported["intent_bias"] = (
            kernel.astype(np.float32),
            bias.astype(np.float32),
        )
        exported["intent_types"] = _intent_types(examples, intents, intent_labels, draft.tags)
    return Tagger(config, words, entities, exported, synonyms, tuple(intent_labels) if with_intents else ())


def _intent_types(
    examples: Sequence[AnnotatedText], intents: Sequence[str], intent_labels: list[str], tags: tuple[str, ...]
) -> np.ndarray:
    """Return (intents, tags): 1 where the intent's phrases hold the tag's entity type (O always)."""
    held: dict[str, set[str]] = {label: set() for label in intent_labels}
    for example, intent in zip(examples, intents, strict=True):
        held[intent] |= {annotation.entity for annotation in example.annotations}
    return np.array(
        [[tag == OUTSIDE or tag[2:] in held[label] for tag in tags] for label in intent_labels],
        dtype=np.float32,
    )


def _transition_scores(labelled: list[tuple[list[str], list[str]]], tags: tuple[str, ...]) -> np.ndarray:
    """Return log P(next tag | previous tag) from the training labels, smoothed; the start row last."""
    index = {tag: position for position, tag in enumerate(tags)}
    counts = np.ones((len(tags) + 1, len(tags)), dtype=np.float64)
    for _, labels in labelled:
        previous = len(tags)
        for label in labels:
            counts[previous, index[label]] += 1
            previous = index[label]
    return np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)


def build_tagger_model(
    vocabulary_size: int, tag_count: int, config: TaggerConfig, intent_count: int = 0
):  # returns a keras.Model
    """Return the Keras tagger: word + n-gram bag + shape -> BiLSTM -> softmax over tags."""
    import keras
    from keras import layers, ops

    words = keras.Input(shape=(None,), dtype="int32", name="words")
    subwords = keras.Input(shape=(None, None), dtype="int32", name="subwords")
    shapes = keras.Input(
        shape=(None, SHAPE_FEATURES + (PIECE_DIM if config.pretrained_pieces else 0)), name="shapes"
    )
    mask = ops.not_equal(words, PAD_ID)
    word_vectors = layers.Embedding(vocabulary_size, config.word_dim, name="word_table")(words)
    gram_vectors = layers.Embedding(config.subword_buckets, config.subword_dim, name="subword_table")(
        subwords
    )
    gram_mask = ops.expand_dims(ops.cast(ops.not_equal(subwords, PAD_ID), "float32"), -1)
    # The mean of the token's n-gram vectors (padding rows masked out, as numpy serving does).
    gram_mean = ops.sum(gram_vectors * gram_mask, axis=2) / ops.maximum(ops.sum(gram_mask, axis=2), 1.0)
    parts = [word_vectors, gram_mean, shapes[:, :, :SHAPE_FEATURES]]
    if config.pretrained_pieces:
        parts.append(
            layers.Dense(config.piece_dim, activation="tanh", name="pieces")(shapes[:, :, SHAPE_FEATURES:])
        )
    features = layers.Concatenate()(parts)
    features = layers.Dropout(config.dropout)(features)
    hidden = layers.Bidirectional(layers.LSTM(config.units, return_sequences=True), name="bilstm")(
        features, mask=mask
    )
    hidden = layers.Dropout(config.dropout)(hidden)
    outputs = layers.Dense(tag_count, activation="softmax", name="tags")(hidden)
    if not intent_count:
        model = keras.Model([words, subwords, shapes], outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=5.0),
            loss="sparse_categorical_crossentropy",
            weighted_metrics=[],
        )
        return model
    # The intent head only shapes what the LSTM learns (entity types follow the intent); not served.
    pooled = layers.GlobalMaxPooling1D()(
        hidden + ops.expand_dims((ops.cast(mask, "float32") - 1.0) * 1e4, -1)
    )
    intent = layers.Dense(intent_count, activation="softmax", name="intent")(pooled)
    model = keras.Model([words, subwords, shapes], {"tags": outputs, "intent": intent})
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=5.0),
        loss={"tags": "sparse_categorical_crossentropy", "intent": "sparse_categorical_crossentropy"},
        loss_weights={"tags": 1.0, "intent": config.intent_weight},
        weighted_metrics={"tags": [], "intent": []},
    )
    return model


def export_weights(
    model, config: TaggerConfig | None = None
) -> dict[str, np.ndarray]:  # model: a keras.Model
    """Copy the model's weights out under the names the numpy tagger reads."""
    word_table = model.get_layer("word_table").get_weights()[0].astype(np.float32)
    subword_table = model.get_layer("subword_table").get_weights()[0].astype(np.float32)
    subword_table[PAD_ID] = 0.0  # padding adds nothing in numpy's sum
    forward = model.get_layer("bilstm").forward_layer.get_weights()
    backward = model.get_layer("bilstm").backward_layer.get_weights()
    dense_kernel, dense_bias = model.get_layer("tags").get_weights()
    return {
        "word_table": word_table,
        "subword_table": subword_table,
        **{
            f"forward_{name}": values.astype(np.float32)
            for name, values in zip(LSTM_NAMES, forward, strict=True)
        },
        **{
            f"backward_{name}": values.astype(np.float32)
            for name, values in zip(LSTM_NAMES, backward, strict=True)
        },
        "dense_kernel": dense_kernel.astype(np.float32),
        "dense_bias": dense_bias.astype(np.float32),
        **(_piece_weights(model) if config is not None and config.pretrained_pieces else {}),
    }


def _piece_weights(model) -> dict[str, np.ndarray]:  # model: a keras.Model
    kernel, bias = model.get_layer("pieces").get_weights()
    return {"piece_kernel": kernel.astype(np.float32), "piece_bias": bias.astype(np.float32)}


LSTM_NAMES = ("kernel", "recurrent", "bias")


def _arrays(
    draft: Tagger, labelled: list[tuple[list[str], list[str]]], tag_index: dict[str, int]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Return padded inputs, targets and sample weights (1 for tokens, 0 for padding)."""
    length = max((len(tokens) for tokens, _ in labelled), default=1) or 1
    width = draft.config.max_subwords
    words = np.zeros((len(labelled), length), dtype=np.int32)
    subwords = np.zeros((len(labelled), length, width), dtype=np.int32)
    shapes = np.zeros(
        (len(labelled), length, SHAPE_FEATURES + (PIECE_DIM if draft.config.pretrained_pieces else 0)),
        dtype=np.float32,
    )
    targets = np.zeros((len(labelled), length), dtype=np.int32)
    weights = np.zeros((len(labelled), length), dtype=np.float32)
    for row, (tokens, labels) in enumerate(labelled):
        if not tokens:
            continue
        word_ids, gram_ids, flags = draft.features(tokens)
        count = len(tokens)
        words[row, :count] = word_ids
        subwords[row, :count, : gram_ids.shape[1]] = gram_ids[:, :width]
        shapes[row, :count] = flags
        targets[row, :count] = [tag_index.get(label, 0) for label in labels]
        weights[row, :count] = 1.0
    return {"words": words, "subwords": subwords, "shapes": shapes}, targets, weights


def with_tagger(bundle: Bundle, intents: Sequence[Intent]) -> Bundle:
    """Return the bundle with an entity tagger fitted on the intents' annotations (unchanged without any)."""
    if not has_annotations(intents):
        return bundle
    examples = [(intent.tag, example) for intent in intents for example in intent.examples()]
    tagger = fit_tagger([example for _, example in examples], intents=[tag for tag, _ in examples])
    log.info("entity tagger: %d entity types, %d words", len(tagger.entities), len(tagger.words))
    return dataclasses.replace(bundle, tagger=tagger)
