"""The yardstick every accuracy figure is shown beside: TF-IDF word and character n-grams -> logistic
regression, in about twenty lines of scikit-learn, fitted in the same run on the same data."""

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
