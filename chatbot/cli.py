"""Command-line interface: ``chatbot train | validate | evaluate | predict | chat | review``, and the
commands that installed packages add (the web layer adds ``serve``).

Conventions shared by every command: results go to stdout, progress and diagnostics are log
records on stderr (``-v`` shows more, ``-q`` less), and an error is one line on stderr with a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

import chatbot
from chatbot.classifier.bundle import Bundle
from chatbot.classifier.config import DEFAULT_DATA_PATH, DEFAULT_MODEL_PATH, ENCODERS
from chatbot.classifier.extraction import EntityPipeline
from chatbot.classifier.ranker import Ranker
from chatbot.data.checks import (
    ERROR,
    check_file,
    drop_phrases_in_two_intents,
    findings_json,
    has_failures,
    run_checks,
)
from chatbot.data.intents import load_domain, load_intents, load_language, load_widget_strings
from chatbot.dialogue.decision import load_dialogue
from chatbot.dialogue.turn import parse_result, take_turn
from chatbot.errors import ChatbotError, EditError
from chatbot.learning import review
from chatbot.learning.compare import compare_reports, format_comparison, gate_failures
from chatbot.learning.evaluate import PIPELINE, evaluate, evaluate_entities
from chatbot.learning.log_settings import DATABASE_URL_VARIABLE, check_database_url
from chatbot.learning.message_log import ConversationStore, default_database_url
from chatbot.learning.review import DEFAULT_BELOW, DEFAULT_DAYS
from chatbot.training.tagger import has_annotations
from chatbot.training.threshold import labelled_examples, load_out_of_scope

log = logging.getLogger(__name__)

EXIT_USER_ERROR = 2
EXIT_FAILED_CHECK = 1  # validation errors, or a model under the --fail-under / --max-drop gates
# Log levels by verbosity (-v minus -q): the core's loggers, then everyone else's (TensorFlow,
# matplotlib...), which stay at INFO under one -v so that their debug chatter needs -vv.
LOG_LEVELS = {
    -2: (logging.ERROR, logging.ERROR),
    -1: (logging.WARNING, logging.WARNING),
    0: (logging.INFO, logging.INFO),
    1: (logging.DEBUG, logging.INFO),
    2: (logging.DEBUG, logging.DEBUG),
}
PLUGIN_GROUP = "chatbot.commands"  # entry points that add commands, such as the web layer's `serve`


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(verbosity(args))
    try:
        return args.command(args)
    except ChatbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def verbosity(args: argparse.Namespace) -> int:
    """Return -v minus -q, however they were placed, within the range LOG_LEVELS knows."""
    level = (
        args.verbose + getattr(args, "command_verbose", 0) - args.quiet - getattr(args, "command_quiet", 0)
    )
    return max(min(level, max(LOG_LEVELS)), min(LOG_LEVELS))


def configure_logging(level: int) -> None:
    """Send log records to stderr, one message a line, at the level the verbosity asks for."""
    core_level, other_level = LOG_LEVELS[level]
    logging.basicConfig(format="%(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(other_level)  # basicConfig sets it only the first time
    logging.getLogger("chatbot").setLevel(core_level)


def verbosity_options(dest_prefix: str = "") -> argparse.ArgumentParser:
    """Return the -v/-q options, to accept them before the command and after it alike."""
    options = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if dest_prefix else 0  # after the command: absent unless given
    group = options.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        dest=f"{dest_prefix}verbose",
        default=default,
        help="log more: the numbers behind each decision (-vv: other libraries' debug lines too)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="count",
        dest=f"{dest_prefix}quiet",
        default=default,
        help="log only warnings and errors (-qq: errors only); results still go to stdout",
    )
    return options


def build_parser(
    plugins: Iterable[Callable[[Callable[..., argparse.ArgumentParser]], None]] | None = None,
) -> argparse.ArgumentParser:
    """Describe the commands and their options; ``plugins`` add more (default: the installed ones)."""
    parser = argparse.ArgumentParser(
        prog="chatbot", description="Train and serve an intent chatbot.", parents=[verbosity_options()]
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {chatbot.__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    add_command = functools.partial(commands.add_parser, parents=[verbosity_options("command_")])

    train = add_command("train", help="train a model from an intents file")
    train.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="intents file (%(default)s)")
    train.add_argument(
        "--out", type=Path, default=DEFAULT_MODEL_PATH, help="model file to write (%(default)s)"
    )
    train.add_argument("--val", type=Path, help="validation intents (default: a stratified split)")
    train.add_argument(
        "--oos-val",
        type=Path,
        help="out-of-scope queries, one a line (data/out_of_scope.txt from the review inbox): with --val "
        "the threshold is calibrated on both; without, they join the generic off-topic queries",
    )
    train.add_argument("--epochs", type=int, help="upper bound on training epochs")
    train.add_argument(
        "--encoder",
        choices=ENCODERS,
        help="the pretrained sentence encoder: auto (where it covers the language; the default) or none",
    )
    train.add_argument(
        "--drop-conflicts",
        action="store_true",
        help="drop phrases filed under two intents (refused by default) and say how many",
    )
    train.add_argument(
        "--plain-text",
        action="store_true",
        help="read the phrases as plain text, with no entity annotations: brackets in them are "
        "literal (public data sets such as CLINC150)",
    )
    train.add_argument("--seed", type=int, help="random seed")
    train.set_defaults(command=run_train)

    validate = add_command("validate", help="check an intents file for problems before training")
    validate.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="intents file (%(default)s)")
    validate.add_argument("--strict", action="store_true", help="fail on warnings too")
    validate.add_argument("--json", action="store_true", help="print the findings as JSON")
    validate.set_defaults(command=run_validate)

    predict = add_command("predict", help="classify one message")
    predict.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="model file (%(default)s)")
    predict.add_argument("text", help="the message")
    predict.add_argument(
        "--json", action="store_true", help="print the parse result as JSON, as POST /api/v1/parse does"
    )
    predict.set_defaults(command=run_predict)

    evaluate = add_command("evaluate", help="measure a model on labelled and out-of-scope queries")
    evaluate.add_argument("--data", type=Path, required=True, help="intents file with the test queries")
    evaluate.add_argument("--oos", type=Path, help="out-of-scope queries, one a line")
    evaluate.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="model file (%(default)s)")
    evaluate.add_argument("--out", type=Path, default=Path("evaluation"), help="report folder (%(default)s)")
    evaluate.add_argument("--threshold", type=float, help="fallback threshold (default: the bundle's)")
    evaluate.add_argument("--compare", type=Path, metavar="OLD.h5", help="the model in service, side by side")
    evaluate.add_argument(
        "--fail-under", type=float, metavar="ACCURACY", help="exit 1 below this accuracy (0.9 or 90)"
    )
    evaluate.add_argument(
        "--max-drop", type=float, metavar="POINTS", help="with --compare: exit 1 if accuracy drops more"
    )
    evaluate.set_defaults(command=run_evaluate)

    chat = add_command("chat", help="chat with the bot in the terminal")
    chat.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="model file (%(default)s)")
    chat.set_defaults(command=run_chat)

    review = add_command("review", help="review what the bot failed to answer, and teach it")
    review.add_argument(
        "--database",
        help=f"conversation log URL (default: ${DATABASE_URL_VARIABLE}, or the SQLite file beside --model)",
    )
    review.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="model file (%(default)s)")
    review.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="intents file (%(default)s)")
    review.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help="look back this many days (%(default)s)"
    )
    review.add_argument(
        "--below",
        type=float,
        default=DEFAULT_BELOW,
        help="also list answers less sure than this (%(default)s)",
    )
    review.add_argument("--limit", type=int, default=20, help="groups to list (%(default)s)")
    review.add_argument("--stats", action="store_true", help="fallback rate per day and top intents")
    action = review.add_mutually_exclusive_group()
    action.add_argument("--assign", nargs=2, metavar=("GROUP", "INTENT"), help="add a group to an intent")
    action.add_argument(
        "--new-intent", nargs=3, metavar=("GROUP", "INTENT", "RESPONSE"), help="create an intent from a group"
    )
    action.add_argument("--out-of-scope", metavar="GROUP", help="mark a group out of scope")
    review.add_argument("--phrase", help="with an action: the phrase to write instead of the group's text")
    review.set_defaults(command=run_review)

    for add_commands in plugin_commands() if plugins is None else plugins:
        add_commands(add_command)
    return parser


def plugin_commands() -> list[Callable[[Callable[..., argparse.ArgumentParser]], None]]:
    """Return the command adders that installed packages declare (``chatbot.commands`` entry points).

    The web layer adds ``serve`` this way, so the core never names it (as Flask's CLI finds
    ``flask.commands``). Each adder is called with ``add_command``, which makes a subcommand that
    accepts the shared -v/-q options.
    """
    return [entry_point.load() for entry_point in importlib.metadata.entry_points(group=PLUGIN_GROUP)]


def run_train(args: argparse.Namespace) -> int:
    """Validate the intents, train, and write the bundle."""
    from chatbot.learning import plots  # matplotlib: imported only by the commands that draw

    # Read every input before the slow TensorFlow import, so that bad data fails at once.
    intents = load_intents(args.data, args.plain_text)
    if args.drop_conflicts:
        intents, dropped = drop_phrases_in_two_intents(intents)
        print(f"dropped {dropped} phrases filed under two intents (--drop-conflicts)")
    findings = run_checks(intents)
    for finding in findings:  # diagnostics here: `chatbot validate` prints them as its result
        log.log(logging.ERROR if finding.severity == ERROR else logging.WARNING, "%s", finding)
    if has_failures(findings):
        print(f"error: fix {args.data} first (chatbot validate --data {args.data})", file=sys.stderr)
        return EXIT_FAILED_CHECK
    domain = load_domain(args.data, args.plain_text)
    validation = load_intents(args.val, args.plain_text) if args.val else None
    out_of_scope = load_out_of_scope(args.oos_val) if args.oos_val else None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from chatbot.training.train import default_config, encoder_summary, train

    config = default_config(intents, load_language(args.data)).replace(
        epochs=args.epochs, seed=args.seed, encoder=args.encoder
    )
    widget_strings = load_widget_strings(args.data)
    bundle = train(intents, config, validation, out_of_scope or (), domain, widget_strings)
    if "calibrated_accuracy" in bundle.metrics:
        accuracy = bundle.metrics["calibrated_accuracy"]
        print(
            f"threshold {bundle.config.threshold:.4f}: accuracy {accuracy:.4f} on validation + out-of-scope"
        )
    bundle.save(args.out)
    metrics = bundle.metrics
    validation = metrics.get("validation_accuracy")
    parts = (
        f"an LSTM {encoder_summary(bundle)} and an n-gram model "
        f"(share of the LSTM model {bundle.config.deep_weight:.1f})"
    )
    saved = f"saved {args.out} (fingerprint {bundle.fingerprint})"
    if bundle.history:  # the LSTM's curves, per epoch
        saved += f" and {plots.training_curves(bundle.history, args.out.with_suffix('.training.png'))}"
    print(
        f"trained {parts} for {len(bundle.labels)} intents on {sum(len(i.patterns) for i in intents)} "
        f"patterns in {metrics['seconds']:.1f} s"
        + (f" ({int(metrics['epochs'])} epochs)" if metrics["epochs"] else "")
        + f": train accuracy {metrics['train_accuracy']:.3f}"
        + (f", validation accuracy {validation:.3f}" if validation is not None else "")
        + f"\n{saved}"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model, write the reports and figures, and print a summary."""
    from chatbot.learning import plots

    engine = Ranker.from_bundle(Bundle.load(args.model))
    test_intents = load_intents(args.data)
    texts, tags = labelled_examples(test_intents)
    out_of_scope = load_out_of_scope(args.oos) if args.oos else []
    quiet = not log.isEnabledFor(logging.INFO)  # no progress bar under -q; none off a terminal either
    with tqdm(
        total=len(texts) + len(out_of_scope), desc="evaluating", disable=True if quiet else None
    ) as bar:
        report = evaluate(engine, texts, tags, out_of_scope, args.threshold, bar.update)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {key: report[key] for key in ("metadata", "overall", "confused_pairs", "confusion_matrix")}
    for name, value in (
        ("report", summary),
        ("intent_report", report["per_intent"]),
        ("errors", report["errors"]),
    ):
        (args.out / f"{name}.json").write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    plots.confusion_matrix(report["confusion_matrix"], args.out / "confusion_matrix.png")
    plots.confidence_histogram(
        report["confidences"], report["overall"]["threshold"], args.out / "confidence_histogram.png"
    )
    print(format_summary(report))
    written = "report.json intent_report.json errors.json confusion_matrix.png confidence_histogram.png"
    if has_annotations(test_intents):
        examples = [example for intent in test_intents for example in intent.examples()]
        rankings = [ranking.label_probabilities for ranking in engine.rank_batch([e.text for e in examples])]
        entities = evaluate_entities(EntityPipeline.from_bundle(engine.bundle), examples, rankings)
        (args.out / "entity_report.json").write_text(
            json.dumps(entities, indent=2, ensure_ascii=False) + "\n"
        )
        plots.confusion_matrix(entities[PIPELINE]["confusion"], args.out / "entity_confusion.png")
        written += " entity_report.json entity_confusion.png"
        print(f"\n{format_entity_summary(entities)}")
    print(f"\nwrote {args.out}/: {written}")
    old_report = None
    if args.compare:
        old_engine = Ranker.from_bundle(Bundle.load(args.compare))
        old_report = evaluate(old_engine, texts, tags, out_of_scope, args.threshold)
        comparison = compare_reports(old_report, report, texts, tags, out_of_scope)
        (args.out / "comparison.json").write_text(json.dumps(comparison, indent=2, ensure_ascii=False) + "\n")
        print(f"\n{args.compare} (old) against {args.model} (new):\n{format_comparison(comparison)}")
    if failures := gate_failures(report, old_report, args.fail_under, args.max_drop):
        print("\n".join(f"FAILED: {failure}" for failure in failures), file=sys.stderr)
        return EXIT_FAILED_CHECK
    return 0


