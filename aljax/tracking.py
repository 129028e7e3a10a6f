"""Export hooks for experiment trackers: a run's per-round metrics, as rows, go to a callable.

A *tracker* is any callable ``tracker(row) -> None`` taking one row, a dict ``{"seed": int, "round":
int, "n_labeled": int, <metric>: float, ...}`` (the columns of ``metrics.csv``), with an optional
``close()``. :func:`on_chunk` turns it into the ``on_chunk`` hook of :func:`aljax.seeds.run_seeds`,
so the rows of each chunk of seeds reach the tracker as soon as the chunk is done (a chunk's seeds
run in one compiled program: rows come per chunk, not per round)::

    from aljax import seeds, tracking

    with tracking.TensorBoard("runs/margin") as board:
        seeds.run_seeds(run, data, hyper, 20, chunk_size=5, outputs=outputs, on_chunk=tracking.on_chunk(board))

From the command line: ``aljax run ... --tracker tensorboard:DIR`` (:data:`TRACKERS`, :func:`tracker_opener`). The one
adapter here, :class:`TensorBoard`, writes TensorBoard event files with tensorboardX (no TensorFlow);
it is optional: ``pip install 'aljax[tracking]'``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import numpy as np

Row = dict[str, Any]
Tracker = Callable[[Row], None]
ChunkHook = Callable[[int, np.ndarray, Any, float], None]


class TrackerError(ValueError):
    """A tracker that cannot be made (unknown name, missing package). The message is one line."""


def chunk_rows(seeds: np.ndarray, result: Mapping[str, Any]) -> Iterator[Row]:
    """The rows of one chunk: ``seeds`` (S,) and ``result``, a mapping whose per-round metrics are
    (S, R) arrays shaped like its ``n_labeled`` (other entries, e.g. the acquisition order, are left
    out); one row per (seed, round), in seed then round order."""
    labels = np.asarray(result["n_labeled"])
    metrics = {name: np.asarray(value) for name, value in result.items()
               if name != "n_labeled" and np.shape(value) == labels.shape}
    for s, seed in enumerate(np.asarray(seeds)):
        for r in range(labels.shape[1]):
            yield {"seed": int(seed), "round": r, "n_labeled": int(labels[s, r]),
                   **{name: float(values[s, r]) for name, values in metrics.items()}}


def on_chunk(tracker: Tracker, then: ChunkHook | None = None) -> ChunkHook:
    """An ``on_chunk(index, seeds, result, seconds)`` hook for :func:`aljax.seeds.run_seeds` that first
    calls ``then`` with the same arguments (e.g. the CLI's checkpoint saver,
    :func:`aljax.store.chunk_saver`: the chunk is saved before a tracker can fail), then gives
    ``tracker`` every row of the chunk (:func:`chunk_rows`)."""

    def hook(index: int, seeds: np.ndarray, result: Any, seconds: float) -> None:
        if then is not None:
            then(index, seeds, result, seconds)
        for row in chunk_rows(seeds, result):
            tracker(row)

    return hook


class TensorBoard:
    """A tracker writing TensorBoard event files into ``logdir`` with tensorboardX (no TensorFlow):
    each metric of a row is a scalar tagged ``METRIC/seed_S`` at step ``n_labeled``, so TensorBoard
    draws one learning curve per seed and metric. A context manager; ``close()`` flushes the file."""

    def __init__(self, logdir: str):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise TrackerError("the tensorboard tracker needs tensorboardX: pip install 'aljax[tracking]' "
                               "(or pip install tensorboardX)") from None
        self.writer = SummaryWriter(logdir=str(logdir))

    def __call__(self, row: Row) -> None:
        for name, value in row.items():
            if name not in ("seed", "round", "n_labeled"):
                self.writer.add_scalar(f"{name}/seed_{row['seed']}", value, global_step=row["n_labeled"])

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> "TensorBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# name -> (factory(ARG) of a tracker, the module it needs), for ``--tracker NAME:ARG``
TRACKERS: dict[str, tuple[Callable[[str], Tracker], str]] = {"tensorboard": (TensorBoard, "tensorboardX")}


def tracker_opener(text: str) -> Callable[[], Tracker]:
    """A function that opens the tracker ``NAME:ARG`` names (``tensorboard:runs/margin``), checked now:
    a one-line TrackerError for an unknown name or a missing package, before anything is written."""
    import importlib.util

    name, colon, arg = text.partition(":")
    if name not in TRACKERS or not colon or not arg:
        choices = ", ".join(f"{n}:DIR" for n in TRACKERS)
        raise TrackerError(f"unknown tracker {text!r}; write NAME:ARG ({choices})")
    factory, needs = TRACKERS[name]
    if importlib.util.find_spec(needs) is None:
        raise TrackerError(f"the {name} tracker needs {needs}: pip install 'aljax[tracking]' (or pip install {needs})")
    return lambda: factory(arg)
