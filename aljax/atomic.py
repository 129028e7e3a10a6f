"""Atomic file writes: write a temporary file beside the target, fsync, then rename over it.

A crash or Ctrl-C at any moment leaves either the old file or the new one, never a half-written
file under the final name. Every module that writes results or project state uses these.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable, before_replace: Callable | None = None) -> Path:
    """Call ``write(file)`` on a temporary binary file beside ``path``, then rename it to ``path``.

    ``before_replace(tmp)``, if given, runs on the whole temporary file just before the rename (a
    folder's manifest records it there, so a file under its final name is always already recorded).
    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# Every writer below takes ``before_replace`` (see :func:`atomic_write`) as a keyword.


def write_text(path: str | Path, text: str, before_replace: Callable | None = None) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()), before_replace)


def write_json(path: str | Path, obj, indent: int = 2, before_replace: Callable | None = None) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n", before_replace)


def write_npz(path: str | Path, /, *, before_replace: Callable | None = None, **arrays: np.ndarray) -> Path:
    return atomic_write(path, lambda f: np.savez(f, **arrays), before_replace)


def write_npy(path: str | Path, array: np.ndarray, before_replace: Callable | None = None) -> Path:
    return atomic_write(path, lambda f: np.save(f, array), before_replace)


def write_figure(path: str | Path, fig, dpi: int = 120, before_replace: Callable | None = None) -> Path:
    """Save a matplotlib figure (format from the suffix, e.g. ``.png``) atomically."""
    path = Path(path)
    return atomic_write(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=dpi),
                        before_replace)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell that starts so as a formula


def escape_cell(value) -> str:
    """The CSV text of ``value``, with a leading ``'`` where a spreadsheet would run it as a formula
    (OWASP's rule for CSV injection); :func:`unescape_cell` reads it back."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) or unescape_cell(text) != text else text


def unescape_cell(text: str) -> str:
    """The value :func:`escape_cell` wrote."""
    return text[1:] if text.startswith("'") and text[1:].startswith((*FORMULA_START, "'")) else text


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence],
              before_replace: Callable | None = None) -> Path:
    """A CSV file; text cells a spreadsheet would run as formulas are escaped (:func:`escape_cell`)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow([escape_cell(h) for h in header])
    writer.writerows([c if isinstance(c, (int, float)) else escape_cell(c) for c in row] for row in rows)
    return write_text(path, buf.getvalue(), before_replace)
