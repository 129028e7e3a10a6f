"""The package installs anywhere: the built wheel, installed into a fresh virtual environment, gives a
working ``aljax`` command that runs from a folder outside the checkout.

The fresh environment reuses this interpreter's installed dependencies (a ``.pth`` line pointing at
this environment's site-packages) and installs only the wheel, with ``--no-deps``: CI reaches no
package index for this, and reinstalling JAX would take minutes.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from test_cli import SMALL, blobs_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel built from a copy of the sources, installed into a fresh venv; where things are."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT / "aljax", src / "aljax", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("aljax-*.whl")

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # after the fresh venv's own site-packages: this environment's, for jax & co (an editable aljax
    # there is a .pth of that folder, which a .pth line does not process, so it stays invisible)
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    work = tmp / "elsewhere"  # outside the checkout: no pyproject.toml, no .git, no data/
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ALJAX_DATA", "VIRTUAL_ENV")}
    env = clean | {"XDG_DATA_HOME": str(tmp / "xdg"), "JAX_PLATFORMS": "cpu", "PATH": f"{env_dir / 'bin'}:"
                   f"{clean.get('PATH', '')}"}
    return {"wheel": wheel, "bin": env_dir / "bin", "python": python, "work": work, "env": env, "tmp": tmp}


def aljax(installed, *args):
    return subprocess.run([installed["bin"] / "aljax", *map(str, args)], cwd=installed["work"],
                          env=installed["env"], capture_output=True, text=True, timeout=300)


def test_wheel_carries_py_typed_and_no_tests(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "aljax/py.typed" in names
    assert not any(n.startswith(("tests/", "experiments/", "docs/")) for n in names)


def test_installed_aljax_runs_outside_the_checkout(installed):
    where = subprocess.run([installed["python"], "-c", "import aljax, aljax.data as d; print(aljax.__file__); "
                            "print(aljax.__version__); print(*d.find_data_dir())"],
                           cwd=installed["work"], env=installed["env"], capture_output=True, text=True, check=True)
    module, version, data_dir = where.stdout.splitlines()
    assert not Path(module).resolve().is_relative_to(ROOT)  # the wheel's copy, not the checkout's
    assert version == ast.literal_eval(next(line.split("=", 1)[1].strip() for line in
                                            (ROOT / "pyproject.toml").read_text().splitlines()
                                            if line.startswith("version")))
    assert data_dir == f"{installed['tmp'] / 'xdg' / 'aljax'} user"  # the user's data folder

    done = aljax(installed, "--help")
    assert done.returncode == 0 and "fetch" in done.stdout and "run" in done.stdout

    # a named dataset not fetched yet: one line that says to fetch it into the user's data folder
    missing = aljax(installed, "run", "--dataset", "mnist", "--quiet", "--out", "results/none")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert str(installed["tmp"] / "xdg" / "aljax" / "mnist") in missing.stderr

    # reproduce needs the checkout: one line that says so
    repro = aljax(installed, "reproduce")
    assert repro.returncode == 2 and repro.stderr.count("\n") == 1 and "checkout" in repro.stderr

    # a tiny run, relative paths resolved against the folder it runs in
    blobs = blobs_dataset(installed["work"] / "blobs")
    run = aljax(installed, "run", "--dataset", f"idx:{blobs}", *SMALL, "--out", "results/tiny")
    assert run.returncode == 0, run.stderr
    out = installed["work"] / "results" / "tiny"
    assert (out / "metrics.csv").exists()
    environment = json.loads((out / "environment.json").read_text())
    assert environment["git_commit"] is None  # installed: no checkout to name a commit of


def test_public_names_are_spelled_out_for_type_checkers():
    """aljax/__init__.py's TYPE_CHECKING imports (what mypy sees) name exactly its lazy exports."""
    tree = ast.parse((ROOT / "aljax" / "__init__.py").read_text())
    exports = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], "id", "") == "_EXPORTS")
    lazy = {(module.value, name.value) for module, names in zip(exports.keys, exports.values) for name in names.elts}
    checking = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    typed = {(f"aljax.{a.name}" if imp.module == "aljax" else imp.module, a.name if imp.module != "aljax" else None)
             for imp in checking.body for a in imp.names}
    assert {(m, n) for m, n in typed if n is not None} == lazy
