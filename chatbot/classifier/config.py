"""Hold the model and training hyperparameters in one frozen dataclass.

The values used for training are written into the bundle, so serving reads the same ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATA_PATH = Path("data/intents.json")
DEFAULT_MODEL_PATH = Path("models/chatbot_model.h5")
LARGE_DATASET = 2000  # patterns from which ModelConfig.for_dataset picks the large model
MANY_INTENTS = 100  # a bot with this many intents covers many generic topics itself (CLINC150: 150)
ENCODERS = ("auto", "none")  # auto: the sentence encoder where it covers the bot's language; none: never
ENGINES = ("numpy", "keras")  # forward passes that serve a bundle; numpy needs no TensorFlow
MAX_SEQUENCE_LENGTH = 1024  # tokens; a message is at most a few thousand characters
# The bounds, both inclusive, of the fields that have them. A field not named here must only have its
# annotated type, so a field added later is checked at once for its type.
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "embedding_dim": (1, 4096),
    "lstm_units": (1, 4096),
    "dense_units": (0, 4096),
    "spatial_dropout": (0.0, 0.99),
    "dropout": (0.0, 0.99),
    "word_dropout": (0.0, 0.99),
    "label_smoothing": (0.0, 0.99),
    "ensemble_size": (1, 64),
    "max_length": (1, MAX_SEQUENCE_LENGTH),
    "epochs": (1, 100_000),
    "batch_size": (1, 1_000_000),
    "learning_rate": (1e-9, 10.0),
    "ema_momentum": (0.0, 0.9999),
    "patience": (0, 100_000),
    "fit_confidence": (0.0, 1.0),
    "validation_split": (0.0, 0.9),
    "min_patterns_for_validation": (1, 1_000_000),
    "threshold": (0.0, 1.0),
    "unknown_word_penalty": (0.0, 1.0),
    "deep_weight": (0.0, 1.0),
    "vector_dropout": (0.0, 0.99),
    "vector_scale": (1e-3, 1e3),
    "vector_head_c": (0.0, 1e9),
    "ngram_c": (1e-9, 1e9),
    "ngram_min_df": (1, 1_000_000),
    "off_topic_weight": (0.0, 1000.0),
}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes, training settings and the fallback threshold of one model."""

    embedding_dim: int = 32  # width of each word vector
    lstm_units: int = 32  # hidden size of the LSTM
    dense_units: int = 0  # hidden layer between the LSTM and the softmax; 0 drops it
    bidirectional: bool = False  # read the text both ways (two LSTMs, outputs concatenated)
    spatial_dropout: float = 0.0  # dropout of whole word vectors after the embedding
    dropout: float = 0.6  # dropout after the LSTM and the hidden dense layer: high, so that the softmax
    # leans on the sentence vector too, not on the LSTM's memory of the phrases (CLINC150 val)
    word_dropout: float = 0.1  # share of known words replaced by <unk> in each training batch
    label_smoothing: float = 0.0  # spreads this much of each target over the other intents
    ensemble_size: int = 1  # models trained with consecutive seeds; their probabilities are averaged
    max_length: int = 32  # longest token sequence the model reads; longer input is cut
    epochs: int = 300  # upper bound; training usually stops far sooner
    batch_size: int = 32
    learning_rate: float = 0.01
    ema_momentum: float = 0.0  # keep an average of the weights (Polyak); stop and serve on it; 0: off
    patience: int = 10  # epochs without improvement before early stopping
    fit_confidence: float = 0.9  # the final fit goes on until every pattern gets its intent this surely
    validation_split: float = 0.15  # held-out share when the data allows a stratified split
    min_patterns_for_validation: int = 5  # an intent with fewer patterns holds out one (none if it has one)
    seed: int = 1337  # seeds numpy, Python and TensorFlow for reproducible training
    threshold: float = 0.5  # below this confidence the bot answers with the fallback
    unknown_word_penalty: float = 0.0  # confidence taken off per share of unknown words, for fallback
    deep_weight: float = 0.5  # share of the Keras model in the probabilities, the n-gram model has the
    # rest; training replaces it with the share that does best on held-out data, when it has some
    encoder: str = "auto"  # the pretrained sentence encoder (chatbot.classifier.encoder): auto or none
    vector_dropout: float = 0.2  # dropout of the sentence vector before it joins the LSTM's output
    vector_scale: float = 8.0  # the unit-length sentence vector is multiplied by this, so that its
    # weights learn as fast as the LSTM's (at 1 the LSTM memorised the phrases first: bench/accuracy.py)
    vector_head_c: float = 10.0  # a second softmax reads the sentence vector alone: a logistic
    # regression with this inverse regularisation strength, fitted first and then frozen; the model
    # averages it with the joined softmax. 0: no such head
    ngram_c: float = 20.0  # inverse regularisation strength of the n-gram logistic regression
    ngram_min_df: int = 1  # n-grams in fewer training texts than this are left out
    off_topic_weight: float = 0.5  # generic off-topic queries train the fallback intent, together
    # weighing this many average intents; 0: not used
    language: str = "en"  # the bot's language (chatbot.text.languages): how its text is split and stemmed

    def __post_init__(self) -> None:
        """Refuse a value of the wrong type or out of range, wherever the config comes from.

        A bundle's config is read from a file: a threshold of "x" or a max_length of 10**9 must
        stop the load, not turn every later request into an error or a huge allocation.
        """
        for field in dataclasses.fields(self):
            check_field(field.name, field.type, getattr(self, field.name))
        if self.encoder not in ENCODERS:
            raise ValueError(f"config encoder={self.encoder!r} must be one of {', '.join(ENCODERS)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build a config from a mapping, ignoring keys this version does not know."""
        if not isinstance(values, dict):
            raise ValueError(f"the model config must be an object, not {type(values).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def for_dataset(cls, examples: int, language: str = "en", intents: int = 0) -> ModelConfig:
        """Return the defaults for a bot with this many training patterns (and intents), in this language.

        Small bots (the usual hand-written intents.json) train in seconds with the small model. From
        LARGE_DATASET patterns on, a bigger, more regularised model generalises better (tuned on
        CLINC150's train and validation splits: 150 intents, 15,000 patterns).
        """
        if examples < LARGE_DATASET:
            # The generic off-topic queries are English: for other bots they would teach the
            # fallback intent English words, not what off-topic means (bench/accuracy.py --only mtop).
            # A bot with many intents covers many generic topics itself, and the fallback intent
            # then takes its own questions (CLINC150 10/intent, val: 82.6% with, 83.6% without).
            uses_off_topic = language == "en" and intents < MANY_INTENTS
            return cls(language=language, off_topic_weight=0.5 if uses_off_topic else 0.0)
        return cls(
            language=language,
            # Beside the sentence vector, a BiLSTM of 64 units does the LSTM's part: the two of 128
            # that carried CLINC150 before the encoder took most of the 300 s training budget.
            embedding_dim=64,
            lstm_units=64,
            bidirectional=True,
            spatial_dropout=0.4,
            dropout=0.5,
            word_dropout=0.3,
            label_smoothing=0.2,
            max_length=24,
            epochs=30,
            batch_size=128,
            patience=5,
            ema_momentum=0.995,
            ensemble_size=2,  # without the sentence encoder; 4 LSTMs alone did better, but beside the
            # n-gram model 2 do as well. With the encoder, one model (chatbot.training.train).
            unknown_word_penalty=0.5,
            deep_weight=0.5,
            off_topic_weight=0.0,  # a bot this big covers many generic topics (CLINC150: weather...)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> ModelConfig:
        """Return a copy with some values overridden (``None`` values are ignored)."""
        return dataclasses.replace(
            self, **{key: value for key, value in overrides.items() if value is not None}
        )


def check_field(name: str, annotation: str, value: Any) -> None:
    """Raise ValueError unless ``value`` has the field's annotated type and lies in its range."""
    if annotation == "bool":
        valid = isinstance(value, bool)
    elif annotation == "int":
        valid = isinstance(value, int) and not isinstance(value, bool)
    elif annotation == "float":
        valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    elif annotation == "str":
        valid = isinstance(value, str)  # which strings are known is for the field's owner (language)
    else:
        valid = True  # no field of another type yet
    if not valid:
        raise ValueError(f"config {name}={value!r} must be {annotation}")
    low, high = FIELD_RANGES.get(name, (-math.inf, math.inf))
    if annotation in ("int", "float") and not low <= value <= high:
        raise ValueError(f"config {name}={value!r} must be between {low} and {high}")
