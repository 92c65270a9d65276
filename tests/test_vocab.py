"""Vocabulary: sorted and deterministic, 0 is padding and 1 is unknown."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.classifier.vocab import PAD_ID, UNK_ID, Vocabulary, build_vocabulary


def test_build_vocabulary_is_sorted_whatever_the_order() -> None:
    first = build_vocabulary([["b", "a"], ["c", "a"]])
    second = build_vocabulary([["c"], ["a", "b"]])
    assert first == second
    assert first.tokens == ("<pad>", "<unk>", "a", "b", "c")


def test_encode_pads_truncates_and_marks_unknown() -> None:
    vocabulary = build_vocabulary([["hello", "world"]])
    assert vocabulary.encode(["world", "new", "hello"], 5).tolist() == [3, UNK_ID, 2, PAD_ID, PAD_ID]
    assert vocabulary.encode(["hello"] * 9, 3).tolist() == [2, 2, 2]
    assert vocabulary.encode([], 2).tolist() == [PAD_ID, PAD_ID]


def test_encode_batch_shape_and_dtype() -> None:
    batch = build_vocabulary([["a"]]).encode_batch([["a"], [], ["z", "a"]], 4)
    assert batch.dtype == np.int32
    assert batch.tolist() == [[2, 0, 0, 0], [0, 0, 0, 0], [1, 2, 0, 0]]


def test_count_known() -> None:
    assert build_vocabulary([["a", "b"]]).count_known(["a", "x", "b", "<unk>", "<pad>"]) == 2


def test_vocabulary_must_start_with_special_tokens() -> None:
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(("a", "b"))
