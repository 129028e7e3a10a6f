"""mkdocs hooks (mkdocs.yml ``hooks:``): the parts of the site that are generated from the code at build
time, so they cannot drift from it.

A page asks for a generated part with a marker line, ``<!-- generated: NAME -->``, replaced by:

* a registry's heading in ``aljax.cli.REGISTRIES`` (``strategies``, ``combinators``, ``models``,
  ``fitters``, ``optimizers``, ``protocols``, and any registry added there): a table of it (name, what it
  does, settings with defaults, declared traits), as ``aljax list`` lists it;
* ``cli``: every ``aljax`` subcommand's ``--help``, from the argparse parsers the command runs;
* ``tutorials``: every ``docs/tutorials/*.py`` (its docstring as text, then its source).

The docstrings' Sphinx roles (``:func:``) are dropped from the rendered API reference.
"""

from __future__ import annotations

import argparse
import ast
import html
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
MARKER = re.compile(r"^<!-- generated: (\w+) -->$", re.MULTILINE)

def _escape_cell(text: str) -> str:
    return html.escape(text).replace("|", "\\|").replace("\n", " ")


def _traits(entry) -> str:
    """The traits declared True on a registry entry (``aljax.declare``), e.g. ``batch-aware, stochastic``."""
    from aljax import declare

    found = declare.declaration(entry)
    if found is None:
        return "not declared"
    return ", ".join(name.replace("_", "-") for name, on in found.traits.items() if on) or "none"


def registry_table(heading: str) -> str:
    """A markdown table of the ``aljax list`` section ``heading`` (its registry, read now)."""
    import importlib

    from aljax import cli
    from aljax.spec import settings_of

    found = [entry for entry in cli.REGISTRIES if entry[0].split(" (")[0] == heading]
    if not found:
        raise KeyError(f"no registry {heading!r} in aljax.cli.REGISTRIES")
    _, module, attr, form = found[0]
    registry = getattr(importlib.import_module(module), attr)
    rows = ["| name | what it does | settings (defaults) | declared traits |", "|---|---|---|---|"]
    for name, entry in registry.items():
        score = getattr(entry, "score", entry)
        settings = settings_of(score) if callable(score) else {}
        listed = ", ".join(f"`{k}={v}`" for k, v in settings.items()) or "—"
        rows.append(f"| `{form.format(name)}` | {_escape_cell(cli.first_sentence(entry))} | {listed} | "
                    f"{_traits(entry)} |")
    return "\n".join(rows)


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse keeps subcommands here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def cli_reference() -> str:
    """Every subcommand's ``--help``, as the command prints it (COLUMNS fixed for stable output)."""
    import os

    from aljax import cli

    os.environ["COLUMNS"] = "100"
    parser = cli.build_parser()
    parts = ["## `aljax`", "", "```text", parser.format_help().rstrip(), "```"]

    def walk(prefix: str, sub: argparse.ArgumentParser, depth: int) -> None:
        for name, child in _subparsers(sub):
            parts.extend(["", f"{'#' * depth} `{prefix} {name}`", "", "```text", child.format_help().rstrip(), "```"])
            walk(f"{prefix} {name}", child, depth + 1)

    walk("aljax", parser, 2)
    return "\n".join(parts)


def tutorials() -> str:
    """Each tutorial script: its docstring as text, how to run it, then its code."""
    parts = []
    for script in sorted((DOCS / "tutorials").glob("*.py")):
        source = script.read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        title, _, body = doc.partition("\n")
        code = source.split('"""', 2)[2].lstrip("\n") if source.lstrip().startswith('"""') else source
        parts += [f"## {script.stem[:2].lstrip('0')}. {title.rstrip('.')}", "", body.strip(), "",
                  f"[`docs/tutorials/{script.name}`](tutorials/{script.name}):", "", "```python", code.rstrip(),
                  "```", ""]
    return "\n".join(parts)


# any other marker NAME is the registry of that heading in aljax.cli.REGISTRIES (what `aljax list` shows)
GENERATORS = {"cli": cli_reference, "tutorials": tutorials}


def on_page_markdown(markdown: str, page, config, files):
    def fill(match: re.Match) -> str:
        name = match.group(1)
        try:
            return GENERATORS[name]() if name in GENERATORS else registry_table(name)
        except KeyError as err:
            raise KeyError(f"{page.file.src_path}: unknown generated part {name!r} ({err})") from None

    return MARKER.sub(fill, markdown)


SPHINX_ROLE = re.compile(r":(?:func|class|mod|data|meth|attr|obj):(?=<code>)")


def on_page_content(html_text: str, page, config, files):
    """The docstrings' Sphinx roles (``:func:`make_run```) rendered as plain code, not ``:func:make_run``."""
    return SPHINX_ROLE.sub("", html_text).replace("<code>~", "<code>")
