"""What goes out: proposals (CSV + contact sheet), the status with its stopping criteria, and
the exported labeled set."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np

from aljax.atomic import atomic_write, write_csv, write_npz
from aljax.labeling.inputs import read_answers
from aljax.labeling.project import BATCHES, LabelingError, Project, labels_digest, make_dir, write
from aljax.labeling.session import Proposal, current_fit, load_fit
from aljax.stopping import stop_rounds

PROPOSAL_COLUMNS = ("id", "path", "predicted", "confidence", "label")

# ----------------------------------------------------------------------------- proposals


def batch_path(project: Project) -> Path:
    """batches/batch_<number of labels>.csv: the same state proposes into the same file."""
    return project.root / BATCHES / f"batch_{len(project.labels):05d}.csv"


def write_proposal(project: Project, proposal: Proposal) -> tuple[Path, Path | None]:
    """Write the proposal CSV (label column empty) and, for images, a contact sheet PNG beside it.

    Refuses to overwrite a CSV that holds answers not yet added (they would be lost). On a failed
    write, the files and the batches/ folder this call created are removed again.
    """
    path = batch_path(project)
    if path.exists():
        pending = [a for a in read_answers(path) if a not in project.labels]
        if pending:
            raise LabelingError(f"{path} holds {len(pending)} labels not added yet; run `aljax label add` on it first")
    classes = project.settings.classes
    rows = []
    for k, r in enumerate(proposal.rows):
        predicted = "" if proposal.predicted is None else classes[proposal.predicted[k]]
        confidence = "" if proposal.confidence is None else f"{proposal.confidence[k]:.4f}"
        rows.append((project.ids[r], project.paths[r], predicted, confidence, ""))
    sheet = contact_sheet(project, proposal)
    png = path.with_suffix(".png") if sheet is not None else None
    new_png = png is not None and not png.exists()
    new_dir = make_dir(path.parent)
    try:
        if sheet is not None:
            write(atomic_write, png, lambda f: sheet.save(f, format="PNG"), record_in=project.root)
        write(write_csv, path, PROPOSAL_COLUMNS, rows, record_in=project.root)
    except BaseException:
        if new_png:
            png.unlink(missing_ok=True)
        if new_dir:
            path.parent.rmdir()
        raise
    return path, png


def contact_sheet(project: Project, proposal: Proposal, cell: int = 120, columns: int = 5):
    """A Pillow image of the proposed items in a grid, each captioned with its CSV row number, its
    id and the model's guess; None when the items are not images."""
    from PIL import Image, ImageDraw, ImageOps

    shape = project.settings.image_shape
    if not any(project.paths[r] for r in proposal.rows) and shape is None:
        return None
    caption = 26
    n_rows = -(-len(proposal.rows) // columns)
    sheet = Image.new("RGB", (columns * cell, n_rows * (cell + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, r in enumerate(proposal.rows):
        if project.paths[r]:
            try:
                with Image.open(project.paths[r]) as im:
                    thumb = im.convert("RGB")
            except (OSError, Image.DecompressionBombError) as err:
                raise LabelingError(f"{project.paths[r]}: not a readable image ({type(err).__name__}); restore the "
                                    f"original file, or delete it and run `aljax label next --project {project.root} "
                                    f"--drop-missing` to go on without it") from None
        else:
            pixels = project.x[r].reshape(shape)
            span = max(float(pixels.max() - pixels.min()), 1e-12)
            thumb = Image.fromarray(np.uint8(255 * (pixels - pixels.min()) / span)).convert("RGB")
        thumb = ImageOps.contain(thumb, (cell - 4, cell - 4))
        x0, y0 = (k % columns) * cell, (k // columns) * (cell + caption)
        sheet.paste(thumb, (x0 + (cell - thumb.width) // 2, y0 + 2))
        draw.text((x0 + 3, y0 + cell - 2), _fit_text(draw, f"#{k + 1} ", project.ids[r], cell - 6), fill="black")
        if proposal.predicted is not None:
            guess = f"model: {project.settings.classes[proposal.predicted[k]]} ({proposal.confidence[k]:.2f})"
            draw.text((x0 + 3, y0 + cell + 10), _fit_text(draw, "", guess, cell - 6), fill="gray")
    return sheet


def _fit_text(draw, head: str, text: str, width: int) -> str:
    """``head + text`` in Latin-1 (the default font's), ``text`` cut from the left to ``width`` pixels."""
    text = "".join(c if c.isprintable() else "?" for c in text)  # a newline in a file name is not a line break
    text = text.encode("latin-1", "replace").decode("latin-1")
    line, cut = head + text, 0
    while draw.textlength(line) > width and cut < len(text) - 1:
        cut += 1
        line = f"{head}...{text[cut:]}"
    return line


# ----------------------------------------------------------------------------- stopping, status


@dataclasses.dataclass(frozen=True)
class Criterion:
    """A stopping criterion's latest value, its threshold, whether it says stop, and the fit
    (1-based) at which it first held, as :func:`aljax.stopping.stop_rounds` decides."""

    value: float | None
    threshold: float | None
    met: bool
    at: int | None = None


def stopping_criteria(fits: tuple[dict, ...], spent: int, budget: int | None, confidence: float = 0.9,
                      kappa: float = 0.99, window: int = 1) -> dict[str, Criterion]:
    """The stopping criteria over the history of fits (fit.npz's entries, oldest first), evaluated by
    :func:`aljax.stopping.stop_rounds` as in the simulated loop, each fit being a round:

    * ``max_confidence``: every unlabeled item's max softmax is at least ``confidence``;
    * ``stable_predictions``: Cohen's κ between the pool predictions of successive fits is at least
      ``kappa`` for ``window`` fits in a row;
    * ``budget``: ``spent`` labels (now, fitted or not) reached the optional ``budget``.
    """
    n = len(fits)
    stops = {}
    if n:
        info = types.SimpleNamespace(**{k: np.array([np.nan if f[k] is None else f[k] for f in fits], np.float32)
                                        for k in ("min_confidence", "agreement")})
        stops = {k: int(v) for k, v in stop_rounds(info, min_confidence=confidence, kappa=kappa, window=window).items()}

    def criterion(name, key, threshold):
        at = stops.get(name, n)
        return Criterion(fits[-1][key] if n else None, threshold, at < n, at + 1 if at < n else None)

    spent_info = types.SimpleNamespace(n_labeled=np.array([spent]))
    return {
        "max_confidence": criterion("min_confidence", "min_confidence", confidence),
        "stable_predictions": criterion("kappa", "agreement", kappa),
        "budget": Criterion(spent, budget, budget is not None and int(stop_rounds(spent_info, budget=budget)["budget"]) == 0),
    }


@dataclasses.dataclass(frozen=True)
class Status:
    """What `label status` reports. ``fit`` is the last fit's history entry, ``stale`` whether
    labels changed after it; ``per_class`` counts all labels by class name."""

    n_items: int
    n_train: int
    n_holdout: int
    n_dropped: int
    n_fixed: int
    per_class: dict[str, int]
    fit: dict | None
    stale: bool
    criteria: dict[str, Criterion]


def status(project: Project, confidence: float = 0.9, kappa: float = 0.99) -> Status:
    """The project's state without fitting anything (so it is cheap and changes no file)."""
    for name, value in (("--confidence", confidence), ("--kappa", kappa)):
        if not 0 <= value <= 1:
            raise LabelingError(f"{name} must be in [0, 1], got {value}")
    state = load_fit(project)
    fits = () if state is None else state.history
    return Status(
        n_items=len(project.ids),
        n_train=len(project.train),
        n_holdout=len(project.holdout),
        n_dropped=len(project.dropped),
        n_fixed=sum(e["event"] == "fix" for e in project.history),
        per_class={c: sum(l.label == c for l in project.labels) for c in project.settings.classes},
        fit=fits[-1] if fits else None,
        stale=state is not None and state.digest != labels_digest(project.labels),
        criteria=stopping_criteria(fits, len(project.labels), project.settings.budget, confidence, kappa),
    )


def format_status(project: Project, s: Status) -> str:
    spent = s.n_train + s.n_holdout
    budget = project.settings.budget
    lines = [
        f"project {project.root}: {s.n_items} items, classes {','.join(project.settings.classes)}"
        + (f"; {s.n_dropped} dropped (image file missing)" if s.n_dropped else ""),
        f"labels spent: {spent}" + (f" of a budget of {budget}" if budget else "")
        + f" ({s.n_train} train, {s.n_holdout} holdout); per class: "
        + " ".join(f"{c}={n}" for c, n in s.per_class.items())
        + (f"; {s.n_fixed} fixes" if s.n_fixed else ""),
    ]
    if s.fit is None:
        lines.append("no fit yet: run `aljax label next`")
    else:
        f = s.fit
        lines.append(f"last fit: {f['n_train']} train labels, {f['steps']} steps"
                     + (" (labels changed since; `aljax label next` refits)" if s.stale else ""))
        if f["holdout_correct"] is None:
            lines.append("estimated accuracy: no holdout labels (mark some with a holdout column of 1)")
        else:
            lines.append(f"estimated accuracy on the holdout: {f['holdout_correct'] / f['n_holdout']:.1%} "
                         f"({f['holdout_correct']}/{f['n_holdout']}; also the early-stopping set, so optimistic)")
    c = s.criteria
    lines.append(_criterion_line("lowest max-confidence on the unlabeled pool", c["max_confidence"]))
    lines.append(_criterion_line("agreement (Cohen's kappa) of the last two fits' predictions", c["stable_predictions"]))
    if budget:
        lines.append(f"budget: {spent}/{budget} labels" + (" -> stop" if c["budget"].met else ""))
    return "\n".join(lines)


def _criterion_line(name: str, c: Criterion) -> str:
    value = "n/a" if c.value is None else f"{c.value:.3f}"
    return f"{name}: {value} (stop when >= {c.threshold:g}{f': met at fit {c.at} -> stop' if c.met else ''})"


# ----------------------------------------------------------------------------- export


def export(project: Project, out: str | Path, auto_threshold: float | None = None) -> tuple[int, int]:
    """Write the labeled set, plus unlabeled items whose predicted class has confidence at least
    ``auto_threshold`` (source ``auto``), to ``out``: a .csv (id, path, label, source, confidence,
    holdout) or a .npz (x (n, D), y (n,) class indices, ids, classes, source, confidence, holdout).
    Returns (expert labels, auto labels) written."""
    out = Path(out)
    if out.suffix not in (".csv", ".npz"):
        raise LabelingError(f"{out}: the export file must end in .csv or .npz")
    if auto_threshold is not None and not 0 <= auto_threshold <= 1:
        raise LabelingError(f"--auto-threshold must be in [0, 1], got {auto_threshold}")
    rows = list(project.rows(project.labels))
    y = list(project.targets(project.labels))
    source = ["expert"] * len(rows)
    confidence = [np.nan] * len(rows)
    holdout = [l.holdout for l in project.labels]
    n_auto = 0
    if auto_threshold is not None:
        state = current_fit(project)
        auto = np.flatnonzero(project.unlabeled & (state.confidence >= auto_threshold))
        n_auto = len(auto)
        rows += list(auto)
        y += list(state.pred[auto])
        source += ["auto"] * n_auto
        confidence += list(state.confidence[auto])
        holdout += [False] * n_auto
    classes = project.settings.classes
    if out.suffix == ".csv":
        write(write_csv, out, ("id", "path", "label", "source", "confidence", "holdout"), (
            (project.ids[r], project.paths[r], classes[t], s, "" if np.isnan(c) else f"{c:.4f}", int(h))
            for r, t, s, c, h in zip(rows, y, source, confidence, holdout)), record_in=project.root)
    else:
        write(write_npz, out, record_in=project.root, x=project.x[np.array(rows, np.int64)].reshape(len(rows), -1), y=np.array(y, np.int32),
              ids=np.array([project.ids[r] for r in rows], str), classes=np.array(classes),
              source=np.array(source), confidence=np.array(confidence, np.float32), holdout=np.array(holdout, bool))
    return len(project.labels), n_auto
