"""Fitters: how a round trains the model on its labeled buffer, named by a spec in ``Config.fitter``.

A fitter is ``fit(model, optimizer, params, opt_state, key, x, y, w, eval_split, hyper) -> FitResult``
over a fixed-size training buffer x (L, *sample_shape), y (L,), w (L,) (padding rows have w = 0). Every
fitter is one bounded ``lax.while_loop`` with static shapes, so it jits and vmaps over seeds, and
early-stops on ``eval_split`` with patience, returning the BEST params and the optimiser state after the
last step (the article neither restores nor resets it: it carries over to the next round). A
:class:`Fitter` also exposes the pieces of that loop (``start``, ``epoch``, ``running``, ``result``),
so every schedule of the engine (:mod:`aljax.schedules`) can step fits that start and stop
at different times; the call is built from the same pieces, so both give the same numbers.

* ``patience``: the article's "fit until overfit", one full-batch step per evaluation, bit for bit,
  in eval mode (a model's dropout is never on);
* ``minibatch(batch_size=..,epoch_points=..,max_epochs=..,reinit=..,weight_decay=..,epoch=..,keep=..,
  decay_per_label=..,decay_on=..,decay_half=..)``: shuffled minibatches in train mode (dropout on),
  epochs of a fixed number of sampled points or of one pass over the labeled rows, early stopping on
  the best weights or a fixed number of epochs keeping the last, optional re-initialisation every round
  (Gal et al. 2017; Kirsch et al. 2019) and L2 weight decay, constant or c / N, on chosen parameters.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Annotated, Callable

import jax
import jax.numpy as jnp
import optax

from aljax import spec as specs
from aljax.data import Split
from aljax.models import Model, Params


@jax.custom_vjp
def softmax_xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example cross-entropy (n,) of logits (n, C) against int labels (n,).

    Forward and backward follow ``tf.nn.sparse_softmax_cross_entropy_with_logits``: the gradient
    is ``exp(z − max z) / Σ exp(z − max z) − onehot``, scaled by the incoming per-example cotangent.
    """
    return _xent_fwd(logits, labels)[0]


def _xent_fwd(logits, labels):
    z = logits - jnp.max(logits, axis=-1, keepdims=True)
    e = jnp.exp(z)
    s = jnp.sum(e, axis=-1, keepdims=True)
    loss = jnp.log(s[:, 0]) - jnp.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
    backprop = e / s - jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return loss, backprop


def _xent_bwd(backprop, g):
    return g[:, None] * backprop, None


softmax_xent.defvjp(_xent_fwd, _xent_bwd)


def mean_weights(mask: jax.Array) -> jax.Array:
    """Per-row weights (L,) of a masked mean: ``mask · float32(1/n)``, TF's ``reduce_mean`` gradient."""
    n = jnp.sum(mask).astype(jnp.float32)
    return jnp.where(mask, jnp.float32(1) / jnp.maximum(n, 1), jnp.float32(0))


