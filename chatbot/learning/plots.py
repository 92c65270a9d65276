"""Draw the evaluation and training figures as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never look for a display

import matplotlib.pyplot as plt
import numpy as np


def training_curves(history: dict[str, list[float]], path: Path) -> Path:
    """Plot loss and accuracy per epoch, for training and validation when present."""
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name, values in history.items():
        axis = loss_axis if "loss" in name else accuracy_axis
        axis.plot(range(1, len(values) + 1), values, label=name)
    for axis, title in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.legend()
        axis.grid(alpha=0.3)
    return _save(figure, path)


def confusion_matrix(matrix: dict[str, list], path: Path) -> Path:
    """Plot a confusion matrix: ``labels`` and ``counts`` (rows expected), as ``evaluate`` reports it."""
    labels = matrix["labels"]
    counts = np.array(matrix["counts"], dtype=int).reshape(len(labels), len(labels))
    size = max(6, 0.45 * len(labels))
    figure, axis = plt.subplots(figsize=(size + 2, size))
    image = axis.imshow(counts, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("expected")
    axis.set_title(f"Confusion among the {len(labels)} most confused intents")
    for (row, column), count in np.ndenumerate(counts):
        if count:
            axis.text(column, row, str(count), ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axis, fraction=0.046)
    return _save(figure, path)


def confidence_histogram(confidences: dict[str, Sequence[float]], threshold: float, path: Path) -> Path:
    """Plot how confident the model is on correct, wrong and out-of-scope queries."""
    figure, axis = plt.subplots(figsize=(8, 4))
    bins = np.linspace(0.0, 1.0, 41)
    for name, values in confidences.items():
        if len(values):
            axis.hist(values, bins=bins, alpha=0.55, label=f"{name} ({len(values)})")
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axis.set_xlabel("confidence of the top intent")
    axis.set_ylabel("queries")
    axis.set_yscale("log")
    axis.legend()
    return _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