def run_validate(args: argparse.Namespace) -> int:
    """Check an intents file; exit 1 on errors (or on any finding with --strict)."""
    findings = check_file(args.data)
    if args.json:
        print(findings_json(findings))
    else:
        for finding in findings:
            print(finding)
        errors = sum(finding.severity == ERROR for finding in findings)
        print(f"{args.data}: {errors} errors, {len(findings) - errors} warnings")
    return EXIT_FAILED_CHECK if has_failures(findings, args.strict) else 0


def format_summary(report: dict) -> str:
    """Format the headline figures and the weakest intents as a plain-text table."""
    overall = report["overall"]
    lines = [
        f"{'in-scope queries':<34}{report['metadata']['in_scope_queries']:>10}",
        f"{'out-of-scope queries':<34}{report['metadata']['out_of_scope_queries']:>10}",
        f"{'in-scope accuracy (no threshold)':<34}{overall['in_scope_accuracy']:>10.2%}",
        f"{'in-scope accuracy at threshold':<34}{overall['in_scope_accuracy_at_threshold']:>10.2%}",
        f"{'threshold':<34}{overall['threshold']:>10.4f}",
    ]
    if "out_of_scope_recall" in overall:
        lines.append(f"{'out-of-scope recall':<34}{overall['out_of_scope_recall']:>10.2%}")
        lines.append(f"{'accuracy, out-of-scope a class':<34}{overall['accuracy']:>10.2%}")
    weakest = sorted(report["per_intent"].items(), key=lambda item: item[1]["f1"])[:5]
    lines += ["", "weakest intents          precision  recall      f1"]
    lines += [f"{tag:<24}{m['precision']:>10.2f}{m['recall']:>8.2f}{m['f1']:>8.2f}" for tag, m in weakest]
    return "\n".join(lines)