def weighted_loss(apply: Callable, params: Params, x: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    """Σ_i w_i · xent(apply(params, x)_i, y_i) for x (L, *sample_shape), y (L,), w (L,), in eval mode."""
    return jnp.sum(softmax_xent(apply(params, x), y) * w)


def n_correct(apply: Callable, params: Params, split: Split) -> jax.Array:
    """Number (int32) of rows of ``split`` whose argmax logit equals the label."""
    return jnp.sum(jnp.argmax(apply(params, split.x), axis=-1) == split.y, dtype=jnp.int32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Hyper:
    """Traced hyper-parameters (sweepable with vmap): the learning rate; patience, the evaluations in a
    row without a strict improvement that stop a fit; max_steps, the optimiser steps that bound one fit."""

    learning_rate: jax.Array = dataclasses.field(default_factory=lambda: jnp.float32(0.1))
    patience: jax.Array = dataclasses.field(default_factory=lambda: jnp.int32(10))
    max_steps: jax.Array = dataclasses.field(default_factory=lambda: jnp.int32(10_000))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FitResult:
    """Best params, optimiser state after the last step, best eval correct count, optimiser steps taken."""

    params: Params
    opt_state: optax.OptState
    correct: jax.Array
    steps: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FitCarry:
    """A fit in progress (one seed): the params and optimiser state after the last epoch, the best
    params and their eval correct count, the patience left, the optimiser steps and epochs taken, and
    the fitter's key (``None`` for a fitter that draws nothing: the loop then carries no key)."""

    params: Params
    opt_state: optax.OptState
    best: Params
    best_correct: jax.Array
    trials: jax.Array
    steps: jax.Array
    epochs: jax.Array
    key: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class Fitter:
    """An early-stopped fitter, as one call and as the pieces of its ``lax.while_loop``.

    ``fitter(model, optimizer, params, opt_state, key, x, y, w, eval_split, hyper, *, context=None) ->
    FitResult`` runs the whole fit. ``context``, an :class:`aljax.round.RoundContext` (the round index,
    labels held, labels just added, the budget), tells the fit where it is; the engine always passes
    it (to the pieces too). The built-in fitters do not read it: a per-round learning rate is the
    engine's ``Config.lr_schedule``, applied to the ``optimizer`` it passes; a subclass may read it. The pieces let a caller step many fits that start and stop at different times
    (:mod:`aljax.schedules`): ``start(...)`` (the same arguments) ``-> FitCarry``;
    ``epoch(model, optimizer, carry, x, y, w, eval_split, hyper) -> FitCarry``, one training epoch and
    one evaluation; ``running(carry, hyper)``, whether another epoch is due; ``result(carry) ->
    FitResult``. The call is ``result(while_loop(running, epoch, start(...)))``, so both ways give the
    same numbers.

    Built from ``train_epoch(model, optimizer, x, y, w) -> step(params, opt_state, key) -> (params,
    opt_state, steps taken)``; ``begin(model, optimizer, params, opt_state, key, x) -> (params,
    opt_state, key)`` may replace the starting point (re-initialisation); ``uses_key``: whether the
    epochs draw random numbers; ``max_epochs``: a bound on epochs (None: only ``hyper.max_steps``).
    """

    train_epoch: Callable
    begin: Callable | None = None
    uses_key: bool = False
    max_epochs: int | None = None
    keep_last: bool = False  # no early stopping: exactly max_epochs epochs, the last params (evaluated once)

    def start(self, model: Model, optimizer: optax.GradientTransformation, params: Params,
              opt_state: optax.OptState, key: jax.Array, x: jax.Array, y: jax.Array, w: jax.Array,
              eval_split: Split, hyper: Hyper, *, context=None) -> FitCarry:
        del context
        if self.begin is not None:
            params, opt_state, key = self.begin(model, optimizer, params, opt_state, key, x)
        return FitCarry(params, opt_state, params, n_correct(model.apply, params, eval_split),
                        jnp.asarray(hyper.patience, jnp.int32), jnp.int32(0), jnp.int32(0),
                        key if self.uses_key else None)

    def running(self, carry: FitCarry, hyper: Hyper) -> jax.Array:
        more = (carry.trials > 0) & (carry.steps < hyper.max_steps)
        return more if self.max_epochs is None else more & (carry.epochs < self.max_epochs)

    def epoch(self, model: Model, optimizer: optax.GradientTransformation, carry: FitCarry, x: jax.Array,
              y: jax.Array, w: jax.Array, eval_split: Split, hyper: Hyper, *, context=None) -> FitCarry:
        del context
        key, k_epoch = jax.random.split(carry.key) if self.uses_key else (None, None)
        step = self.train_epoch(model, optimizer, x, y, w)
        params, opt_state, taken = step(carry.params, carry.opt_state, k_epoch)
        if self.keep_last:  # the last params are the result; evaluate them only after the last epoch
            last = carry.epochs + 1 >= self.max_epochs
            correct = jax.lax.cond(last, lambda p: n_correct(model.apply, p, eval_split),
                                   lambda p: carry.best_correct, params)
            return FitCarry(params, opt_state, params, correct, carry.trials, carry.steps + taken,
                            carry.epochs + 1, key)
        correct = n_correct(model.apply, params, eval_split)
        better = correct > carry.best_correct
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), params, carry.best)
        return FitCarry(params, opt_state, best, jnp.where(better, correct, carry.best_correct),
                        jnp.where(better, hyper.patience, carry.trials - 1), carry.steps + taken,
                        carry.epochs if self.max_epochs is None else carry.epochs + 1, key)

    @staticmethod
    def result(carry: FitCarry) -> FitResult:
        return FitResult(carry.best, carry.opt_state, carry.best_correct, carry.steps)

    def __call__(self, model: Model, optimizer: optax.GradientTransformation, params: Params,
                 opt_state: optax.OptState, key: jax.Array, x: jax.Array, y: jax.Array, w: jax.Array,
                 eval_split: Split, hyper: Hyper, *, context=None) -> FitResult:
        """Repeat epochs, evaluating after each, until ``hyper.patience`` evaluations in a row fail to
        strictly improve eval accuracy (or ``hyper.max_steps`` steps, or ``max_epochs`` epochs);
        return the best params."""
        start = self.start(model, optimizer, params, opt_state, key, x, y, w, eval_split, hyper, context=context)
        return self.result(jax.lax.while_loop(
            lambda c: self.running(c, hyper),
            lambda c: self.epoch(model, optimizer, c, x, y, w, eval_split, hyper, context=context), start))


