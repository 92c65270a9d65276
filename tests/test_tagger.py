"""The learned entity tagger: numpy serving matches Keras, BIO decoding is valid, the bundle keeps it."""

from __future__ import annotations

import copy
import dataclasses
import random
import time

import h5py
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from app import create_app
from chatbot.classifier.bundle import TAGGER_KEY, Bundle
from chatbot.classifier.extraction import EntityPipeline, Extractor
from chatbot.classifier.ranker import Ranker
from chatbot.classifier.tagger import Tagger, TaggerConfig, bio_tags, token_spans, viterbi
from chatbot.data.annotations import parse_annotated
from chatbot.data.intents import validate_intents
from chatbot.dialogue.decision import Dialogue
from chatbot.dialogue.turn import take_turn, take_turns
from chatbot.errors import BundleError
from chatbot.training.tagger import build_tagger_model, export_weights, fit_tagger, token_labels
from tests.support import ANNOTATED_ORDER, TINY_INTENTS, run_cli, write_json

SMALL = TaggerConfig(
    word_dim=8, subword_dim=8, subword_buckets=500, units=8, epochs=60, batch_size=8, dropout=0.0
)
WORDS = ("ship", "to", "berlin", "paris", "tomorrow")
ENTITIES = ("city", "when")


def random_tagger(seed: int = 0) -> tuple[Tagger, object]:
    """Return a tagger with a freshly initialised Keras model's weights, and that model."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_tagger_model(len(WORDS) + 2, len(bio_tags(ENTITIES)), SMALL)
    return Tagger(SMALL, WORDS, ENTITIES, export_weights(model, SMALL), {"nyc": "New York"}), model


def test_numpy_forward_matches_keras() -> None:
    tagger, model = random_tagger()
    tokens = ["Ship", "it", "to", "Berlin", "tomorrow", "!"]
    word_ids, subwords, shapes = tagger.features(tokens)
    expected = model.predict(
        {"words": word_ids[None], "subwords": subwords[None], "shapes": shapes[None]}, verbose=0
    )[0]
    np.testing.assert_allclose(tagger.tag_probabilities(tokens), expected, atol=1e-5)


def test_decoding_never_starts_an_entity_inside() -> None:
    tags = bio_tags(("city",))  # O, B-city, I-city
    allowed = Tagger(SMALL, (), ("city",), {}, {})._allowed  # type: ignore[attr-defined]
    # Alone, the middle token prefers I-city after O: an invalid sequence the decoder must avoid.
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.3, 0.6], [0.9, 0.05, 0.05]])
    path = [tags[index] for index in viterbi(np.log(probabilities), allowed)]
    assert path == ["O", "B-city", "O"]
    assert [tags[i] for i in viterbi(np.log(np.array([[0.1, 0.2, 0.7]])), allowed)] == ["B-city"]


def test_token_labels_follow_the_annotations() -> None:
    tokens, labels = token_labels(parse_annotated("ship to [San Francisco](city), [tomorrow](when)!"))
    assert tokens == ["ship", "to", "San", "Francisco", ",", "tomorrow", "!"]
    assert labels == ["O", "O", "B-city", "I-city", "O", "B-when", "O"]


TRAINING = [
    "ship it to [Berlin](city)",
    "send my parcel to [Paris](city) please",
    "deliver to [Madrid](city)",
    "I live in [Rome](city)",
    "can you ship to [NYC](city:New York)",
    "to [Vienna](city) [tomorrow](when)",
    "deliver it [tomorrow](when)",
    "hello there",
    "where is my order",
    "I want it [today](when) in [Lisbon](city)",
]


@pytest.mark.slow
def test_a_fitted_tagger_learns_its_phrases_and_synonyms() -> None:
    tagger = fit_tagger([parse_annotated(pattern) for pattern in TRAINING], SMALL)
    found = tagger.extract("can you ship to NYC")
    assert [(e.entity, e.value, e.start, e.end, e.extractor) for e in found] == [
        ("city", "New York", 16, 19, "tagger")
    ]
    assert [(e.entity, e.value) for e in tagger.extract("deliver to Berlin")] == [("city", "Berlin")]
    assert [(e.entity, e.value) for e in tagger.extract("deliver it tomorrow")] == [("when", "tomorrow")]
    assert tagger.extract("hello there") == []


def with_intent_prior(
    tagger: Tagger, prior: float = 2.0, classifier_weight: float = 1.0, classifier_mix: str = "product"
) -> Tagger:
    """Return the tagger with an intent head sure of intent 0 ("ship", whose phrases hold cities
    only); intent 1 ("when") holds dates only."""
    weights = {
        **tagger.weights,
        "intent_kernel": np.zeros((2 * SMALL.units, 2), np.float32),
        "intent_bias": np.array([6.0, -6.0], np.float32),
        # Tags O, B-city, I-city, B-when, I-when: intent 0 holds cities, intent 1 dates.
        "intent_types": np.array([[1, 1, 1, 0, 0], [1, 0, 0, 1, 1]], np.float32),
    }
    config = dataclasses.replace(
        SMALL, intent_prior=prior, classifier_weight=classifier_weight, classifier_mix=classifier_mix
    )
    return dataclasses.replace(tagger, weights=weights, config=config, intents=("ship", "when"))


def odds_change(tagger: Tagger, tokens: list[str], ranking, column: int) -> np.ndarray:
    """Return how the prior moves a tag's log-odds against O in each token (the network's cancel)."""
    shift = tagger.decoding_scores(tokens, ranking) - np.log(tagger.tag_probabilities(tokens) + 1e-9)
    return shift[:, column] - shift[:, 0]


CITY, WHEN = 1, 3  # columns of B-city and B-when


def test_the_classifier_ranking_guesses_the_intent_instead_of_the_head() -> None:
    tokens = ["ship", "it", "to", "Berlin", "tomorrow"]
    tagger = with_intent_prior(random_tagger()[0])
    # The head is sure of "ship"; the classifier says "when" (0.9) and names a label the tagger
    # never saw: the guess is [0.1, 0.9] over the head's intents, O weighs 1.05 and a date 0.95.
    ranking = (("when", 0.81), ("greet", 0.1), ("ship", 0.09))
    np.testing.assert_allclose(odds_change(tagger, tokens, ranking, WHEN), 2 * np.log(0.95 / 1.05), atol=1e-4)
    np.testing.assert_allclose(odds_change(tagger, tokens, ranking, CITY), 2 * np.log(0.15 / 1.05), atol=1e-4)
    # Without a ranking, or with one naming none of the head's intents, the head guesses.
    head = tagger.decoding_scores(tokens)
    np.testing.assert_allclose(odds_change(tagger, tokens, None, WHEN), 2 * np.log(0.05 / 1.05), atol=1e-3)
    np.testing.assert_array_equal(tagger.decoding_scores(tokens, (("greet", 1.0),)), head)
    # A tagger from before the head's labels were kept cannot read a ranking: the head guesses.
    unnamed = dataclasses.replace(tagger, intents=())
    np.testing.assert_array_equal(unnamed.decoding_scores(tokens, ranking), head)


def test_classifier_weight_mixes_the_ranking_with_the_head() -> None:
    tokens = ["ship", "it", "to", "Berlin"]
    half = with_intent_prior(random_tagger()[0], classifier_weight=0.5, classifier_mix="linear")
    ranking = (("when", 1.0), ("ship", 0.0))
    # Half the head (sure of "ship") and half the ranking: [0.5, 0.5]; a city and a date weigh 0.55.
    for column in (CITY, WHEN):
        np.testing.assert_allclose(
            odds_change(half, tokens, ranking, column), 2 * np.log(0.55 / 1.05), atol=1e-3
        )
    # The geometric mean instead: the head's near-certainty of "ship" outvotes the ranking.
    product = dataclasses.replace(half, config=dataclasses.replace(half.config, classifier_mix="product"))
    head = np.array([1.0, np.exp(-12.0)]) / (1.0 + np.exp(-12.0))  # softmax of the bias [6, -6]
    mixed = np.sqrt(head * [0.2, 0.8])
    when = mixed[1] / mixed.sum() + 0.05
    shift = odds_change(product, tokens, (("when", 0.8), ("ship", 0.2)), WHEN)
    np.testing.assert_allclose(shift, 2 * np.log(when / 1.05), atol=1e-3)
    off = with_intent_prior(random_tagger()[0], classifier_weight=0.0)
    np.testing.assert_array_equal(off.decoding_scores(tokens, ranking), off.decoding_scores(tokens))


def test_the_pipeline_passes_the_ranking_to_the_tagger() -> None:
    tagger = with_intent_prior(random_tagger()[0])
    pipeline = EntityPipeline([Extractor("tagger", frozenset(tagger.entities), tagger.extract)])
    text = "ship it to Berlin tomorrow"
    for ranking in (None, (("when", 1.0),), (("ship", 1.0),)):
        assert pipeline.extract(text, None, None, ranking) == tagger.extract(text, intent_ranking=ranking)


def test_a_turn_gives_the_extractors_the_classifier_ranking(tiny_bundle: Bundle) -> None:
    dialogue = Dialogue(Ranker.from_bundle(tiny_bundle), threshold=0.0, rng=random.Random(0))
    seen: list[object] = []
    dialogue.extractor = EntityPipeline(
        [
            Extractor(
                "tagger", frozenset({"city"}), lambda text, now, zone, ranking: seen.append(ranking) or []
            )
        ]
    )
    message = "where is my order"
    take_turn(dialogue, message)
    take_turns(dialogue, [message])
    expected = dialogue.ranker.rank(message).label_probabilities
    assert seen == [expected, expected] and len(expected) == len(tiny_bundle.labels)


def test_the_intent_prior_weighs_entity_types_by_the_guessed_intent() -> None:
    tokens = ["ship", "it", "to", "Berlin", "tomorrow"]
    plain = random_tagger()[0]
    raw = np.log(plain.tag_probabilities(tokens) + 1e-9)
    np.testing.assert_allclose(plain.decoding_scores(tokens), raw)  # no intent head: the network alone
    weighed = with_intent_prior(plain).decoding_scores(tokens)
    # Relative to O, a city keeps its odds and a date (never seen with intent 0) falls to the floor:
    # (0.05 / 1.05)² of them, about 1/441.
    city, when = 1, 3
    np.testing.assert_allclose((weighed - raw)[:, city] - (weighed - raw)[:, 0], 0.0, atol=0.01)
    np.testing.assert_allclose((weighed - raw)[:, when] - (weighed - raw)[:, 0], np.log(1 / 441), atol=0.01)
    off = with_intent_prior(plain, prior=0.0)  # the config turns it off
    np.testing.assert_allclose(off.decoding_scores(tokens), raw)


def test_the_bundle_keeps_the_intent_prior(tiny_bundle: Bundle, tmp_path) -> None:
    tagger = with_intent_prior(random_tagger()[0])
    loaded = Bundle.load(dataclasses.replace(tiny_bundle, tagger=tagger).save(tmp_path / "prior.h5")).tagger
    assert loaded is not None and loaded.config.intent_prior == 2.0
    assert loaded.intents == ("ship", "when") and loaded.config.classifier_weight == 1.0
    tokens = ["ship", "it", "to", "Berlin"]
    np.testing.assert_array_equal(loaded.decoding_scores(tokens), tagger.decoding_scores(tokens))


@pytest.mark.slow
def test_a_tagger_fitted_with_intents_keeps_their_entity_types() -> None:
    examples = [parse_annotated(pattern) for pattern in TRAINING]
    intents = ["greet" if "[" not in pattern else "ship" for pattern in TRAINING]
    intents[TRAINING.index("deliver it [tomorrow](when)")] = "when"
    tagger = fit_tagger(examples, SMALL, intents=intents)
    # Intents in sorted order (greet, ship, when); tags O, B-city, I-city, B-when, I-when.
    np.testing.assert_array_equal(
        tagger.weights["intent_types"], [[1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 1, 1]]
    )
    assert tagger.weights["intent_kernel"].shape == (2 * SMALL.units, 3)
    assert [(e.entity, e.value) for e in tagger.extract("deliver to Berlin")] == [("city", "Berlin")]
    # The head's labels are kept, so the classifier's ranking can guess the intent instead: a
    # ranking sure of "when" lowers a city's odds against O by (0.05 / 1.05)² from "ship"'s.
    assert tagger.intents == ("greet", "ship", "when")
    tokens = ["deliver", "to", "Berlin"]
    as_ship = tagger.decoding_scores(tokens, (("ship", 1.0), ("when", 0.0)))
    as_when = tagger.decoding_scores(tokens, (("when", 1.0), ("ship", 0.0)))
    np.testing.assert_allclose(
        (as_ship - as_when)[:, 1] - (as_ship - as_when)[:, 0], 2 * np.log(21), atol=1e-3
    )
    found = tagger.extract("deliver to Berlin", intent_ranking=(("ship", 0.9), ("greet", 0.1)))
    assert [(e.entity, e.value) for e in found] == [("city", "Berlin")]
    unprimed = fit_tagger(examples, dataclasses.replace(SMALL, intent_prior=0.0), intents=intents)
    assert "intent_types" not in unprimed.weights


def test_the_bundle_keeps_the_tagger(tiny_bundle: Bundle, tmp_path) -> None:
    tagger, _ = random_tagger()
    bundle = dataclasses.replace(tiny_bundle, tagger=tagger)
    assert bundle.fingerprint != tiny_bundle.fingerprint
    loaded = Bundle.load(bundle.save(tmp_path / "tagged.h5"))
    assert loaded.fingerprint == bundle.fingerprint
    assert loaded.tagger is not None
    text = "ship it to Berlin tomorrow"
    np.testing.assert_array_equal(
        loaded.tagger.tag_probabilities(text.split()), tagger.tag_probabilities(text.split())
    )
    assert Bundle.load(tiny_bundle.save(tmp_path / "plain.h5")).tagger is None


def test_a_changed_tagger_weight_is_caught(tiny_bundle: Bundle, tmp_path) -> None:
    path = dataclasses.replace(tiny_bundle, tagger=random_tagger()[0]).save(tmp_path / "tagged.h5")
    with h5py.File(path, "r+") as file:
        file[TAGGER_KEY]["dense_bias"][0] += 1.0
    with pytest.raises(BundleError, match="fingerprint"):
        Bundle.load(path)


def test_a_bot_without_extractors_runs_none(tiny_bundle: Bundle) -> None:
    assert EntityPipeline.from_bundle(tiny_bundle).extractors == []
    assert EntityPipeline.from_bundle(tiny_bundle).extract("ship it to Berlin") == []


def test_a_long_message_costs_linear_time() -> None:
    tagger, _ = random_tagger()
    long_text = ("ship it to Berlin tomorrow " * 40)[:1000]
    short_text = long_text[:100]

    def seconds(text: str) -> float:
        best = float("inf")  # the best of many: other processes on the machine only ever add time
        for _ in range(15):
            started = time.perf_counter()
            tagger.extract(text)
            best = min(best, time.perf_counter() - started)
        return best

    # One BLAS thread, as gunicorn's workers run (gunicorn.conf.py): on a busy machine a threaded
    # matrix product waits for cores, which would time the machine rather than the tagger.
    with threadpool_limits(1):
        ratio = seconds(long_text) / seconds(short_text)
    assert ratio < 30, f"1,000 characters took {ratio:.0f}x 100 characters"  # linear: ~10x
    assert len(token_spans("x" * 1000)) == 1  # one long word is one token with a bounded n-gram bag


@pytest.mark.slow
def test_a_trained_bot_answers_with_learned_entities(tmp_path) -> None:
    """Train through the CLI, serve the bundle, and see the tagger's entities in /api/v1/parse."""
    data = copy.deepcopy(TINY_INTENTS)
    data["intents"][2]["patterns"] += ANNOTATED_ORDER
    data["slots"] = {"destination": {"entity": "city"}}
    data["intents"][2]["responses"] = ["Shipping to {destination}."]
    path = write_json(tmp_path / "intents.json", data)
    model = tmp_path / "model.h5"
    run_cli("train", "--data", str(path), "--out", str(model), check=True)
    bundle = Bundle.load(model)
    assert bundle.tagger is not None and bundle.tagger.entities == ("city",)
    dialogue = Dialogue(Ranker.from_bundle(bundle), threshold=0.0, rng=random.Random(0))
    client = create_app({"TESTING": True, "RATE_LIMIT": None}, dialogue=dialogue).test_client()
    body = client.post("/api/v1/parse", json={"text": "ship my order to NYC"}).get_json()
    assert body["intent"]["name"] == "order"
    assert body["entities"] == [
        {"entity": "city", "value": "New York", "start": 17, "end": 20, "extractor": "tagger"}
    ]
    chat = client.post("/api/v1/chat", json={"message": "send it to Berlin please"}).get_json()
    assert chat["response"] == "Shipping to Berlin."


def test_escaped_brackets_alone_train_no_tagger() -> None:
    """A phrase whose only markup is escaped brackets is plain text: no tagger, nothing to learn."""
    from chatbot.training.tagger import has_annotations

    escaped = validate_intents(
        {"intents": [{"tag": "travel", "patterns": ["alerts for \\[country\\]"], "responses": ["ok"]}]}, "t"
    )
    annotated = validate_intents(
        {"intents": [{"tag": "travel", "patterns": ["alerts for [France](country)"], "responses": ["ok"]}]},
        "t",
    )
    assert escaped[0].annotated and not has_annotations(escaped)
    assert has_annotations(annotated)
