"""The package's face: every advertised name resolves, and importing aljax does not import JAX."""

import subprocess
import sys

import aljax


def test_every_public_name_resolves():
    for name in aljax.__all__:
        assert getattr(aljax, name) is not None, name


def test_import_aljax_is_cheap():
    code = "import sys, aljax; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
