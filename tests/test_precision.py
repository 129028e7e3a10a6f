"""The precision policy (aljax.precision): CPU tolerances stay as they are, accelerators allow TF32
rounding and still fail on a real error, exact results run on the CPU device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax import precision
from aljax.testing import assert_close

EXPECTED = np.linspace(-3.0, 5.0, 50, dtype=np.float32)
TF32_ROUNDED = EXPECTED * (1 + 2e-3 * np.sign(np.sin(np.arange(50))))  # the relative error seen on an H200


def test_cpu_keeps_the_stated_tolerance_and_accelerators_widen_it():
    assert precision.tolerance(1e-6, 0.0, scale=5.0, platform="cpu") == (1e-6, 0.0)
    assert precision.tolerance(0.0, 0.0, platform="cpu") == (0.0, 0.0)  # exact stays exact
    for platform in ("gpu", "tpu"):
        assert precision.tolerance(1e-6, 0.0, scale=5.0, platform=platform) == (precision.ACCELERATOR_RTOL,
                                                                                 5 * precision.ACCELERATOR_RTOL)
        assert precision.tolerance(0.1, 1.0, scale=5.0, platform=platform) == (0.1, 1.0)  # never narrower


def test_assert_close_allows_tf32_rounding_on_an_accelerator_only():
    with pytest.raises(AssertionError):
        assert_close(TF32_ROUNDED, EXPECTED, rtol=1e-6, platform="cpu")
    assert_close(TF32_ROUNDED, EXPECTED, rtol=1e-6, platform="gpu")
    with pytest.raises(AssertionError):  # exact on CPU: one float32 ulp fails
        assert_close(np.nextafter(EXPECTED, np.float32(9)), EXPECTED, rtol=0.0, platform="cpu")


@pytest.mark.parametrize("wrong", [EXPECTED * 1.05, EXPECTED[::-1], np.roll(EXPECTED, 1)])
def test_assert_close_fails_on_a_real_error_on_an_accelerator(wrong):
    with pytest.raises(AssertionError):
        assert_close(wrong, EXPECTED, rtol=1e-6, platform="gpu")


def test_infinite_values_must_match_and_do_not_set_the_scale():
    expected = np.array([-np.inf, 1.0, 2.0], np.float32)
    assert_close(np.array([-np.inf, 1.001, 2.0]), expected, rtol=1e-6, platform="gpu")
    with pytest.raises(AssertionError):
        assert_close(np.array([0.0, 1.0, 2.0]), expected, platform="gpu")


def test_exact_results_run_on_the_cpu_device():
    with precision.on_exact_device() as device:
        out = jax.jit(lambda x: x @ x.T)(jnp.ones((3, 4)))
    assert device.platform == "cpu" and out.devices() == {device}
    assert precision.describe(device) == "cpu"


@pytest.mark.gpu
def test_a_gpu_float32_product_is_within_the_policy_and_the_exact_device_is_the_cpu():
    x = jax.random.normal(jax.random.key(0), (256, 784))
    w = jax.random.normal(jax.random.key(1), (784, 10))
    exact = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    assert_close(x @ w, exact, rtol=1e-6)  # TF32 or not, the default product meets the GPU tolerance
    assert jax.devices()[0].platform == "gpu" and precision.exact_device().platform == "cpu"
    assert precision.describe(jax.devices()[0]).startswith("gpu (")
