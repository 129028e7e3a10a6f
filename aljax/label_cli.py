"""`aljax label ...`: the command group of a human-in-the-loop labeling session.

``register(subparsers)`` adds the ``label`` group to a parent CLI; ``main(argv)`` runs the group on
its own (``python -m aljax.label_cli init ...``). Every handler returns the exit status: 0, 2 with a
one-line error on bad input, 130 on Ctrl-C (labels already added are kept either way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aljax import labeling
from aljax.data import DataError

DEFAULT_PROJECT = "aljax-label"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 28x28 (width x height), got {text!r}") from None
    return w, h


def cmd_init(args) -> str:
    project = labeling.init_project(
        args.project, args.data, args.classes.split(","), seed_labels=args.seed_labels,
        holdout_fraction=args.holdout_fraction, size=args.size, seed=args.seed, model=args.model,
        optimizer=args.optimizer, init_scale=args.init_scale, learning_rate=args.learning_rate,
        patience=args.patience, max_steps=args.max_steps, budget=args.budget)
    return (f"created {project.root}: {len(project.ids)} items of {project.x.shape[1]} features, "
            f"{len(project.train)} seed labels + {len(project.holdout)} holdout; next: aljax label next "
            f"--project {project.root}")


def cmd_next(args) -> str:
    project = labeling.load_project(args.project)
    proposal = labeling.propose(project, args.n, args.strategy)
    csv_path, png = labeling.write_proposal(project, proposal)
    how = "k-means cold start (no training labels yet)" if proposal.predicted is None else args.strategy
    lines = [f"proposed {len(proposal.rows)} items by {how}"]
    if png is not None:
        lines.append(f"contact sheet: {png}")
    lines.append(f"fill the label column of {csv_path}, then: aljax label add --project {project.root} {csv_path}")
    return "\n".join(lines)


def cmd_add(args) -> str:
    answers = labeling.read_answers(Path(args.csv))
    added = labeling.add_labels(args.project, answers)
    total = len(labeling.load_project(args.project).labels)
    return f"added {len(added)} labels ({len(answers) - len(added)} already known); {total} labels in total"


def cmd_status(args) -> str:
    project = labeling.load_project(args.project)
    return labeling.format_status(project, labeling.status(project, args.confidence, args.kappa))


def cmd_export(args) -> str:
    project = labeling.load_project(args.project)
    out = Path(args.out) if args.out else project.root / "export.csv"
    n_expert, n_auto = labeling.export(project, out, args.auto_threshold)
    return f"wrote {out}: {n_expert} expert labels" + (f" + {n_auto} auto labels" if args.auto_threshold is not None else "")


def _handler(command):
    def run(args) -> int:
        try:
            print(command(args))
        except (labeling.LabelingError, DataError) as err:
            print(f"aljax label {args.label_command}: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"aljax label {args.label_command}: interrupted; labels already added are kept", file=sys.stderr)
            return 130
        return 0

    return run


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add the init/next/add/status/export subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="label_command", required=True, metavar="{init,next,add,status,export}")

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--project", default=DEFAULT_PROJECT, help=f"project folder (default: {DEFAULT_PROJECT})")
        p.set_defaults(func=_handler(func))
        return p

    p = command("init", cmd_init, "start a labeling project on your own unlabeled data")
    p.add_argument("--data", required=True, help="a folder of PNG/JPEG images, or a .npy/.npz feature array")
    p.add_argument("--classes", required=True, help="comma-separated class names, e.g. 0,1,2 or cat,dog")
    p.add_argument("--seed-labels", help="CSV with id,label[,holdout] of items already labeled")
    p.add_argument("--holdout-fraction", type=float, default=0.0,
                   help="fraction of the seed labels held out to estimate accuracy (default 0)")
    p.add_argument("--size", type=_size, help="resize images to WxH (default: the first image's size)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the project (default 0)")
    p.add_argument("--budget", type=int, help="labels you can afford (a stopping criterion)")
    p.add_argument("--model", default="softmax_regression")
    p.add_argument("--optimizer", default="tf1_adam")
    p.add_argument("--init-scale", type=float, default=0.0, help="weight init scale (0: zeros; use 1 for mlp)")
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=10_000)

    p = command("next", cmd_next, "fit on the labels so far and propose the next batch to label")
    p.add_argument("--n", type=int, default=10, help="batch size (default 10)")
    p.add_argument("--strategy", default="margin", help="query strategy spec (default margin; `aljax list`)")

    p = command("add", cmd_add, "add the expert's labels from a filled proposal CSV")
    p.add_argument("csv", help="the proposal CSV with its label column filled (empty cells stay unlabeled)")

    p = command("status", cmd_status, "labels spent, estimated accuracy and stopping criteria")
    p.add_argument("--confidence", type=float, default=0.9, help="max-confidence stopping threshold (default 0.9)")
    p.add_argument("--kappa", type=float, default=0.99,
                   help="stop when Cohen's kappa between the last two fits' predictions reaches this (default 0.99)")

    p = command("export", cmd_export, "write the labeled set (and confident auto-labels) for training elsewhere")
    p.add_argument("--out", help="output .csv or .npz (default: PROJECT/export.csv)")
    p.add_argument("--auto-threshold", type=float,
                   help="also export unlabeled items predicted with at least this confidence (source auto)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``label`` command group to a parent CLI's subparsers; dispatch with ``args.func(args)``."""
    parser = subparsers.add_parser("label", help="label your own data with active learning (human in the loop)",
                                   description="Label your own data with active learning (human in the loop).")
    add_commands(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aljax label", description=__doc__.splitlines()[0])
    add_commands(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