def format_entity_summary(report: dict[str, dict]) -> str:
    """Format each extractor's exact-span figures and its weakest entity types as a plain-text table."""
    lines = ["entities (exact span)    precision  recall      f1  support"]
    for name, scores in report.items():
        overall = scores["overall"]
        lines.append(
            f"{name:<24}{overall['precision']:>10.2f}{overall['recall']:>8.2f}{overall['f1']:>8.2f}"
            f"{overall['support']:>9}"
        )
        weakest = sorted(scores["per_entity"].items(), key=lambda item: (item[1]["f1"], item[0]))[:5]
        lines += [
            f"  {kind:<22}{m['precision']:>10.2f}{m['recall']:>8.2f}{m['f1']:>8.2f}{m['support']:>9}"
            for kind, m in weakest
        ]
    if len(report) == 1:
        lines.append("(the model has no entity extractor)")
    return "\n".join(lines)


def run_review(args: argparse.Namespace) -> int:
    """List the review inbox, show its figures, or apply one decision to a group."""
    store = ConversationStore(database_url(args))
    try:
        store.migrate()
        if args.stats:
            print(format_stats(review.stats(store)))
            return 0
        if args.assign or args.new_intent or args.out_of_scope:
            group_id = (args.assign or args.new_intent or [args.out_of_scope])[0]
            group = review.find_group(store, _group_id(group_id), args.days, args.below)
            if args.assign:
                print(printable(review.assign(store, group, args.data, args.assign[1], args.phrase)))
            elif args.new_intent:
                print(
                    printable(
                        review.create_intent(store, group, args.data, *args.new_intent[1:], args.phrase)
                    )
                )
            else:
                print(review.mark_out_of_scope(store, group, args.data, args.phrase))
            return 0
        groups, total = review.inbox_page(store, args.days, args.below, limit=args.limit)
        print(format_inbox(groups, total))
        return 0
    except SQLAlchemyError as exc:
        raise ChatbotError(
            f"cannot read the conversation log: {exc.__class__.__name__}: {exc.orig or exc}"
        ) from exc
    finally:
        store.close()


