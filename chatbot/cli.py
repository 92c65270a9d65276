"""Command-line interface: ``chatbot train | predict | chat | serve``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from chatbot.config import DEFAULT_DATA_PATH, DEFAULT_MODEL_PATH, ModelConfig
from chatbot.dialogue import load_dialogue
from chatbot.errors import ChatbotError

EXIT_USER_ERROR = 2
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.command(args)
    except ChatbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def build_parser() -> argparse.ArgumentParser:
    """Describe the commands and their options."""
    parser = argparse.ArgumentParser(prog="chatbot", description="Train and serve an intent chatbot.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from an intents file")
    train.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="intents file (%(default)s)")
    train.add_argument(
        "--out", type=Path, default=DEFAULT_MODEL_PATH, help="model file to write (%(default)s)"
    )
    train.add_argument("--epochs", type=int, help="upper bound on training epochs")
    train.add_argument("--seed", type=int, help="random seed")
    train.set_defaults(command=run_train)

    predict = commands.add_parser("predict", help="classify one message")
    predict.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="model file (%(default)s)")
    predict.add_argument("text", help="the message")
    predict.set_defaults(command=run_predict)

    chat = commands.add_parser("chat", help="chat with the bot in the terminal")
    chat.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="model file (%(default)s)")
    chat.set_defaults(command=run_chat)

    serve = commands.add_parser("serve", help="serve the HTTP API with gunicorn")
    serve.add_argument(
        "--model", type=Path, help="model file (default: $CHATBOT_MODEL or models/chatbot_model.h5)"
    )
    serve.add_argument("--port", type=int, help="port (default: $PORT or 5000)")
    serve.set_defaults(command=run_serve)
    return parser


def run_train(args: argparse.Namespace) -> int:
    """Validate the intents, train, and write the bundle."""
    from chatbot.data import load_intents

    intents = load_intents(args.data)  # fail on bad data before the slow TensorFlow import
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from chatbot.train import train

    bundle = train(intents, ModelConfig().replace(epochs=args.epochs, seed=args.seed))
    bundle.save(args.out)
    metrics = bundle.metrics
    validation = metrics.get("validation_accuracy")
    print(
        f"trained {len(bundle.labels)} intents on {sum(len(i.patterns) for i in intents)} patterns "
        f"in {metrics['seconds']:.1f} s: {int(metrics['epochs'])} epochs, "
        f"train accuracy {metrics['train_accuracy']:.3f}"
        + (f", validation accuracy {validation:.3f}" if validation is not None else "")
        + f"\nsaved {args.out} (fingerprint {bundle.fingerprint})"
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Print the top intents and the answer for one message."""
    reply = load_dialogue(args.model).reply(args.text)
    for tag, confidence in reply.ranking.intents[:3]:
        print(f"{confidence:6.3f}  {tag}")
    print(f"{'fallback' if reply.fallback else 'answer'}: {reply.response}")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    """Chat in the terminal, keeping the conversation's context, until EOF or 'quit'."""
    dialogue = load_dialogue(args.model)
    context = None
    print("Chat with the bot (type 'quit' to stop).")
    while True:
        try:
            message = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if message.lower() in {"quit", "exit"}:
            return 0
        if message:
            reply = dialogue.reply(message, context)
            context = reply.context
            print(f"bot> {reply.response}")


def run_serve(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn serving the app factory."""
    if args.model:
        os.environ["CHATBOT_MODEL"] = str(args.model)
    if args.port:
        os.environ["PORT"] = str(args.port)
    config = PROJECT_ROOT / "gunicorn.conf.py"
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--config", str(config), "app:create_app()"])
    return 0  # pragma: no cover - execvp does not return
