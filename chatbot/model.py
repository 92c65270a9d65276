"""Define the intent classifier: Embedding -> LSTM -> Dense -> softmax."""

from __future__ import annotations

import keras
from keras import layers

from chatbot.config import ModelConfig


def build_model(vocabulary_size: int, num_labels: int, config: ModelConfig) -> keras.Model:
    """Build and compile the classifier for token-id sequences padded with zeros."""
    token_ids = keras.Input(shape=(config.max_length,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True, name="embedding")(token_ids)
    x = layers.LSTM(config.lstm_units, name="lstm")(x)
    x = layers.Dropout(config.dropout, name="lstm_dropout")(x)
    if config.dense_units:
        x = layers.Dense(config.dense_units, activation="relu", name="hidden")(x)
        x = layers.Dropout(config.dropout, name="hidden_dropout")(x)
    intent = layers.Dense(num_labels, activation="softmax", name="intent")(x)
    model = keras.Model(token_ids, intent, name="intent_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
