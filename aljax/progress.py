"""Progress over the seed chunks (and rounds) of one compiled experiment, with an ETA.

On a terminal, a tqdm bar over ``chunks x rounds`` ticks: :meth:`Progress.on_round` is the host hook
given to ``make_run(config, on_round=...)`` (a ``jax.debug.callback`` at the start of every round of
the scan; the round index is not batched over seeds, so it fires once per round). Without a terminal
(``nohup``, a log file, a notebook's captured stderr) no hook is compiled in at all (see
:attr:`Progress.hook`) and one line is printed per finished chunk, with the elapsed time and an ETA,
so a log shows where a long run is.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


class Progress:
    """Progress of ``n_chunks`` chunks of ``rounds`` rounds each (the ``p``-th chunk to run, round
    ``i`` = tick ``p * rounds + i``). ``quiet``: nothing at all. ``stream``: stderr by default; the bar
    is drawn only when it is a terminal, otherwise one line per finished chunk. Given ``chunk_size``
    and ``total_chunks`` (the run's, finished ones included), chunks are named by their index
    (``chunk 3/5``), so a resumed run numbers them as the first invocation did."""

    def __init__(self, rounds: int = 1, quiet: bool = False, stream=None, chunk_size: int | None = None,
                 total_chunks: int | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.terminal = not quiet and self.stream.isatty()
        self.lines = not quiet and not self.terminal
        self.rounds = max(int(rounds), 1)
        self.base = 0
        self.n_chunks = 0
        self.bar = None
        self.chunk_size, self.total_chunks = chunk_size, total_chunks

    @property
    def hook(self):
        """The ``on_round`` callback for :func:`aljax.loop.make_run`, or None when no bar is drawn."""
        return self.on_round if self.terminal else None

    def begin(self, n_chunks: int) -> None:
        """``n_chunks`` chunks are about to run (after compilation)."""
        self.n_chunks, self.done, self.t0 = n_chunks, 0, time.perf_counter()
        self.bar = tqdm(total=n_chunks * self.rounds, unit="round", file=self.stream, disable=not self.terminal,
                        dynamic_ncols=True, smoothing=0.1)

    def start_chunk(self, position: int, first_seed: int, last_seed: int) -> None:
        """The ``position``-th chunk to run (0-based) holds seeds ``first..last``."""
        self.base, self.seeds = position * self.rounds, f"seeds {first_seed}-{last_seed}"
        if self.chunk_size and self.total_chunks:  # named by the chunk's index in the whole run
            self.name = f"chunk {first_seed // self.chunk_size + 1}/{self.total_chunks}"
        else:
            self.name = f"chunk {position + 1}/{self.n_chunks}"
        self.bar.set_description(f"{self.name} {self.seeds}")

    def on_round(self, i) -> None:
        """Round ``i`` of the current chunk is starting (called from the XLA runtime thread)."""
        self.advance(self.base + int(i))

    def end_chunk(self) -> None:
        self.advance(self.base + self.rounds)
        self.done += 1
        if self.lines:
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / self.done * (self.n_chunks - self.done)
            print(f"{self.name} ({self.seeds}) done; elapsed {duration(elapsed)}, ETA {duration(eta)}",
                  file=self.stream, flush=True)

    def advance(self, tick: int) -> None:
        if tick > self.bar.n:
            self.bar.update(tick - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
