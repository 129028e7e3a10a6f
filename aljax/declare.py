"""Declared components: what an out-of-tree ``package.module:name`` may name, and the traits the
engine reads off a component instead of tracing it.

::

    import aljax.declare as declare

    @declare.strategy(stochastic=False, batch_aware=False, needs_samples=False)
    def my_score(key, ctx):          # (N,) scores, higher = ask first
        return -ctx.logits.max(axis=-1)

    @declare.model(dropout=True)
    def my_cnn(n_classes, *, width=32):  # -> aljax.models.Model
        ...

``aljax run --strategy my_pkg.my_mod:my_score`` then runs ``my_score``. Naming a module in a spec, on
the command line or in a TOML config, *imports* it, and so runs its top-level code, as ``python -c
'import my_pkg.my_mod'`` would: give aljax only modules you trust. What such a name points at is called
only if it was declared with the decorator of its kind; anything else (``os:kill``,
``builtins:print``) is refused in one line before anything runs.

Each kind has a fixed set of traits (:data:`TRAITS`), all ``bool`` and ``False`` unless declared:

* strategy: ``batch_aware`` (it picks a whole batch, :func:`aljax.strategies.rank_batch`),
  ``stochastic`` (its scores depend on its key), ``needs_samples`` (it reduces MC dropout samples or
  ensemble members, ``ctx.samples``);
* model: ``dropout`` (train-mode passes with different keys differ: MC dropout, or an ensemble's
  members), ``convolutional`` (its forward pass convolves; the seeds plan runs such models in sequence
  on a CPU), ``fixed_embedding`` (its ``embed(params, x)`` does not read the params, so distances in
  the embedding stay valid across rounds and k-center keeps them; unsaid, k-center recomputes them
  each round, which is always right);
* fitter, optimizer, metric, dataset, combinator, schedule: no traits.

A model may also declare a ``recipe``: the run settings it is meant to be trained with (a mapping
such as ``{"fitter": "minibatch(batch_size=64,reinit=true)", "optimizer": "adam", "learning_rate":
0.001}``), which ``aljax run`` uses for every setting the user does not give (:mod:`aljax.recipes`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

T = TypeVar("T")

# kind -> the traits a component of that kind may declare (all bool, default False)
TRAITS: dict[str, tuple[str, ...]] = {
    "strategy": ("batch_aware", "stochastic", "needs_samples"),
    "model": ("dropout", "convolutional", "fixed_embedding"),
    "fitter": (),
    "optimizer": (),
    "metric": (),
    "dataset": (),
    "combinator": (),
    "schedule": (),
}


@dataclasses.dataclass(frozen=True)
class Declaration:
    """What a component was declared as: its ``kind`` (a key of :data:`TRAITS`) and its ``traits``
    (every trait of the kind, as ``{name: bool}``)."""

    kind: str
    traits: dict[str, bool]
    recipe: dict[str, Any] | None = None  # a model's training recipe (aljax.recipes), else None

    def __getitem__(self, trait: str) -> bool:
        return self.traits[trait]


# id(obj) -> (obj, declaration). The object is held so that its id is never reused while declared;
# ids, not attributes, because some components (a StatefulStrategy, a NamedTuple) take no attributes.
_DECLARED: dict[int, tuple[Any, Declaration]] = {}


def declare(kind: str, obj: T | None = None, /, *, recipe: dict[str, Any] | None = None,
            **traits: bool) -> T | Callable[[T], T]:
    """Declare ``obj`` as a component of ``kind`` with ``traits`` (and, for a model, its training
    ``recipe``); used bare (``declare("metric", fn)``) it returns ``obj``, without ``obj`` a decorator.
    Raises ValueError for an unknown kind or trait, or a recipe on a kind other than model, and
    TypeError for a trait that is not a bool or a recipe that is not a mapping."""
    if kind not in TRAITS:
        raise ValueError(f"unknown component kind {kind!r} (choose one of: {', '.join(TRAITS)})")
    if recipe is not None and kind != "model":
        raise ValueError(f"only a model declares a recipe, not a {kind}")
    if recipe is not None and not isinstance(recipe, dict):
        raise TypeError(f"a model's recipe must be a dict of run settings, got {recipe!r}")
    for name, value in traits.items():
        if name not in TRAITS[kind]:
            allowed = ", ".join(TRAITS[kind]) or "none"
            raise ValueError(f"a {kind} has no trait {name!r} (traits: {allowed})")
        if not isinstance(value, bool):
            raise TypeError(f"trait {name!r} of a {kind} must be True or False, got {value!r}")
    declaration = Declaration(kind, {name: traits.get(name, False) for name in TRAITS[kind]},
                              None if recipe is None else dict(recipe))

    def mark(target: T) -> T:
        _DECLARED[id(target)] = (target, declaration)
        return target

    return mark if obj is None else mark(obj)


def declaration(obj: Any) -> Declaration | None:
    """The :class:`Declaration` of ``obj``, or None if it was never declared."""
    entry = _DECLARED.get(id(obj))
    return entry[1] if entry is not None and entry[0] is obj else None


def is_declared(obj: Any, kind: str) -> bool:
    """Whether ``obj`` was declared as a component of ``kind``."""
    found = declaration(obj)
    return found is not None and found.kind == kind


def traits_of(obj: Any, kind: str) -> dict[str, bool]:
    """The traits ``obj`` was declared with as a ``kind``, ``{trait: bool}``; all False for an object
    not declared as one (a function or model passed directly in Python without a decorator)."""
    found = declaration(obj)
    if found is not None and found.kind == kind:
        return dict(found.traits)
    return dict.fromkeys(TRAITS[kind], False)


def _kind(kind: str):
    def decorator(obj: T | None = None, /, **traits: Any):
        return declare(kind, obj, **traits)

    decorator.__name__ = decorator.__qualname__ = kind
    decorator.__doc__ = (f"Declare a {kind} (``@declare.{kind}`` or ``@declare.{kind}(...)``); traits: "
                         f"{', '.join(TRAITS[kind]) or 'none'}.")
    return decorator


strategy = _kind("strategy")
model = _kind("model")
fitter = _kind("fitter")
optimizer = _kind("optimizer")
metric = _kind("metric")
dataset = _kind("dataset")
combinator = _kind("combinator")
schedule = _kind("schedule")
