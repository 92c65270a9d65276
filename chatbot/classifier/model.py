"""Define the intent classifier: an LSTM over the bot's own words beside a pretrained sentence vector.

    token_ids -> Embedding -> LSTM -> Dropout --+
                                                +-> Concatenate -> Dense softmax --+
    sentence_vector (512, the encoder's) -> Rescaling -> Dropout --+                  +-> Average
    sentence_vector -> Dense softmax (a logistic regression, fitted apart) -----------+

The LSTM learns the bot's own words (names, codes, its jargon); the sentence vector brings what
the phrases do not contain (synonyms, paraphrases, other languages). The vector's own softmax
(``vector_head_c``), a logistic regression fitted apart and averaged in after training, keeps what
the vectors alone know: trained together, the LSTM fits a small bot's phrases first and the joined
softmax leans on it (CLINC150, 10 phrases per intent: the joined softmax alone 81% of val, the
regression 84%). A bot whose language the
encoder does not cover, or trained with ``encoder: none``, has the LSTM alone before the softmax.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.config import ModelConfig


def build_model(
    vocabulary_size: int, num_labels: int, config: ModelConfig, vector_dim: int = 0
) -> keras.Model:
    """Build and compile the classifier for token-id sequences padded with zeros, and sentence
    vectors of ``vector_dim`` values (0: no sentence vector input)."""
    # Any length: training batches are cut to their longest row; serving pads to max_length.
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True, name="embedding")(token_ids)
    if config.spatial_dropout:
        x = layers.SpatialDropout1D(config.spatial_dropout, name="embedding_dropout")(x)
    lstm = layers.LSTM(config.lstm_units, name="lstm")
    x = layers.Bidirectional(lstm, name="bilstm")(x) if config.bidirectional else lstm(x)
    x = layers.Dropout(config.dropout, name="lstm_dropout")(x)
    inputs = [token_ids]
    if vector_dim:
        sentence_vector = keras.Input(shape=(vector_dim,), dtype="float32", name="sentence_vector")
        vector = layers.Rescaling(config.vector_scale, name="vector_scale")(sentence_vector)
        vector = layers.Dropout(config.vector_dropout, name="vector_dropout")(vector)
        x = layers.Concatenate(name="joined")([x, vector])
        inputs.append(sentence_vector)
    if config.dense_units:
        x = layers.Dense(config.dense_units, activation="relu", name="hidden")(x)
        x = layers.Dropout(config.dropout, name="hidden_dropout")(x)
    intent = layers.Dense(num_labels, activation="softmax", name="intent")(x)
    model = keras.Model(inputs if vector_dim else token_ids, intent, name="intent_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(
            config.learning_rate, use_ema=config.ema_momentum > 0, ema_momentum=config.ema_momentum or 0.99
        ),
        # One-hot targets, so that label smoothing can spread them.
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def with_vector_head(model: keras.Model, kernel: np.ndarray, bias: np.ndarray) -> keras.Model:
    """Return the trained model with a softmax on the sentence vector alone (a logistic regression's
    ``kernel`` and ``bias``) averaged with its own softmax: the model that is saved and served."""
    token_ids, sentence_vector = model.inputs
    vector_intent = layers.Dense(kernel.shape[1], activation="softmax", name="vector_intent")
    averaged = layers.Average(name="intent_average")([vector_intent(sentence_vector), model.outputs[0]])
    vector_intent.set_weights([kernel, bias])
    return keras.Model([token_ids, sentence_vector], averaged, name="intent_classifier")


def load_keras_model(bundle: Bundle) -> keras.Model:
    """Rebuild a bundle's model in Keras with its trained weights."""
    model = keras.models.model_from_json(json.dumps(bundle.architecture))
    for layer in model.layers:
        if bundle.weights.get(layer.name):
            layer.set_weights(list(bundle.weights[layer.name].values()))
    return model


def keras_forward(bundle: Bundle) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    """Return the bundle's forward pass as a compiled TensorFlow function (``CHATBOT_ENGINE=keras``)."""
    model = load_keras_model(bundle)
    call = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

    def forward(token_ids: np.ndarray, sentence_vectors: np.ndarray | None = None) -> np.ndarray:
        if len(model.inputs) == 1:
            return np.asarray(call(tf.constant(token_ids)))
        return np.asarray(call([tf.constant(token_ids), tf.constant(sentence_vectors)]))

    return forward


def average_models(members: Sequence[keras.Model]) -> keras.Model:
    """Join trained models into one that averages their probabilities: an ensemble in one bundle.

    Each member's layers are copied under a ``member<i>_`` prefix with their trained weights, so
    the result is a plain functional model that Keras and the numpy engine both read.
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    outputs = []
    for index, member in enumerate(members):
        x = token_ids
        for layer in member.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            copy = layer.__class__.from_config({**layer.get_config(), "name": f"member{index}_{layer.name}"})
            x = copy(x)
            copy.set_weights(layer.get_weights())
        outputs.append(x)
    averaged = layers.Average(name="average")(outputs)
    return keras.Model(token_ids, averaged, name="intent_ensemble")
