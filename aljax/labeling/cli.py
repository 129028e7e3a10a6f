"""`aljax label ...`: the command group of a human-in-the-loop labeling session.

``register(subparsers)`` adds the ``label`` group to a parent CLI; ``main(argv)`` runs the group on
its own (``python -m aljax.labeling.cli init ...``). Every handler returns the exit status: 0, 2 with
a one-line error on bad input or a failed write (the project is left as it was), 130 on Ctrl-C
(labels already added are kept either way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aljax import interrupt
from aljax.data import DataError
from aljax.labeling import inputs, project as store, report, session

DEFAULT_PROJECT = "aljax-label"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 28x28 (width x height), got {text!r}") from None
    return w, h


def cmd_init(args) -> str:
    project = inputs.init_project(
        args.project, args.data, args.classes.split(","), seed_labels=args.seed_labels,
        holdout_fraction=args.holdout_fraction, size=args.size, max_pixels=args.max_pixels, max_bytes=args.max_bytes,
        seed=args.seed, model=args.model,
        optimizer=args.optimizer, init_scale=args.init_scale, learning_rate=args.learning_rate,
        patience=args.patience, max_steps=args.max_steps, budget=args.budget)
    return (f"created {project.root}: {len(project.ids)} items of {project.x.shape[1]} features, "
            f"{len(project.train)} seed labels + {len(project.holdout)} holdout; next: aljax label next "
            f"--project {project.root}")


def cmd_next(args) -> str:
    project = store.load_project(args.project)
    session.check_settings(project.settings, args.strategy, args.n)  # before --drop-missing records anything
    project, dropped = store.require_files(project, args.drop_missing)
    proposal = session.propose(project, args.n, args.strategy)
    csv_path, png = report.write_proposal(project, proposal)
    how = "k-means cold start (no training labels yet)" if proposal.predicted is None else args.strategy
    lines = [f"dropped {dropped} items whose image files are missing"] if dropped else []
    lines.append(f"proposed {len(proposal.rows)} items by {how}")
    if png is not None:
        lines.append(f"contact sheet: {png}")
    lines.append(f"fill the label column of {csv_path}, then: aljax label add --project {project.root} {csv_path}")
    return "\n".join(lines)


def cmd_add(args) -> str:
    answers = inputs.read_answers(Path(args.csv))
    added = store.add_labels(args.project, answers)
    total = len(store.load_project(args.project).labels)
    return f"added {len(added)} labels ({len(answers) - len(added)} already known); {total} labels in total"


def cmd_fix(args) -> str:
    old = store.fix_label(args.project, args.id, args.label)
    if old is None:
        return f"{args.id} is already labeled {args.label}; nothing changed"
    return f"fixed {args.id}: {old} -> {args.label} (recorded in {store.HISTORY}; the next fit uses it)"


def cmd_relink(args) -> str:
    n, dropped = store.relink(args.project, args.data, args.drop_missing)
    return f"relinked {n} images to {Path(args.data).resolve()}" + (f"; dropped {dropped} missing" if dropped else "")


def cmd_status(args) -> str:
    project = store.load_project(args.project)
    return report.format_status(project, report.status(project, args.confidence, args.kappa))


def cmd_export(args) -> str:
    project = store.load_project(args.project)
    out = Path(args.out) if args.out else project.root / store.EXPORT
    n_expert, n_auto = report.export(project, out, args.auto_threshold)
    return f"wrote {out}: {n_expert} expert labels" + (f" + {n_auto} auto labels" if args.auto_threshold is not None else "")


def _handler(command):
    def run(args) -> int:
        run_message, interrupt.MESSAGE = interrupt.MESSAGE, (f"aljax label {args.label_command}: interrupted; "
                                                              f"labels already added are kept")
        try:
            print(command(args))
        except (store.LabelingError, DataError) as err:
            print(f"aljax label {args.label_command}: error: {interrupt.one_line(str(err))}", file=sys.stderr)
            return 2
        except OSError as err:  # a read the checks above did not foresee; writes raise LabelingError
            print(f"aljax label {args.label_command}: error: {err.filename or ''}: {err.strerror or err}",
                  file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(interrupt.MESSAGE, file=sys.stderr)
            return 130
        finally:
            interrupt.MESSAGE = run_message
        return 0

    return run


GROUP_EPILOG = """\
a session:
  aljax label init --project pets --data photos/ --classes cat,dog --seed-labels seed.csv
  aljax label next --project pets --n 10              # -> pets/batches/batch_00012.csv (+ .png)
  aljax label add --project pets pets/batches/batch_00012.csv
  aljax label status --project pets
  aljax label fix --project pets cat_017.jpg dog      # correct a label
  aljax label relink --project pets --data /new/place/photos
  aljax label export --project pets --out pets.npz --auto-threshold 0.95
