"""What float32 means on each backend: aljax's precision policy, in one place.

* **Statistical results run anywhere, at the backend's default precision.** Many seeds, learning
  curves, distributions, deep models: aljax leaves JAX's default matmul precision alone, so on a
  recent NVIDIA GPU float32 products use TF32 (10-bit mantissa inputs, float32 accumulation;
  relative errors near 2e-3 were measured on an H200), and XLA may sum in another order than on CPU.
  A seed's AL path on a GPU therefore differs from its CPU path (a rounding changes which point is
  picked), while the distributions over seeds agree.
* **Exact results run on the CPU backend**, even where a GPU is present: the article's table
  (``make reproduce``, ``experiments/reproduce.py``, the article test) runs inside
  :func:`on_exact_device`. ``JAX_DEFAULT_MATMUL_PRECISION=highest`` is not enough on a GPU (measured:
  88.00 % instead of 89.75 % for the least-confidence row), since the reduction order still differs.
  For ``aljax run --protocol seed`` on a GPU machine, ``JAX_PLATFORMS=cpu aljax run ...`` gives the
  CPU numbers.
* **Tests compare with the backend's tolerance** (:func:`tolerance`, through
  :func:`aljax.testing.assert_close`): each comparison states its CPU tolerance, which stays as it is
  on CPU (a comparison exact on CPU stays exact there); on GPU and TPU the tolerance widens to
  :data:`ACCELERATOR_RTOL`, relative to each value and to the largest expected magnitude (the
  absolute rounding of a sum that cancels), which a real error (a wrong mask, member or formula:
  relative errors of order 1) still fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax

# Relative error allowed on GPU and TPU: 5x the ~2e-3 of TF32 products measured on an H200.
ACCELERATOR_RTOL = 1e-2
EXACT_PLATFORM = "cpu"


def backend() -> str:
    """The platform JAX computes on by default: ``"cpu"``, ``"gpu"`` or ``"tpu"``."""
    return jax.default_backend()


def tolerance(rtol: float, atol: float, scale: float = 0.0, platform: str | None = None) -> tuple[float, float]:
    """The ``(rtol, atol)`` to compare float32 results with on ``platform`` (default: :func:`backend`),
    for a comparison whose CPU tolerance is ``(rtol, atol)`` and whose expected values reach magnitude
    ``scale``: unchanged on CPU; on an accelerator at least :data:`ACCELERATOR_RTOL` relative, and
    ``ACCELERATOR_RTOL * scale`` absolute."""
    if (platform or backend()) == EXACT_PLATFORM:
        return rtol, atol
    return max(rtol, ACCELERATOR_RTOL), max(atol, ACCELERATOR_RTOL * scale)


def exact_device() -> jax.Device:
    """The device exact results run on: the first CPU device (present whatever the accelerator,
    unless ``JAX_PLATFORMS`` leaves the CPU out). Raises RuntimeError saying how to fix that."""
    try:
        return jax.devices(EXACT_PLATFORM)[0]
    except RuntimeError:
        raise RuntimeError("the exact results run on JAX's CPU backend, which JAX_PLATFORMS leaves out; "
                           "add cpu to it (e.g. JAX_PLATFORMS=cuda,cpu) or unset it") from None


@contextlib.contextmanager
def on_exact_device() -> Iterator[jax.Device]:
    """Run what the block computes on :func:`exact_device`: arrays it creates and jitted calls on
    uncommitted arrays land there (pass data through ``jax.device_put(data, device)`` to be sure).
    Yields the device."""
    device = exact_device()
    with jax.default_device(device):
        yield device


def describe(device: jax.Device) -> str:
    """A device in words for reports: ``"cpu"``, ``"gpu (NVIDIA H200)"``."""
    return device.platform if device.platform == "cpu" else f"{device.platform} ({device.device_kind})"