def database_url(args: argparse.Namespace) -> str:
    """Return the conversation log's URL: --database, else the server's setting, else beside --model."""
    raw = args.database or os.environ.get(DATABASE_URL_VARIABLE, "").strip()
    if not raw:
        return default_database_url(args.model)
    try:
        return check_database_url(raw)
    except ValueError as exc:
        raise ChatbotError(f"database URL: {exc}") from exc


def _group_id(raw: str) -> int:
    if not raw.isdigit():
        raise EditError(f"{raw!r} is not a group number: use the # column of `chatbot review`")
    return int(raw)


def format_inbox(groups: list[review.ReviewGroup], total: int) -> str:
    """Format the inbox as a table, one group a line."""
    if not groups:
        return "nothing to review"
    lines = [f"{'#':>6} {'count':>5}  {'latest (UTC)':<16}  {'guess':<18}{'conf':>5}  message"]
    lines += [
        f"{group.id:>6} {group.count:>5}  {group.latest:%Y-%m-%d %H:%M}  {printable(group.guess)[:17]:<18}"
        f"{group.confidence:>5.2f}  {printable(group.text)[:60]}"
        for group in groups
    ]
    lines.append(
        f"{total} groups; decide with --assign # INTENT, --new-intent # INTENT RESPONSE or --out-of-scope #"
    )
    return "\n".join(lines)


