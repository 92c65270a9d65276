"""Save and load a trained model bundle: one ``.h5`` file holding everything serving needs.

When the bundle has an LSTM, the file is a Keras HDF5 model (``keras.models.load_model`` opens
it); a bundle of the n-gram model alone (small bots) is the same file without the Keras parts. It has one extra dataset,
``chatbot_bundle``: JSON with the vocabulary, labels, intents, config, data hash and versions, and
one extra group, ``chatbot_ngrams``: the n-gram model's features, idf, weights and biases. The
metadata names the sentence encoder the model was trained with (or none), so that a server with
another encoder refuses it (chatbot.classifier.encoder).
This module alone knows that layout; it reads and writes it with h5py, never with Keras.

``Bundle.load`` is the one place that reads a file, and every way it can be wrong (truncated,
flipped bytes, edited metadata, settings or intents that break the rules of training data) ends
there as one BundleError. The weights are covered by the fingerprint; the metadata and the
architecture by a checksum, so an edit anywhere is caught before anything is served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from chatbot.classifier.config import ModelConfig
from chatbot.classifier.encoder import EncoderIdentity
from chatbot.classifier.ngrams import NgramModel
from chatbot.classifier.tagger import Tagger, read_tagger, tagger_digest, write_tagger
from chatbot.classifier.vocab import Vocabulary
from chatbot.data.intents import Intent, validate_intents
from chatbot.data.slots import Domain, validate_domain
from chatbot.errors import BundleError, IntentsError
from chatbot.files import replace_file
from chatbot.text.languages import LANGUAGES

FORMAT_VERSION = 3  # 2: the metadata carries a checksum of itself and the architecture; 3: and the
# sentence encoder's identity, beside which every model has an LSTM
CHECKSUM_KEY = "checksum"
METADATA_KEY = "chatbot_bundle"
NGRAMS_KEY = "chatbot_ngrams"
NGRAM_ARRAYS = ("idf", "coef", "intercept")
TAGGER_KEY = "chatbot_tagger"  # the learned entity tagger (classifier/tagger.py), when trained
Weights = dict[str, dict[str, np.ndarray]]  # layer name -> weight name -> values, in Keras order


@dataclass(frozen=True)
class Bundle:
    """A trained intent classifier and what it needs to answer: the one unit of deployment."""

    architecture: dict[str, Any] | None  # the LSTM's Keras config (``model.to_json()``); None: no LSTM
    weights: Weights
    vocabulary: Vocabulary
    labels: tuple[str, ...]  # output unit i predicts labels[i]
    intents: tuple[Intent, ...]  # all intents, including any untrained fallback
    config: ModelConfig  # as trained: max_length and threshold are the values in force
    data_sha256: str
    versions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch training curves
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    ngram_model: NgramModel | None = None  # the wide half; None in bundles of the LSTM alone
    spelling_words: tuple[str, ...] = ()  # training words, most frequent first: typos of them are corrected
    widget_strings: dict[str, str] = field(default_factory=dict)  # the chat widget's texts (intents.json)
    domain: Domain = field(default_factory=Domain)  # entities and slots; empty in bundles made before them
    tagger: Tagger | None = None  # the learned entity tagger; None when no pattern is annotated
    encoder: EncoderIdentity | None = None  # the sentence encoder the model reads vectors of; None: none

    @cached_property
    def fingerprint(self) -> str:
        """Return a short hash of weights, vocabulary and labels: what identifies a model.

        Computed once per bundle (a bundle is never changed; a new one is made instead): probes,
        /version and every metrics scrape ask for it, and it hashes every weight.
        """
        digest = hashlib.sha256()
        for layer_weights in self.weights.values():
            for name, values in layer_weights.items():
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(values).tobytes())
        digest.update("\n".join(self.vocabulary.tokens).encode())
        digest.update("\n".join(self.labels).encode())
        digest.update("\n".join(self.spelling_words).encode())
        if self.ngram_model is not None:
            digest.update(f"{self.ngram_model.word_features}\n".encode())  # read too: covered too
            digest.update("\n".join(self.ngram_model.features).encode())
            for name in NGRAM_ARRAYS:
                digest.update(np.ascontiguousarray(getattr(self.ngram_model, name)).tobytes())
        if self.tagger is not None:
            digest.update(tagger_digest(self.tagger))
        return digest.hexdigest()[:16]

    def intents_by_tag(self) -> dict[str, Intent]:
        """Return the intents by tag, in a new dict: the caller's own, to keep or change."""
        return {intent.tag: intent for intent in self.intents}

    def layers(self) -> list[dict[str, Any]]:
        """Return the layer configs of the architecture, in order (none without an LSTM)."""
        return self.architecture["config"]["layers"] if self.architecture is not None else []

    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically: a reader sees the old file or the new one, never a mix.

        The HDF5 file is built in memory and written with plain file calls: HDF5's own writes
        cannot report a full disk cleanly (h5py crashed the process in our test). A save killed
        midway leaves only a hidden temporary file, which the next save to that path removes.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as file:
            self._write(file)
        try:
            replace_file(path, buffer.getvalue(), check=Bundle.load, mode=0o644)
        except OSError as exc:  # a full disk, a quota, a read-only folder: the old file stays
            raise BundleError(
                f"{path}: cannot write the model file ({exc.strerror or exc}); the previous file is unchanged"
            ) from exc
        return path

    def _write(self, file: h5py.File) -> None:
        if self.architecture is not None:
            self._write_keras_model(file)
        metadata = self._metadata()
        metadata[CHECKSUM_KEY] = metadata_checksum(metadata, self.architecture)
        file.create_dataset(METADATA_KEY, data=json.dumps(metadata, ensure_ascii=False))
        if self.ngram_model is not None:
            ngrams = file.create_group(NGRAMS_KEY)
            ngrams.attrs["word_features"] = self.ngram_model.word_features
            ngrams.create_dataset(
                "features", data=np.array(self.ngram_model.features, dtype=h5py.string_dtype())
            )
            for name in NGRAM_ARRAYS:
                ngrams.create_dataset(name, data=getattr(self.ngram_model, name))
        if self.tagger is not None:
            write_tagger(file.create_group(TAGGER_KEY), self.tagger)

    def _write_keras_model(self, file: h5py.File) -> None:
        file.attrs["backend"] = "tensorflow"
        file.attrs["keras_version"] = self.versions.get("keras", "3")
        file.attrs["model_config"] = json.dumps(self.architecture)
        group = file.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode() for name in self.weights]
        group.attrs["backend"] = "tensorflow"
        group.attrs["keras_version"] = file.attrs["keras_version"]
        for layer_name, layer_weights in self.weights.items():
            layer_group = group.create_group(layer_name)
            layer_group.attrs["weight_names"] = [name.encode() for name in layer_weights] or np.array([])
            for weight_name, values in layer_weights.items():
                layer_group.create_dataset(weight_name, data=values)

    def _metadata(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "vocabulary": list(self.vocabulary.tokens),
            "labels": list(self.labels),
            "intents": [intent.to_dict() for intent in self.intents],
            "config": self.config.to_dict(),
            "data_sha256": self.data_sha256,
            "versions": self.versions,
            "metrics": self.metrics,
            "history": self.history,
            "created_at": self.created_at,
            "spelling_words": list(self.spelling_words),
            "widget_strings": self.widget_strings,
            "domain": self.domain.to_dict(),
            "encoder": self.encoder.as_dict() if self.encoder is not None else None,
        }

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        """Read a bundle and check that its parts agree; raise BundleError saying what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"{path}: model file not found (train one with `chatbot train`)")
        try:
            bundle, stored_fingerprint = cls._read(path)
            _check_consistency(path, bundle, stored_fingerprint)
        except BundleError:
            raise
        except IntentsError as exc:  # its message names the intent and field, as for intents.json
            raise BundleError(f"{path}: invalid intents in the bundle: {exc}") from exc
        # A damaged file makes h5py, json and numpy raise almost anything (OSError, KeyError,
        # RuntimeError, ValueError, TypeError, IndexError...). Whatever it is, the file is at fault:
        # it must become the one error that a start, a reload and the CLI all know how to refuse.
        except Exception as exc:
            raise BundleError(f"{path}: corrupt or truncated model file ({exc})") from exc
        return bundle

    @classmethod
    def _read(cls, path: Path) -> tuple[Bundle, Any]:
        with h5py.File(path, "r") as file:
            if METADATA_KEY not in file:
                raise BundleError(f"{path}: not a chatbot model bundle (no {METADATA_KEY} metadata)")
            metadata = json.loads(file[METADATA_KEY][()])
            has_lstm = "model_config" in file.attrs
            architecture = json.loads(file.attrs["model_config"]) if has_lstm else None
            _check_metadata(path, metadata, architecture)
            weights = _read_weights(file["model_weights"]) if has_lstm else {}
            ngram_model = _read_ngram_model(file[NGRAMS_KEY]) if NGRAMS_KEY in file else None
            tagger = read_tagger(file[TAGGER_KEY]) if TAGGER_KEY in file else None
        bundle = cls._from_metadata(path, metadata, architecture, weights, ngram_model)
        if tagger is not None:
            bundle = dataclasses.replace(bundle, tagger=tagger)
        return bundle, metadata["fingerprint"]

    @classmethod
    def _from_metadata(
        cls,
        path: Path,
        metadata: dict[str, Any],
        architecture: dict[str, Any] | None,
        weights: Weights,
        ngram_model: NgramModel | None,
    ) -> Bundle:
        domain = metadata.get("domain", {})
        encoder = metadata.get("encoder")
        try:
            return cls(
                architecture=architecture,
                weights=weights,
                vocabulary=Vocabulary(tuple(_strings(metadata["vocabulary"], "vocabulary"))),
                labels=tuple(_strings(metadata["labels"], "labels")),
                # The rules of training data: intents.json's validation, with the bundle's domain.
                intents=tuple(
                    validate_intents({**domain, "intents": _file_form(metadata["intents"])}, "intents")
                ),
                config=ModelConfig.from_dict(metadata["config"]),
                data_sha256=metadata["data_sha256"],
                versions=metadata.get("versions", {}),
                metrics=metadata.get("metrics", {}),
                history=metadata.get("history", {}),
                created_at=metadata["created_at"],
                ngram_model=ngram_model,
                spelling_words=tuple(metadata.get("spelling_words", ())),
                widget_strings=dict(metadata.get("widget_strings", {})),
                domain=validate_domain(domain, source="domain"),
                encoder=EncoderIdentity.from_dict(encoder) if encoder is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{path}: invalid bundle metadata ({exc})") from exc


def metadata_checksum(metadata: dict[str, Any], architecture: dict[str, Any] | None) -> str:
    """Return the SHA-256 of the metadata (its checksum left out) and the architecture, canonically."""
    covered = {key: value for key, value in metadata.items() if key != CHECKSUM_KEY}
    canonical = json.dumps([covered, architecture], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_metadata(path: Path, metadata: Any, architecture: Any) -> None:
    """Refuse metadata of another format, or whose checksum does not match what is stored."""
    if not isinstance(metadata, dict):
        raise BundleError(f"{path}: not a chatbot model bundle (its metadata is not an object)")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format {metadata.get('format_version')!r} is not supported "
            f"(this version reads {FORMAT_VERSION}); retrain with `chatbot train`"
        )
    if metadata.get(CHECKSUM_KEY) != metadata_checksum(metadata, architecture):
        raise BundleError(
            f"{path}: metadata or architecture do not match their checksum; the file is corrupt"
        )


def _file_form(intents: Any) -> Any:
    """Return stored intents as intents.json writes them, for its validation to read.

    ``Intent.to_dict`` writes a slot request as ``{"slot", "question"}`` and an action with its
    unset fields as null; intents.json says ``"ask"`` and leaves unset fields out.
    """
    if not isinstance(intents, list):
        return intents
    return [_intent_file_form(item) if isinstance(item, dict) else item for item in intents]


def _intent_file_form(item: dict[str, Any]) -> dict[str, Any]:
    item = dict(item)
    if isinstance(item.get("require"), list):
        item["require"] = [
            {"slot": request.get("slot"), "ask": request.get("question")}
            if isinstance(request, dict)
            else request
            for request in item["require"]
        ]
    if isinstance(item.get("action"), dict):
        item["action"] = {key: value for key, value in item["action"].items() if value is not None}
    return item


def _strings(values: Any, name: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise ValueError(f"{name} must be a list of strings")
    return values


def _read_weights(group: h5py.Group) -> Weights:
    weights: Weights = {}
    for layer_name in _names(group.attrs["layer_names"]):
        layer_group = group[layer_name]
        weights[layer_name] = {
            name: np.asarray(layer_group[name]) for name in _names(layer_group.attrs["weight_names"])
        }
    return weights


def _read_ngram_model(group: h5py.Group) -> NgramModel:
    arrays = {name: np.asarray(group[name], dtype=np.float32) for name in NGRAM_ARRAYS}
    return NgramModel(
        features=tuple(group["features"].asstr()[()].tolist()),
        word_features=int(group.attrs["word_features"]),
        **arrays,
    )


def _names(values: Any) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else str(value) for value in values]


def _check_consistency(path: Path, bundle: Bundle, stored_fingerprint: str | None) -> None:
    if bundle.architecture is None and bundle.ngram_model is None:
        raise BundleError(f"{path}: neither an LSTM nor an n-gram model: nothing to classify with")
    if bundle.architecture is not None:
        _check_lstm(path, bundle)
    if (ngrams := bundle.ngram_model) is not None and (
        ngrams.coef.shape != (len(ngrams.features), len(bundle.labels))
        or ngrams.idf.shape != (len(ngrams.features),)
        or ngrams.intercept.shape != (len(bundle.labels),)
        or not 0 <= ngrams.word_features <= len(ngrams.features)
    ):
        raise BundleError(f"{path}: the n-gram model's shapes do not match its features and labels")
    if len(set(bundle.labels)) != len(bundle.labels):
        raise BundleError(f"{path}: a label appears twice: {sorted(bundle.labels)}")
    if bundle.config.language not in LANGUAGES:
        raise BundleError(
            f"{path}: language {bundle.config.language!r} is not known to this version; retrain or upgrade"
        )
    tags = {intent.tag for intent in bundle.intents}
    if missing := [label for label in bundle.labels if label not in tags]:
        raise BundleError(f"{path}: labels without an intent: {missing}")
    if stored_fingerprint != bundle.fingerprint:
        raise BundleError(f"{path}: weights do not match their fingerprint; the file is corrupt")


def _check_lstm(path: Path, bundle: Bundle) -> None:
    layers = {layer["name"]: layer for layer in bundle.layers()}
    if set(bundle.weights) - set(layers):
        raise BundleError(f"{path}: weights for layers the architecture does not have")
    embeddings = [
        values
        for name, layer_weights in bundle.weights.items()
        if layers[name]["class_name"] == "Embedding"
        for values in layer_weights.values()
    ]
    if not embeddings or any(table.shape[0] != len(bundle.vocabulary) for table in embeddings):
        rows = ", ".join(str(table.shape[0]) for table in embeddings) or "0"
        raise BundleError(
            f"{path}: vocabulary has {len(bundle.vocabulary)} words but the embedding has {rows} rows"
        )
    reads_vectors = "sentence_vector" in layers
    if reads_vectors != (bundle.encoder is not None):
        raise BundleError(
            f"{path}: the model {'reads' if reads_vectors else 'does not read'} sentence vectors but the "
            f"bundle names {'no' if bundle.encoder is None else 'a'} sentence encoder; retrain the model"
        )
    last_weights = [w for w in bundle.weights.values() if w][-1]
    output_units = list(last_weights.values())[-1].shape[-1]
    if output_units != len(bundle.labels):
        raise BundleError(
            f"{path}: {len(bundle.labels)} labels but the output layer has {output_units} units"
        )
