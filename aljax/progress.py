"""A progress bar with ETA over the rounds and seed chunks of one compiled experiment.

The experiment is one compiled program per chunk of seeds, so progress is reported from inside it:
:meth:`Progress.on_round` is the host hook given to ``make_run(config, on_round=...)`` (a
``jax.debug.callback`` at the start of every round of the scan; the round index is not batched over
seeds, so it fires once per round). The bar is drawn by tqdm on stderr, only when stderr is a
terminal and not ``quiet``; when disabled no hook is compiled in at all (see :attr:`hook`).
"""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    """Bar over ``n_chunks x rounds`` ticks: chunk ``c`` at round ``i`` is tick ``c * rounds + i``."""

    def __init__(self, n_chunks: int, rounds: int, quiet: bool = False, stream=None):
        stream = sys.stderr if stream is None else stream
        self.enabled = not quiet and stream.isatty()
        self.rounds = rounds
        self.base = 0
        self.bar = tqdm(total=n_chunks * rounds, unit="round", file=stream, disable=not self.enabled,
                        dynamic_ncols=True, smoothing=0.1)

    @property
    def hook(self):
        """The ``on_round`` callback for :func:`aljax.loop.make_run`, or None when the bar is off."""
        return self.on_round if self.enabled else None

    def start_chunk(self, position: int, first_seed: int, last_seed: int, n_chunks: int) -> None:
        """Announce the ``position``-th chunk to run (0-based) holding seeds ``first..last``."""
        self.base = position * self.rounds
        self.bar.set_description(f"chunk {position + 1}/{n_chunks} seeds {first_seed}-{last_seed}")

    def on_round(self, i) -> None:
        """Round ``i`` of the current chunk is starting (called from the XLA runtime thread)."""
        self.advance(self.base + int(i))

    def end_chunk(self) -> None:
        self.advance(self.base + self.rounds)

    def advance(self, tick: int) -> None:
        if tick > self.bar.n:
            self.bar.update(tick - self.bar.n)

    def close(self) -> None:
        self.bar.close()
