"""The figures are PNG files."""

from __future__ import annotations

from chatbot.learning import plots


def test_training_curves_draw_a_png(tmp_path) -> None:
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.9], "val_accuracy": [0.4, 0.8]}
    path = plots.training_curves(history, tmp_path / "curves.png")
    assert path.read_bytes().startswith(b"\x89PNG")
