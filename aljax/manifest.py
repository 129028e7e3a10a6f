"""Folder manifests: what aljax wrote into a folder, with each file's SHA-256 and size.

A run folder (:mod:`aljax.store`) and a labeling project (:mod:`aljax.labeling.project`) each keep
``manifest.json``::

    {"schema": 1, "files": {"chunks/chunk-00000.npz": {"sha256": "...", "size": 1234}, ...}}

``schema`` is the folder layout's version: a folder written by a newer aljax (a schema this code
does not know) is refused before anything is computed. A file is written in three steps
(:func:`write`): its new digest is staged in the manifest beside the one it replaces, the file is
renamed into place (:mod:`aljax.atomic`), and the replaced digest is dropped. A crash at any moment
leaves a file that matches its entry, the old content or the new. The manifest itself is rewritten
atomically under an exclusive lock on the folder, so two processes writing into one folder lose no
entry. A later command compares each file with its entry (:func:`status`): a file that is missing,
of another size or checksum, or present but not listed is not trusted. ``--force`` and the like
delete only what a manifest lists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from aljax.atomic import write_json

MANIFEST = "manifest.json"
SCHEMA = 1


class ManifestError(ValueError):
    """A manifest that cannot be used: unreadable, or written by an unknown schema. One line."""


def digest(path: str | Path) -> dict:
    """``{"sha256": hex, "size": bytes}`` of the file ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"sha256": h.hexdigest(), "size": os.path.getsize(path)}


def read(folder: str | Path) -> dict | None:
    """The manifest of ``folder`` (``{"schema": 1, "files": {name: digest}}``), or None if it has none.

    Raises :class:`ManifestError` on an unreadable manifest or an unknown schema.
    """
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        schema, files = manifest["schema"], manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a table")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ManifestError(f"{path} is damaged or not aljax's ({type(err).__name__}); if aljax wrote it, delete it "
                            f"(aljax then checks the folder's files as for a folder written before manifests), "
                            f"otherwise choose another folder") from None
    if schema != SCHEMA:
        raise ManifestError(f"{Path(folder)} was written by an aljax with folder layout {schema!r} (this one knows "
                            f"layout {SCHEMA}); use that version of aljax, or choose another folder")
    return manifest


@contextlib.contextmanager
def locked(folder: str | Path):
    """An exclusive lock on ``folder`` (flock on the folder itself: no lock file is left behind)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def update(folder: str | Path, record: dict[str, dict] | None = None, forget=()) -> None:
    """Set the entries ``record`` (name -> :func:`digest`) and remove the names ``forget`` in the
    manifest of ``folder`` (created if missing), atomically and under :func:`locked`."""
    folder = Path(folder)
    with locked(folder):
        manifest = read(folder) or {"schema": SCHEMA, "files": {}}
        for name in forget:
            manifest["files"].pop(name, None)
        manifest["files"].update(record or {})
        write_json(folder / MANIFEST, manifest)


def write(folder: str | Path, name: str, save, path: str | Path, *args, **kwargs) -> Path:
    """``save(path, *args, before_replace=..., **kwargs)`` with one of :mod:`aljax.atomic`'s writers,
    ``path`` being ``folder / name``, recorded in the manifest of ``folder`` as described above."""
    def stage(tmp: Path) -> None:
        with locked(folder):
            manifest = read(folder) or {"schema": SCHEMA, "files": {}}
            old = manifest["files"].get(name)
            entry = digest(tmp)
            if old is not None:
                entry["previous"] = {k: old[k] for k in ("sha256", "size") if k in old}
            manifest["files"][name] = entry
            write_json(Path(folder) / MANIFEST, manifest)

    written = save(path, *args, before_replace=stage, **kwargs)
    with locked(folder):
        manifest = read(folder)
        entry = {} if manifest is None else manifest["files"].get(name, {})
        if entry.pop("previous", None) is not None:
            write_json(Path(folder) / MANIFEST, manifest)
    return written


def add(folder: str | Path, *paths: str | Path) -> None:
    """Record the files ``paths`` (inside ``folder``) as written by aljax, with their current content."""
    folder = Path(folder)
    update(folder, {Path(p).relative_to(folder).as_posix(): digest(p) for p in paths})


def status(folder: str | Path, name: str, manifest: dict) -> str:
    """``"ok"`` if ``folder/name`` matches its entry in ``manifest``; else ``"missing"`` (no file),
    ``"unlisted"`` (a file with no entry) or ``"damaged"`` (size or checksum differ)."""
    path, entry = Path(folder) / name, manifest["files"].get(name)
    if not path.is_file():
        return "missing"
    if entry is None:
        return "unlisted"
    accepted = [entry, entry.get("previous") or {}]  # the new content, or the one it replaces (see above)
    size = path.stat().st_size
    if not any(size == e.get("size") for e in accepted):
        return "damaged"
    found = digest(path)["sha256"]
    return "ok" if any(found == e.get("sha256") and size == e.get("size") for e in accepted) else "damaged"
