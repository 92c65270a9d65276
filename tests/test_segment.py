"""Runs of Thai typed without spaces split into the training words, unknown letters kept together."""

from __future__ import annotations

import time

import pytest

from chatbot.text.segment import Segmenter

TRAINING_WORDS = ["เพิ่ม", "อีก", "สิบ", "นาที", "ใน", "เครื่อง", "จับ", "เวลา", "นา"]


@pytest.mark.parametrize(
    ("word", "pieces"),
    [
        ("เพิ่มอีกสิบนาทีในเครื่องจับเวลา", ["เพิ่ม", "อีก", "สิบ", "นาที", "ใน", "เครื่อง", "จับ", "เวลา"]),
        ("นาที", ["นาที"]),  # a known word stays whole (not "นา" + "ที")
        ("กขคเพิ่มงง", ["กขค", "เพิ่ม", "งง"]),  # unknown letters stay together, between known words
        ("กขค", ["กขค"]),  # nothing known: the word as typed
        ("floss", ["floss"]),  # ASCII words are never split
        ("", [""]),
    ],
)
def test_segment(word: str, pieces: list[str]) -> None:
    assert Segmenter(TRAINING_WORDS).segment(word) == pieces


def test_segment_all_keeps_the_order_of_words() -> None:
    assert Segmenter(TRAINING_WORDS).segment_all(["จับเวลา", "5", "นาที"]) == ["จับ", "เวลา", "5", "นาที"]


def test_no_training_words_change_nothing() -> None:
    assert Segmenter([]).segment("เพิ่มอีก") == ["เพิ่มอีก"]


def test_time_is_linear_in_the_length() -> None:
    segmenter = Segmenter(TRAINING_WORDS)
    started = time.perf_counter()
    segmenter.segment("เพิ่มกข" * 170)  # about the longest message the server accepts
    assert time.perf_counter() - started < 0.5
