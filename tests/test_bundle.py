"""Model bundles: one atomic .h5 file, checked when loaded, that Keras can open too."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from chatbot.classifier.bundle import FORMAT_VERSION, METADATA_KEY, Bundle
from chatbot.classifier.vocab import Vocabulary
from chatbot.errors import BundleError
from tests.support import record_figures, rewrite_metadata


def test_save_and_load_round_trip(tiny_bundle: Bundle, tmp_path: Path) -> None:
    loaded = Bundle.load(tiny_bundle.save(tmp_path / "m.h5"))
    assert loaded.fingerprint == tiny_bundle.fingerprint
    assert loaded.vocabulary == tiny_bundle.vocabulary
    # fallback: the generic off-topic queries train it, though the tiny bot gives it no patterns
    assert loaded.labels == tiny_bundle.labels == ("greeting", "goodbye", "order", "order_number", "fallback")
    assert loaded.ngram_model.features == tiny_bundle.ngram_model.features
    assert np.array_equal(loaded.ngram_model.coef, tiny_bundle.ngram_model.coef)
    assert loaded.intents == tiny_bundle.intents
    assert loaded.config == tiny_bundle.config
    assert set(loaded.versions) >= {"chatbot", "keras", "tensorflow", "numpy", "nltk"}
    assert len(loaded.data_sha256) == 64


def test_quick_replies_survive_a_round_trip(tiny_bundle: Bundle, tmp_path: Path) -> None:
    first, *others = tiny_bundle.intents
    intents = (dataclasses.replace(first, quick_replies=("Track my order", "Bye")), *others)
    loaded = Bundle.load(dataclasses.replace(tiny_bundle, intents=intents).save(tmp_path / "m.h5"))
    assert loaded.intents == intents
    assert loaded.intents[0].quick_replies == ("Track my order", "Bye")
    with h5py.File(tmp_path / "m.h5") as file:
        stored = json.loads(file[METADATA_KEY][()])["intents"]
    expected = [["Track my order", "Bye"], *[None] * len(others)]  # absent when empty
    assert [item.get("quick_replies") for item in stored] == expected


def test_save_leaves_no_temporary_files(tiny_bundle: Bundle, tmp_path: Path) -> None:
    tiny_bundle.save(tmp_path / "m.h5")
    tiny_bundle.save(tmp_path / "m.h5")
    assert [path.name for path in tmp_path.iterdir()] == ["m.h5"]


def test_failed_save_keeps_the_previous_model(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    before = path.read_bytes()
    broken = dataclasses.replace(tiny_bundle, labels=("only-one",))  # cannot load back: labels mismatch
    with pytest.raises(BundleError):
        broken.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.h5"]


def test_keras_loads_the_bundle_as_a_model(tiny_bundle: Bundle, tmp_path: Path) -> None:
    import keras

    path = tiny_bundle.save(tmp_path / "m.h5")
    model = keras.models.load_model(path, compile=False)
    assert model.output_shape == (None, len(tiny_bundle.labels))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="model file not found"):
        Bundle.load(tmp_path / "absent.h5")


def test_truncated_file(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="corrupt or truncated"):
        Bundle.load(path)


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    path.write_text("not a model")
    with pytest.raises(BundleError, match="corrupt or truncated"):
        Bundle.load(path)


def test_flipped_weight_bytes_are_detected(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    with h5py.File(path, "r+") as file:
        dataset = file["model_weights/intent/intent/kernel"]
        dataset[0, 0] = dataset[0, 0] + 1.0
    with pytest.raises(BundleError, match="do not match their fingerprint"):
        Bundle.load(path)


def test_plain_keras_file_is_not_a_bundle(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    with h5py.File(path, "r+") as file:
        del file[METADATA_KEY]
    with pytest.raises(BundleError, match="not a chatbot model bundle"):
        Bundle.load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: {"vocabulary": Vocabulary((*b.vocabulary.tokens, "extra"))}, "embedding has"),
        (lambda b: {"labels": (*b.labels, "extra")}, "output layer has"),
        (lambda b: {"labels": ("a", "b", "c", "d", "e")}, "labels without an intent"),
        (lambda b: {"config": b.config.replace(language="tlh")}, "language 'tlh' is not known"),
        (lambda b: {"encoder": None}, "reads sentence vectors but the bundle names no sentence encoder"),
    ],
)
def test_mismatched_parts_are_refused(tiny_bundle: Bundle, tmp_path: Path, change, message: str) -> None:
    path = tmp_path / "m.h5"
    mismatched = dataclasses.replace(tiny_bundle, **change(tiny_bundle))
    with h5py.File(path, "w") as file:
        mismatched._write(file)  # bypass save(), which refuses to write an unloadable bundle
    with pytest.raises(BundleError, match=message):
        Bundle.load(path)


def test_newer_format_is_refused(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    with h5py.File(path, "r+") as file:
        text = (
            file[METADATA_KEY][()]
            .decode()
            .replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 99')
        )
        del file[METADATA_KEY]
        file.create_dataset(METADATA_KEY, data=text)
    with pytest.raises(BundleError, match="format 99 is not supported"):
        Bundle.load(path)


def test_a_bundle_of_another_encoder_is_refused_when_served(tiny_bundle: Bundle, tmp_path: Path) -> None:
    from chatbot.classifier.encoder import EncoderIdentity
    from chatbot.dialogue.decision import load_dialogue

    other = EncoderIdentity(tiny_bundle.encoder.name, "9.9.9", "0" * 64)
    path = dataclasses.replace(tiny_bundle, encoder=other).save(tmp_path / "m.h5")
    assert Bundle.load(path).encoder == other  # the file itself is sound
    with pytest.raises(BundleError, match=r"sentence encoder .* 9\.9\.9 .*; retrain the model"):
        load_dialogue(path)


def test_a_malformed_encoder_record_is_refused(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    rewrite_metadata(path, lambda metadata: metadata.update(encoder={"name": "x"}))
    with pytest.raises(BundleError, match=r"encoder record is malformed.*retrain"):
        Bundle.load(path)


def test_an_old_format_is_refused_with_retrain(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    rewrite_metadata(path, lambda metadata: metadata.update(format_version=2))
    with pytest.raises(BundleError, match=r"bundle format 2 is not supported.*retrain"):
        Bundle.load(path)


def test_fingerprint_depends_on_weights(tiny_bundle: Bundle) -> None:
    weights = {name: dict(values) for name, values in tiny_bundle.weights.items()}
    weights["intent"] = {name: np.zeros_like(value) for name, value in weights["intent"].items()}
    assert dataclasses.replace(tiny_bundle, weights=weights).fingerprint != tiny_bundle.fingerprint


def test_saved_bundle_is_readable_by_other_users(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["config"].update(threshold="x"), "config threshold='x' must be float"),
        (lambda m: m["config"].update(max_length=10**9), "config max_length=1000000000 must be between"),
        (lambda m: m["config"].update(max_length=-1), "config max_length=-1 must be between"),
        (lambda m: m["config"].update(max_length=1e9), "config max_length=1000000000.0 must be int"),
        (lambda m: m["config"].update(bidirectional="yes"), "config bidirectional='yes' must be bool"),
        (lambda m: m["config"].update(language=7), "config language=7 must be str"),
        (lambda m: m["config"].update(language="xx"), "language 'xx' is not known"),
        (lambda m: m.update(config=[]), "the model config must be an object"),
        (lambda m: m["intents"][0].update(responses=[]), '"responses" is empty'),
        (lambda m: m["intents"][1].pop("responses"), '"responses" is missing'),
        (lambda m: m["intents"][0].update(patterns="hi"), '"patterns" must be a list'),
        (lambda m: m["intents"].append(m["intents"][0]), "duplicate tag"),
        (lambda m: m.update(labels=[1, 2, 3, 4]), "labels must be a list of strings"),
        (lambda m: m["labels"].__setitem__(1, m["labels"][0]), "a label appears twice"),
        (lambda m: m.pop("created_at"), "invalid bundle metadata"),
    ],
)
def test_metadata_that_breaks_the_rules_of_training_data_is_refused(
    tiny_bundle: Bundle, tmp_path: Path, edit, message: str
) -> None:
    path = rewrite_metadata(tiny_bundle.save(tmp_path / "m.h5"), edit)  # a valid checksum
    with pytest.raises(BundleError) as error:
        Bundle.load(path)
    assert message in str(error.value)


@pytest.mark.parametrize("architecture", [json.dumps({"config": 1}), "{not json", "[]"])
def test_an_edited_architecture_is_refused(tiny_bundle: Bundle, tmp_path: Path, architecture: str) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    with h5py.File(path, "r+") as file:
        file.attrs["model_config"] = architecture
    with pytest.raises(BundleError, match=r"checksum|corrupt"):
        Bundle.load(path)


def test_edited_metadata_fails_its_checksum(tiny_bundle: Bundle, tmp_path: Path) -> None:
    path = tiny_bundle.save(tmp_path / "m.h5")
    with h5py.File(path, "r+") as file:
        text = file[METADATA_KEY][()].decode().replace('"threshold": 0.5', '"threshold": 0.9')
        del file[METADATA_KEY]
        file.create_dataset(METADATA_KEY, data=text)
    with pytest.raises(BundleError, match="do not match their checksum"):
        Bundle.load(path)


@pytest.mark.slow  # about 400 loads
def test_every_flipped_byte_loads_the_same_model_or_raises_bundle_error(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    """Flip one byte at a time across the whole file: nothing but BundleError may come out."""
    original = tiny_bundle.save(tmp_path / "m.h5").read_bytes()
    damaged = tmp_path / "damaged.h5"
    refused = places = 0
    for offset in range(0, len(original), max(1, len(original) // 400)):  # about 400 places
        places += 1
        data = bytearray(original)
        data[offset] ^= 0xFF
        damaged.write_bytes(bytes(data))
        try:
            loaded = Bundle.load(damaged)
        except BundleError:
            refused += 1
        else:
            assert loaded.fingerprint == tiny_bundle.fingerprint
            assert loaded.intents == tiny_bundle.intents and loaded.config == tiny_bundle.config
    assert refused > 0
    record_figures("byte_flips", {"places": places, "refused": refused, "loaded_same": places - refused})
