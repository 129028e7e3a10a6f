"""Names with settings, as users write them: ``"mlp(hidden=256,dropout=0.5)"``, ``"adam(b1=0.8)"``,
``"subsample(margin,500)"``, or an out-of-tree ``"my_package.my_module:my_cnn(width=32)"``.

:func:`parse` turns such a string into a hashable :class:`Spec` (name, positional arguments, keyword
settings). A positional argument that is a name becomes a nested :class:`Spec`, so combinators nest:
``"epsilon(alternate(kcenter,margin),0.1)"``. Numbers become ``int`` or ``float``; ``true``/``false``
become ``bool``; anything else after ``=`` stays a string. Every registry of the package (models,
fitters, optimisers, strategies) is looked up through :func:`build`, which gives one-line errors with
a closest-match hint.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from typing import Any, Callable, Mapping

Value = Any  # int | float | bool | str | Spec


class SpecError(ValueError):
    """A malformed or unknown spec. The message is one line and says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """``name(args..., key=value...)``: args a tuple of values, kwargs a sorted tuple of (key, value)."""

    name: str
    args: tuple[Value, ...] = ()
    kwargs: tuple[tuple[str, Value], ...] = ()

    def __str__(self) -> str:
        parts = [str(a) for a in self.args] + [f"{k}={_format(v)}" for k, v in self.kwargs]
        return f"{self.name}({','.join(parts)})" if parts else self.name


def _format(value: Value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _split_args(text: str) -> list[str]:
    """Split ``text`` at the commas that are not inside parentheses."""
    args, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            args.append(text[start:i])
            start = i + 1
    return args + [text[start:]]


def _scalar(text: str) -> Value:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True; any other text is returned as it is."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse(text: str | Spec) -> Spec:
    """The :class:`Spec` of ``text`` (spaces ignored). Raises :class:`SpecError` if malformed."""
    if isinstance(text, Spec):
        return text
    return _parse(text.replace(" ", ""), text)


def _parse(text: str, whole: str) -> Spec:
    head, paren, rest = text.partition("(")
    if not head or text.count("(") != text.count(")") or (paren and not rest.endswith(")")):
        raise SpecError(f"malformed name {whole!r}; write NAME or NAME(ARG,...,KEY=VALUE)")
    if not paren:
        return Spec(head)
    args, kwargs = [], {}
    for part in _split_args(rest[:-1]) if rest[:-1] else []:
        key, eq, value = part.partition("=")
        if eq and "(" not in key:
            if not key.isidentifier() or not value:
                raise SpecError(f"malformed setting {part!r} in {whole!r}; write KEY=VALUE")
            kwargs[key] = _scalar(value)
        elif kwargs:
            raise SpecError(f"positional argument {part!r} after a KEY=VALUE setting in {whole!r}")
        elif not part:
            raise SpecError(f"empty argument in {whole!r}")
        else:
            value = _scalar(part)
            args.append(_parse(part, whole) if isinstance(value, str) else value)
    return Spec(head, tuple(args), tuple(sorted(kwargs.items())))


def unknown(kind: str, name: str, valid) -> str:
    """One line: ``unknown KIND 'NAME'; did you mean ...? (choose one of: ...)``."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (choose one of: {', '.join(valid)})"


def settings_of(factory: Callable) -> dict[str, Any]:
    """The keyword settings a registry factory accepts, with their defaults (``aljax list`` shows them)."""
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.kind is p.KEYWORD_ONLY or (p.default is not p.empty and p.kind is p.POSITIONAL_OR_KEYWORD)
    }


def load(name: str, kind: str) -> Any:
    """The object ``package.module:attribute`` names (an out-of-tree model, fitter, strategy, ...),
    if it was declared as a ``kind`` with :mod:`aljax.declare`; otherwise a one-line
    :class:`SpecError`, before anything is called. Importing the module runs its top-level code: a
    name in a spec or a TOML config is code, to be given only for modules one trusts."""
    from aljax import declare

    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise SpecError(f"{kind} {name!r}: cannot import {module_name!r} ({err}); is it on PYTHONPATH?") from None
    except Exception as err:  # noqa: BLE001 - the module's own code failed while importing
        raise SpecError(f"{kind} {name!r}: importing {module_name!r} failed ({type(err).__name__}: {err}); "
                        f"fix that module") from None
    if not hasattr(module, attribute):
        raise SpecError(f"{kind} {name!r}: module {module_name!r} has no {attribute!r}")
    obj = getattr(module, attribute)
    if not declare.is_declared(obj, kind):
        found = declare.declaration(obj)
        what = f"is declared as a {found.kind}, not a {kind}" if found else f"is not a declared aljax {kind}"
        raise SpecError(f"{kind} {name!r} {what}; decorate it with @aljax.declare.{kind}")
    return obj


def lookup(registry: Mapping[str, Callable], name: str, kind: str) -> Callable:
    """``registry[name]``, or the out-of-tree object ``name`` = ``package.module:attribute`` names;
    otherwise a one-line :class:`SpecError` naming the closest entry."""
    if ":" in name:
        return load(name, kind)
    if name not in registry:
        raise SpecError(unknown(kind, name, registry))
    return registry[name]


def check(registry: Mapping[str, Callable], text: str | Spec, kind: str, *args: Any) -> Spec:
    """The spec ``text`` if its factory (:func:`lookup`) would bind ``(*args, *spec.args,
    **spec.kwargs)``, without calling it; otherwise a one-line :class:`SpecError` naming the closest
    entry or the settings the entry accepts."""
    spec = parse(text)
    factory = lookup(registry, spec.name, kind)
    accepted = settings_of(factory)
    for key, _ in spec.kwargs:
        if key not in accepted:
            listed = ", ".join(f"{k}={_format(v)}" for k, v in accepted.items()) or "none"
            raise SpecError(f"{kind} {spec.name!r} has no setting {key!r} (settings: {listed})")
    try:
        inspect.signature(factory).bind(*args, *spec.args, **dict(spec.kwargs))
    except TypeError as err:
        raise SpecError(f"bad arguments in {kind} {str(spec)!r}: {err}") from None
    return spec


def build(registry: Mapping[str, Callable], text: str | Spec, kind: str, *args: Any) -> Any:
    """``registry[name](*args, *spec.args, **spec.kwargs)`` for the spec ``text``, checked first
    (:func:`check`)."""
    spec = check(registry, text, kind, *args)
    return lookup(registry, spec.name, kind)(*args, *spec.args, **dict(spec.kwargs))
