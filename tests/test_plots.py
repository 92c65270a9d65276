"""The figures: PNG files of the expected size that show the data they are given, figures closed."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np

from chatbot.learning import plots

DPI = 110  # plots._save's resolution: a figure of w x h inches is w*110 x h*110 pixels


def pixels(path: Path) -> np.ndarray:
    """Return the PNG's pixels, RGBA in 0..1, rows first."""
    return matplotlib.image.imread(path)


def test_training_curves_draw_the_history(tmp_path) -> None:
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.9], "val_accuracy": [0.4, 0.8]}
    curves = pixels(plots.training_curves(history, tmp_path / "curves.png"))
    flipped = {name: values[::-1] for name, values in history.items()}
    assert curves.shape == (4 * DPI, 10 * DPI, 4)
    assert not np.array_equal(curves, pixels(plots.training_curves(flipped, tmp_path / "flipped.png")))
    assert plt.get_fignums() == []  # every figure closed: a long evaluation does not grow


def test_confusion_matrix_grows_with_the_labels_and_shows_the_counts(tmp_path) -> None:
    small = {"labels": ["a", "b"], "counts": [[9, 0], [1, 5]]}
    labels = [f"intent_{index}" for index in range(20)]
    large = {"labels": labels, "counts": np.eye(20, dtype=int).tolist()}
    small_image = pixels(plots.confusion_matrix(small, tmp_path / "small.png"))
    large_image = pixels(plots.confusion_matrix(large, tmp_path / "large.png"))
    assert small_image.shape == (6 * DPI, 8 * DPI, 4)
    assert large_image.shape == (9 * DPI, 11 * DPI, 4)
    empty = {"labels": ["a", "b"], "counts": [[0, 0], [0, 0]]}
    assert not np.array_equal(small_image, pixels(plots.confusion_matrix(empty, tmp_path / "empty.png")))
    assert len(np.unique(small_image.reshape(-1, 4), axis=0)) > 50  # shades and text, not a blank


def test_confidence_histogram_marks_the_threshold_and_skips_empty_series(tmp_path) -> None:
    confidences = {"correct": [0.9, 0.95, 0.8], "wrong": [0.4], "out_of_scope": []}
    low = pixels(plots.confidence_histogram(confidences, 0.2, tmp_path / "low.png"))
    high = pixels(plots.confidence_histogram(confidences, 0.7, tmp_path / "high.png"))
    assert low.shape == (4 * DPI, 8 * DPI, 4)
    assert not np.array_equal(low, high)  # the threshold line moved