run `aljax label COMMAND --help` for a command's options and examples.
"""

COMMANDS = {  # name: (help, examples)
    "init": ("start a labeling project on your own unlabeled data",
             "aljax label init --project pets --data photos/ --classes cat,dog,bird\n"
             "aljax label init --project pets --data photos/ --classes cat,dog --seed-labels seed.csv "
             "--holdout-fraction 0.2 --budget 300\n"
             "aljax label init --project emb --data embeddings.npy --classes 0,1,2 --model mlp --init-scale 1"),
    "next": ("fit on the labels so far and propose the next batch to label",
             "aljax label next --project pets\n"
             "aljax label next --project pets --n 20 --strategy entropy\n"
             "aljax label next --project pets --drop-missing    # go on without images that were deleted"),
    "add": ("add the expert's labels from a filled proposal CSV",
            "aljax label add --project pets pets/batches/batch_00012.csv\n"
            "aljax label add --project pets more_labels.csv     # any CSV with id,label[,holdout]"),
    "fix": ("correct a label already added (recorded in the project's history; the next fit uses it)",
            "aljax label fix --project pets cat_017.jpg dog\n"
            "aljax label fix --project emb 42 2"),
    "relink": ("point the project at its image folder after it moved (checks every image is there)",
               "aljax label relink --project pets --data /mnt/new/photos\n"
               "aljax label relink --project pets --data photos/ --drop-missing   # drop images that are gone"),
    "status": ("labels spent, estimated accuracy and stopping criteria (fits nothing, writes nothing)",
               "aljax label status --project pets\n"
               "aljax label status --project pets --confidence 0.95 --kappa 0.995"),
    "export": ("write the labeled set (and confident auto-labels) for training elsewhere",
               "aljax label export --project pets                  # -> pets/export.csv\n"
               "aljax label export --project pets --out pets.npz --auto-threshold 0.95"),
}


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add the label subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="label_command", required=True, metavar="{" + ",".join(COMMANDS) + "}")

    def command(name, func):
        help, examples = COMMANDS[name]
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="examples:\n" + "".join(f"  {line}\n" for line in examples.splitlines()))
        p.add_argument("--project", default=DEFAULT_PROJECT, help=f"project folder (default: {DEFAULT_PROJECT})")
        p.set_defaults(func=_handler(func))
        return p

    p = command("init", cmd_init)
    p.add_argument("--data", required=True, help="a folder of PNG/JPEG images, or a .npy/.npz feature array")
    p.add_argument("--classes", required=True, help="comma-separated class names, e.g. 0,1,2 or cat,dog")
    p.add_argument("--seed-labels", help="CSV with id,label[,holdout] of items already labeled")
    p.add_argument("--holdout-fraction", type=float, default=0.0,
                   help="fraction of the seed labels held out to estimate accuracy (default 0)")
    p.add_argument("--size", type=_size, default=inputs.DEFAULT_SIZE,
                   help=f"resize every image to WxH (default: {'x'.join(map(str, inputs.DEFAULT_SIZE))})")
    p.add_argument("--max-pixels", type=int, default=inputs.MAX_PIXELS,
                   help="refuse an image with more pixels than this, e.g. a decompression bomb (default: %(default)s)")
    p.add_argument("--max-bytes", type=int, default=inputs.MAX_BYTES,
                   help="refuse a .npy/.npz array larger than this many bytes once loaded (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the project (default 0)")
    p.add_argument("--budget", type=int, help="labels you can afford (a stopping criterion)")
    p.add_argument("--model", default="softmax_regression",
                   help="model fitted on the labels (default softmax_regression; an unknown name lists the choices)")
    p.add_argument("--optimizer", default="tf1_adam", help="optimiser of the fits (default tf1_adam; an unknown name lists the choices)")
    p.add_argument("--init-scale", type=float, default=0.0, help="weight init scale (0: zeros; use 1 for mlp)")
    p.add_argument("--learning-rate", type=float, default=0.1, help="learning rate of the fits (default 0.1)")
    p.add_argument("--patience", type=int, default=10,
                   help="fit steps without a better holdout accuracy before a fit stops (default 10)")
    p.add_argument("--max-steps", type=int, default=10_000, help="most steps of one fit (default 10000)")

    p = command("next", cmd_next)
    p.add_argument("--n", type=int, default=10, help="batch size (default 10)")
    p.add_argument("--strategy", default="margin",
                   help="query strategy, or a combinator of them (default margin; `aljax list` shows them)")
    p.add_argument("--drop-missing", action="store_true",
                   help="drop unlabeled items whose image file is missing (recorded in the project) instead of stopping")

    p = command("add", cmd_add)
    p.add_argument("csv", help="the proposal CSV with its label column filled (empty cells stay unlabeled)")

    p = command("fix", cmd_fix)
    p.add_argument("id", help="the item's id (as in the proposal CSV)")
    p.add_argument("label", help="its correct class")

    p = command("relink", cmd_relink)
    p.add_argument("--data", required=True, help="the folder that now holds the project's images")
    p.add_argument("--drop-missing", action="store_true",
                   help="drop unlabeled items whose image is not in the new folder instead of refusing")

    p = command("status", cmd_status)
    p.add_argument("--confidence", type=float, default=0.9, help="max-confidence stopping threshold (default 0.9)")
    p.add_argument("--kappa", type=float, default=0.99,
                   help="stop when Cohen's kappa between the last two fits' predictions reaches this (default 0.99)")

    p = command("export", cmd_export)
    p.add_argument("--out", help="output .csv or .npz (default: PROJECT/export.csv)")
    p.add_argument("--auto-threshold", type=float,
                   help="also export unlabeled items predicted with at least this confidence (source auto)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``label`` command group to a parent CLI's subparsers; dispatch with ``args.func(args)``."""
    parser = subparsers.add_parser("label", help="label your own data with active learning (human in the loop)",
                                   description="Label your own data with active learning (human in the loop).",
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=GROUP_EPILOG)
    add_commands(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aljax label", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=GROUP_EPILOG)
    add_commands(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
