"""Fit a multinomial logistic regression and lay out its weights over every label of the bot.

Both the n-gram model and the Keras model's softmax on the sentence vector are such regressions;
scikit-learn fits them (imported here: serving never needs it), on the labels present only.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fit_logistic_regression(
    features: Any,  # (texts, features): a numpy array or a scipy sparse matrix
    label_ids: np.ndarray,
    sample_weight: np.ndarray,
    num_labels: int,
    c: float,
    max_iter: int,
    absent_intercept: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (features, num_labels) kernel and (num_labels,) bias of the regression.

    A label with no example gets a zero kernel and ``absent_intercept``; with one label present
    there is nothing to tell apart, and every text is that label.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    present = np.unique(label_ids)
    coef = np.zeros((features.shape[1], num_labels), np.float32)
    intercept = np.full(num_labels, absent_intercept, np.float32)
    intercept[present] = 0.0
    if len(present) < 2:
        return coef, intercept
    # One thread: BLAS and OpenMP threads only wait on each other for a problem this size (a
    # 300-phrase bot fitted 17 times faster on a busy 2-core machine).
    with threadpool_limits(limits=1):
        regression = LogisticRegression(C=c, max_iter=max_iter).fit(
            features, label_ids, sample_weight=sample_weight
        )
    if len(present) == 2:  # scikit-learn fits one logit for two classes: the second's against the first
        coef[:, present[1]], intercept[present[1]] = regression.coef_[0], regression.intercept_[0]
    else:
        coef[:, present], intercept[present] = regression.coef_.T, regression.intercept_
    return coef, intercept
