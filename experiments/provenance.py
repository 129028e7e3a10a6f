"""What every report prints under each of its tables: the exact command that reproduces it, how that
command ran (the schedule and chunk size of its seeds), the kind of machine it ran on, and what may
differ elsewhere. The study, the reproduction, the deep experiments, the benchmarks and the GPU check
all print these lines through :func:`reproduce_lines`, so the committed reports say it the same way."""

from __future__ import annotations

import os
import shlex

import jax

from aljax import precision

# What changes on another machine or program shape: float32 sums and products round differently when
# batched differently (another chunk size or schedule) or computed on another backend (TF32 on a GPU).
DIGITS_MAY_DIFFER = ("another machine kind, `--schedule` or `--chunk-size` rounds batched float32 products "
                     "differently, so expect the same intervals, not the same digits")
TIMES_DIFFER = "times depend on the machine and its load: compare ratios measured side by side in one run"


def machine() -> dict:
    """The machine a report ran on: ``kind`` (``"CPU"``, ``"GPU"``, ``"TPU"``), the first device in
    words, the number of devices and of host cores."""
    device = jax.devices()[0]
    return {"kind": device.platform.upper(), "device": precision.describe(device), "devices": jax.device_count(),
            "cores": os.cpu_count()}


def machine_words(m: dict) -> str:
    """``"CPU (1 cpu device, 2 cores)"`` from :func:`machine`'s dict."""
    plural = "s" if m["devices"] != 1 else ""
    return f"{m['kind']} ({m['devices']} {m['device']} device{plural}, {m['cores']} cores)"


def script(name: str, argv: list[str] | tuple[str, ...] = ()) -> str:
    """The shell command that runs ``experiments/NAME`` with ``argv``, from the checkout's root."""
    return shlex.join(["python", f"experiments/{name}", *argv])


def reproduce_lines(what: str, commands: list[str], ran_on: str, how: str = "",
                    elsewhere: str = DIGITS_MAY_DIFFER) -> list[str]:
    """The paragraph under a table: ``Reproduce WHAT: `cmd`; `cmd`. How: HOW. Ran on: RAN_ON.
    Elsewhere: ELSEWHERE.`` (with a blank line before it, as a Markdown paragraph)."""
    text = f"Reproduce {what}: " + "; ".join(f"`{c}`" for c in commands) + "."
    if how:
        text += f" How: {how}."
    return ["", text + f" Ran on: {ran_on}. Elsewhere: {elsewhere}."]
