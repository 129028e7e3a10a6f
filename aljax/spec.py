"""Names with settings, as users write them: ``"mlp(hidden=256,dropout=0.5)"``, ``"adam(b1=0.8)"``,
``"subsample(margin,500)"``, or an out-of-tree ``"my_package.my_module:my_cnn(width=32)"``.

:func:`parse` turns such a string into a hashable :class:`Spec` (name, positional arguments, keyword
settings). A positional argument that is a name becomes a nested :class:`Spec`, so combinators nest:
``"epsilon(alternate(kcenter,margin),0.1)"``. Numbers become ``int`` or ``float``; ``true``/``false``
become ``bool``; anything else after ``=`` stays a string. Every registry of the package (models,
fitters, optimisers, strategies) is looked up through :func:`build`, which gives one-line errors with
a closest-match hint.

Every setting has a domain, declared on its factory's signature with ``typing.Annotated``::

    def mlp(n_classes, *, hidden: Count = 128, dropout: Fraction = 0.0) -> Model: ...
    def sgd(learning_rate, *, momentum: Annotated[float, Range(0, 1, high_open=True)] | None = None): ...

A setting's domain is its type (``int``, ``float``, ``bool``, ``str``; ``| None`` allows None) and
the :class:`Domain` objects in its ``Annotated`` metadata: :class:`Range`, :class:`Choice` or
:class:`SpecOf` (a nested spec). :data:`Count`, :data:`Positive`, :data:`NonNegative`,
:data:`Fraction` and :data:`Probability` name the common ones. :func:`check` (and so :func:`build`)
validates every value against its domain before the factory is called: ``model 'mlp': setting
hidden must be an integer >= 1, got -3``. An out-of-tree factory declares its domains the same way;
a plain ``int``/``float``/``bool``/``str`` annotation checks the type only.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import math
import re
import types
import typing
from typing import Annotated, Any, Callable, Mapping

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


# ----------------------------------------------------------------------------- domains


class Domain:
    """A constraint on a setting's value, put in ``typing.Annotated`` metadata on its factory's
    signature: ``describe()`` says what a value must be (``"in [0, 1)"``), ``problem(value)`` is None
    for a value inside the domain and otherwise says what it must be."""

    def describe(self) -> str:
        raise NotImplementedError

    def problem(self, value: Value) -> str | None:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Range(Domain):
    """A number between ``low`` and ``high`` (None: unbounded), inclusive unless ``low_open`` /
    ``high_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high}"

    def problem(self, value: Value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return self.describe()
        inside = ((self.low is None or (value > self.low if self.low_open else value >= self.low))
                  and (self.high is None or (value < self.high if self.high_open else value <= self.high)))
        return None if inside else self.describe()


@dataclasses.dataclass(frozen=True)
class Choice(Domain):
    """One of ``values``."""

    values: tuple[Value, ...]

    def describe(self) -> str:
        return f"one of: {', '.join(_format(v) for v in self.values)}"

    def problem(self, value: Value) -> str | None:
        return None if value in self.values else self.describe()


@dataclasses.dataclass(frozen=True)
class Pattern(Domain):
    """A name that matches the regular expression ``regex`` as a whole; ``what`` says what it is
    (``"all, or parameter paths joined by +"``)."""

    regex: str
    what: str

    def describe(self) -> str:
        return self.what

    def problem(self, value: Value) -> str | None:
        return None if re.fullmatch(self.regex, str(value)) else self.what


@dataclasses.dataclass(frozen=True)
class SpecOf(Domain):
    """A nested spec of another registry, valid if ``check(value)`` raises no :class:`SpecError`
    (e.g. :func:`aljax.optim.check_optimizer`); ``what`` names it (``"an optimizer spec"``)."""

    check: Callable[[Value], Any]
    what: str

    def describe(self) -> str:
        return self.what

    def problem(self, value: Value) -> str | None:
        try:
            self.check(value)
        except SpecError as err:
            return f"{self.what} ({err})"
        return None


Count = Annotated[int, Range(1)]  # an integer >= 1: sizes, members, samples, steps
Positive = Annotated[float, Range(0, low_open=True)]  # a number > 0: step sizes, epsilons
NonNegative = Annotated[float, Range(0)]  # a number >= 0: scales, weight decay, temperatures
Fraction = Annotated[float, Range(0, 1, high_open=True)]  # [0, 1): dropout, momentum, Adam's betas
Probability = Annotated[float, Range(0, 1)]  # [0, 1]

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a name"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """A setting's domain as its factory declares it: ``kind`` (int, float, bool, str, or None when
    the annotation says nothing checkable), ``domains`` (:class:`Domain` metadata), ``optional``
    (None allowed)."""

    kind: type | None
    domains: tuple[Domain, ...] = ()
    optional: bool = False

    @property
    def declared(self) -> bool:
        """Whether the domain is complete: a bool, or a type with at least one :class:`Domain`."""
        return self.kind is bool or (self.kind is not None and bool(self.domains))

    def describe(self) -> str:
        """What a value must be: ``"an integer >= 1"``, ``"a number in [0, 1)"``, ``"true or false"``."""
        word = _TYPE_WORDS.get(self.kind, "a value")
        text = " and ".join(f"{word} {d.describe()}" if isinstance(d, Range) else d.describe() for d in self.domains)
        return (text or word) + (" or none" if self.optional else "")

    def problem(self, value: Value) -> str | None:
        """None if ``value`` is in the domain, else ``"must be an integer >= 1, got -3"``."""
        if value is None and self.optional:
            return None
        word = _TYPE_WORDS.get(self.kind, "a value")
        if self._has_type(value):
            failed = [(d, p) for d in self.domains if (p := d.problem(value)) is not None]
            if not failed:
                return None
        else:
            failed = [(d, d.describe()) for d in self.domains] or [(Range(), "")]
        text = " and ".join(f"{word} {p}".strip() if isinstance(d, Range) else p for d, p in failed)
        return f"must be {text}, got {_format(value) if isinstance(value, (bool, Spec)) else repr(value)}"

    def _has_type(self, value: Value) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind in (int, float):
            number = int if self.kind is int else (int, float)
            return isinstance(value, number) and not isinstance(value, bool) and math.isfinite(value)
        return self.kind is None or isinstance(value, (str, Spec))


def _setting(hint: Any) -> Setting:
    """The :class:`Setting` of a resolved type hint: ``Annotated[int, Range(1)]``, ``Count | None``,
    ``Annotated[float | None, Range(0)]``, a bare ``bool``, ..."""
    found: list[Domain] = []
    optional = False
    while True:
        origin = typing.get_origin(hint)
        if origin is Annotated:
            hint, *metadata = typing.get_args(hint)
            found += [m for m in metadata if isinstance(m, Domain)]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = optional or len(members) < len(typing.get_args(hint))
            if len(members) != 1:
                return Setting(None, tuple(found), optional)
            hint = members[0]
        else:
            break
    return Setting(hint if hint in _TYPE_WORDS else None, tuple(found), optional)


def domains(factory: Callable) -> dict[str, Setting]:
    """Each setting of ``factory`` (:func:`settings_of`) with its :class:`Setting`, read from its
    annotations (``typing.get_type_hints(..., include_extras=True)``); a factory whose annotations do
    not resolve declares nothing (every setting's kind None)."""
    try:
        hints = typing.get_type_hints(factory, include_extras=True)
    except Exception:  # an out-of-tree factory's annotations may name anything; they then check nothing
        hints = {}
    return {name: _setting(hints[name]) if name in hints else Setting(None) for name in settings_of(factory)}


def check_settings(factory: Callable, kind: str, name: str, values: Mapping[str, Value]) -> None:
    """Raise a one-line :class:`SpecError` naming the first of ``values`` (setting -> value) outside
    its domain on ``factory``: ``model 'mlp': setting hidden must be an integer >= 1, got -3``."""
    declared = domains(factory)
    for key, value in values.items():
        problem = declared[key].problem(value) if key in declared else None
        if problem is not None:
            raise SpecError(f"{kind} {name!r}: setting {key} {problem}")


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
    **spec.kwargs)`` with every setting in its domain (:func:`check_settings`), without calling it;
    otherwise a one-line :class:`SpecError` naming the closest entry, the settings the entry accepts
    or the setting out of its domain."""
    spec = parse(text)
    factory = lookup(registry, spec.name, kind)
    accepted = settings_of(factory)
    for key, _ in spec.kwargs:
        if key not in accepted:
            listed = ", ".join(f"{k}={_format(v)}" for k, v in accepted.items()) or "none"
            raise SpecError(f"{kind} {spec.name!r} has no setting {key!r} (settings: {listed})")
    try:
        bound = inspect.signature(factory).bind(*args, *spec.args, **dict(spec.kwargs))
    except TypeError as err:
        raise SpecError(f"bad arguments in {kind} {str(spec)!r}: {err}") from None
    check_settings(factory, kind, spec.name, {k: v for k, v in bound.arguments.items() if k in accepted})
    return spec


def build(registry: Mapping[str, Callable], text: str | Spec, kind: str, *args: Any) -> Any:
    """``registry[name](*args, *spec.args, **spec.kwargs)`` for the spec ``text``, checked first
    (:func:`check`)."""
    spec = check(registry, text, kind, *args)
    return lookup(registry, spec.name, kind)(*args, *spec.args, **dict(spec.kwargs))
