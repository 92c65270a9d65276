"""The yardsticks every accuracy figure is shown beside, fitted in the same run on the same data:
TF-IDF word and character n-grams -> logistic regression, in about twenty lines of scikit-learn,
and a logistic regression on the sentence encoder's vectors alone (what the pretrained encoder
knows without the bot's own model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fit_baseline(texts: Sequence[str], tags: Sequence[str]):  # -> sklearn Pipeline
    """Fit word 1-2-grams and character 2-5-grams (sublinear TF-IDF) into a logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    return make_pipeline(features, LogisticRegression(C=20, max_iter=2000)).fit(list(texts), list(tags))


def baseline_accuracy(model, texts: Sequence[str], tags: Sequence[str]) -> float:
    """Return the baseline's top-1 accuracy on labelled texts."""
    return float(np.mean(model.predict(list(texts)) == np.asarray(tags)))


class EncoderBaseline:
    """Logistic regression on the pretrained sentence encoder's vectors of the raw texts."""

    def __init__(self, texts: Sequence[str], tags: Sequence[str], c: float = 10.0) -> None:
        from sklearn.linear_model import LogisticRegression

        from chatbot.classifier.encoder import shared_encoder

        self.encoder = shared_encoder()
        self.model = LogisticRegression(C=c, max_iter=2000).fit(self.encoder.encode(list(texts)), list(tags))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Return the best tag of each text."""
        return self.model.predict(self.encoder.encode(list(texts)))


def fit_encoder_baseline(texts: Sequence[str], tags: Sequence[str]) -> EncoderBaseline:
    """Fit logistic regression on the encoder's vectors (C=10: the issue's experiment, on validation)."""
    return EncoderBaseline(texts, tags)