def format_stats(figures: dict) -> str:
    """Format the review figures: fallback rate per day and top intents per window."""
    lines = ["fallback rate per day (UTC)"]
    lines += [
        f"  {day['day']}  {day['rate']:>6.1%}  {day['fallbacks']:>5} of {day['messages']:<6} {'#' * round(day['rate'] * 40)}"
        for day in figures["fallback_rate_per_day"]
    ] or ["  no messages"]
    for window, intents in figures["top_intents"].items():
        lines += ["", f"top intents, last {window.removesuffix('d')} days"]
        lines += [f"  {row['count']:>7}  {printable(row['intent'])}" for row in intents] or ["  no messages"]
    return "\n".join(lines)


def printable(text: str) -> str:
    """Show a visitor's text as typed but harmless: control, format and bidi characters escaped.

    An ESC sequence in a logged message would otherwise retitle the reviewer's terminal, clear it or
    hide the lines around it; ``\\x1b`` on screen does none of that.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def run_predict(args: argparse.Namespace) -> int:
    """Print the top intents and the answer for one message (or all of it as JSON)."""
    step = take_turn(load_dialogue(args.model), args.text)
    if args.json:
        print(json.dumps(parse_result(args.text, step), indent=2, ensure_ascii=False))
        return 0
    reply = step.reply
    for tag, confidence in reply.ranking.label_probabilities[:3]:
        print(f"{confidence:6.3f}  {tag}")
    print(f"{'fallback' if reply.fallback else 'answer'}: {reply.response}")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    """Chat in the terminal, keeping context and slots (webhooks are not called), until EOF or 'quit'."""
    dialogue = load_dialogue(args.model)
    context, slots, pending = None, {}, None
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
            step = take_turn(dialogue, message, context, slots, pending)
            context, slots, pending = step.reply.context, step.slots, step.pending
            print(f"bot> {step.reply.response}")
