"""Train on CLINC150 and compare the accuracy on its validation split with the published results.

Trains on ``train.intents.json``, stops early on ``val.intents.json``, calibrates the fallback
threshold on val + ``oos_val.txt``, then reports in-scope accuracy and out-of-scope recall on val.
The published figures (Larson et al., EMNLP 2019, CC BY 3.0) are on the test split, which this
repository deliberately does not hold: compare them as an order of magnitude, not a ranking.

    .venv/bin/python -m bench.accuracy [--clinc ../shared/datasets/clinc150] [--out models/clinc150.h5]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.machine import describe_machine
from chatbot.data import load_intents
from chatbot.engine import Engine
from chatbot.evaluate import calibrate, evaluate, labelled_examples, load_out_of_scope

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "accuracy.json"
# Table 2 of the paper, test split: (in-scope accuracy, out-of-scope recall) with a threshold.
PUBLISHED = {
    "FastText": (88.6, 28.3),
    "SVM": (88.2, 18.0),
    "CNN": (90.9, 30.9),
    "DialogFlow": (90.8, 26.7),
    "Rasa": (90.9, 31.2),
    "MLP (USE embeddings)": (93.4, 49.1),
    "BERT (large)": (96.2, 52.3),
}


def run(clinc: Path, out: Path) -> dict:
    """Train, calibrate, save and evaluate; return the figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from chatbot.train import train

    validation = load_intents(clinc / "val.intents.json")
    out_of_scope = load_out_of_scope(clinc / "oos_val.txt")
    intents = load_intents(clinc / "train.intents.json")
    started = time.perf_counter()
    bundle = train(intents, validation=validation)  # defaults sized for the data: the large model
    bundle, calibrated_accuracy = calibrate(bundle, validation, out_of_scope)
    seconds = time.perf_counter() - started
    bundle.save(out)
    texts, tags = labelled_examples(validation)
    report = evaluate(Engine.from_bundle(bundle), texts, tags, out_of_scope)
    return {
        "model": str(out),
        "fingerprint": bundle.fingerprint,
        "training_seconds": round(seconds, 1),
        "epochs": bundle.metrics.get("epochs"),
        "calibrated_accuracy_val_plus_oos": calibrated_accuracy,
        "overall": report["overall"],
        "config": bundle.config.to_dict(),
        "machine": describe_machine(),
    }


def print_table(results: dict) -> None:
    """Print our figures beside the published ones."""
    overall = results["overall"]
    print(
        "| classifier | in-scope accuracy, no threshold | in-scope accuracy at threshold | out-of-scope recall |"
    )
    print("|---|---|---|---|")
    print(
        f"| **ours, CLINC150 val** | **{overall['in_scope_accuracy']:.1%}** "
        f"| **{overall['in_scope_accuracy_at_threshold']:.1%}** | **{overall['out_of_scope_recall']:.1%}** |"
    )
    for name, (accuracy, recall) in PUBLISHED.items():
        print(f"| {name}, published, test | | {accuracy}% | {recall}% |")
    print(
        f"\nthreshold {overall['threshold']:.4f}; training {results['training_seconds']:.0f} s "
        f"({results['epochs']:.0f} epochs) on {results['machine']['cores']} cores"
    )


def main() -> None:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinc", type=Path, default=ROOT.parent / "shared" / "datasets" / "clinc150")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "clinc150.h5")
    args = parser.parse_args()
    results = run(args.clinc, args.out)
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