def patience() -> Fitter:
    """The article's fit, in eval mode (a model's dropout stays off: use ``minibatch`` to train with
    it): one full-batch optimiser step on the weighted buffer per evaluation, until ``hyper.patience``
    steps in a row fail to strictly improve eval accuracy; ``key`` is unused."""

    def train_epoch(model, optimizer, x, y, w):
        grad_fn = jax.grad(lambda p: weighted_loss(model.apply, p, x, y, w))

        def step(params, opt_state, key):
            del key
            updates, opt_state = optimizer.update(grad_fn(params), opt_state, params)
            return optax.apply_updates(params, updates), opt_state, jnp.int32(1)

        return step

    return Fitter(train_epoch)


EPOCHS = ("points", "passes")
KEEP = ("best", "last")
PARAMETER_PATHS = r"all|\w+(/\w+)*(\+\w+(/\w+)*)*"  # decay_on: "all" or paths like Dense_0/kernel+Dense_1/kernel


def decay_mask(params: Params, decay_on: str) -> list[bool]:
    """Which leaves of ``params`` (in ``jax.tree.leaves`` order) weight decay applies to: every leaf for
    ``"all"``, else the leaves whose ``/``-joined path (``Dense_0/kernel``, ``W1``) is one of the
    ``+``-separated names in ``decay_on``. A name that matches no leaf is a one-line ValueError."""
    paths = [jax.tree_util.keystr(path, simple=True, separator="/")
             for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    if decay_on == "all":
        return [True] * len(paths)
    names = decay_on.split("+")
    missing = [n for n in names if n not in paths]
    if missing:
        raise ValueError(f"decay_on names no parameter {missing[0]!r} (parameters: {', '.join(paths)})")
    return [p in names for p in paths]


def minibatch(*, batch_size: specs.Count = 64, epoch_points: specs.Count = 2048, max_epochs: specs.Count = 100,
              reinit: bool = False, weight_decay: specs.NonNegative = 0.0,
              epoch: Annotated[str, specs.Choice(EPOCHS)] = "points", keep: Annotated[str, specs.Choice(KEEP)] = "best",
              decay_per_label: bool = False, decay_on: Annotated[str, specs.Pattern(PARAMETER_PATHS, "all, or parameter paths joined by +, e.g. Dense_0/kernel")] = "all",
              decay_half: bool = True) -> Fitter:
    """Minibatch epochs in train mode (dropout on) on the labeled rows (w > 0), minimising mean
    cross-entropy + an L2 penalty, then one evaluation.

    * ``epoch="points"``: ⌈epoch_points / batch_size⌉ steps on minibatches of ``batch_size`` rows drawn
      by cycling through a fresh shuffle of the labeled rows; ``epoch="passes"``: one pass over the N
      labeled rows in a fresh order, ⌈N / batch_size⌉ steps, the last batch the remainder (Keras'
      ``fit``; Gal et al. 2017's scripts), ``epoch_points`` unused.
    * ``keep="best"``: patience (``hyper.patience``) counts epochs without a strict improvement of eval
      accuracy, at most ``max_epochs``, and the best params are returned; ``keep="last"``: exactly
      ``max_epochs`` epochs, no early stopping, the last params (evaluated once, for the round's info).
    * The penalty is ``f · λ · Σ θ²`` over the parameters ``decay_on`` names (:func:`decay_mask`), with
      ``λ = weight_decay`` or, with ``decay_per_label``, ``weight_decay / N`` (N: the labeled rows of this
      round; Gal's c / N), and ``f = ½`` (``decay_half``, optax's and PyTorch's convention) or 1 (Keras'
      ``l2(λ)``).
    * ``reinit``: start every fit from fresh params (``model.init``) and optimiser state, as Gal et al.
      2017 and BatchBALD do.
    """
    steps_per_epoch = -(-epoch_points // batch_size)
    factor = 0.5 if decay_half else 1.0

    def begin(model, optimizer, params, opt_state, key, x):
        k_init, key = jax.random.split(key)
        if reinit:
            params = model.init(k_init, x.shape[1:])
            opt_state = optimizer.init(params)
        return params, opt_state, key

    def train_epoch(model, optimizer, x, y, w):
        labeled = w > 0
        n = jnp.maximum(jnp.sum(labeled), 1)
        decay = weight_decay / n.astype(jnp.float32) if decay_per_label else weight_decay

        def penalty(params):
            leaves = [p for p, on in zip(jax.tree.leaves(params), decay_mask(params, decay_on)) if on]
            return factor * decay * sum(jnp.sum(jnp.square(p)) for p in leaves)

        def loss(params, xb, yb, key, valid=None):
            per_row = (model.loss(params, xb, yb, key=key) if model.loss else  # ensembles: members' sum
                       softmax_xent(model.apply(params, xb, key=key, train=True), yb))
            value = jnp.mean(per_row) if valid is None else jnp.sum(per_row * valid) / jnp.sum(valid)
            if weight_decay:
                value += penalty(params)
            return value

        def shuffle(key):
            return jnp.argsort(jnp.where(labeled, jax.random.uniform(key, labeled.shape), 2.0))

        def update(params, opt_state, grads):
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        def epoch_of_points(params, opt_state, key):
            k_shuffle, k_steps = jax.random.split(key)
            shuffled = shuffle(k_shuffle)

            def step(carry, inputs):
                s, k = inputs
                rows = shuffled[(s * batch_size + jnp.arange(batch_size)) % n]
                return update(*carry, jax.grad(loss)(carry[0], x[rows], y[rows], k)), None

            steps = (jnp.arange(steps_per_epoch), jax.random.split(k_steps, steps_per_epoch))
            (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), steps)
            return params, opt_state, jnp.int32(steps_per_epoch)

        def epoch_of_passes(params, opt_state, key):
            k_shuffle, k_steps = jax.random.split(key)
            shuffled = shuffle(k_shuffle)
            n_steps = (n + batch_size - 1) // batch_size

            def step(s, carry):
                index = s * batch_size + jnp.arange(batch_size)
                rows = shuffled[index % n]
                valid = (index < n).astype(jnp.float32)
                grads = jax.grad(loss)(carry[0], x[rows], y[rows], jax.random.fold_in(k_steps, s), valid)
                return update(*carry, grads)

            params, opt_state = jax.lax.fori_loop(0, n_steps, step, (params, opt_state))
            return params, opt_state, n_steps.astype(jnp.int32)

        return epoch_of_points if epoch == "points" else epoch_of_passes

    return Fitter(train_epoch, begin=begin, uses_key=True, max_epochs=max_epochs, keep_last=keep == "last")


FITTERS: dict[str, Callable[..., Fitter]] = {"patience": patience, "minibatch": minibatch}


@functools.cache
def make_fitter(name: str) -> Fitter:
    """The fitter a spec names, e.g. ``"patience"`` or ``"minibatch(batch_size=64,reinit=true)"``;
    one-line :class:`aljax.spec.SpecError` for an unknown name or setting."""
    return specs.build(FITTERS, name, "fitter")
