"""Query-by-committee: a committee of M models trained at once with ``vmap``, and its disagreement.

Members are warm-started from the current params and each takes a fixed number of full-batch
optimiser steps (default: 20 Adam steps at 0.05) on its own bootstrap resample of the labeled buffer
(Breiman's bagging, as in Abe & Mamitsuka 1998), so one member = one row of a stacked params pytree.
The committee's size, steps, learning rate and optimiser are spec settings:
``qbc_kl(members=7,steps=30,optimizer=sgd)``.
"""

from __future__ import annotations

from typing import Annotated, Callable

import jax
import jax.numpy as jnp
import optax

from aljax import declare
from aljax.fit import weighted_loss
from aljax.models import Params
from aljax import spec as specs
from aljax.optim import check_optimizer, make_optimizer
from aljax.strategies.base import Context

OptimizerSpec = Annotated[str, specs.SpecOf(check_optimizer, "an optimizer spec")]


def bootstrap_weights(key: jax.Array, w: jax.Array) -> jax.Array:
    """One bootstrap resample of a weighted buffer w (L,) (w > 0 marks real rows), as weights (L,).

    Draws n = #(w > 0) rows with replacement from the real rows and returns counts / n, so the
    weights still sum to 1 and padding rows stay 0.
    """
    real = w > 0
    n = jnp.maximum(jnp.sum(real), 1)
    draws = jax.random.choice(key, w.shape[0], (w.shape[0],), p=real / n)
    counts = jnp.zeros(w.shape, jnp.float32).at[draws].add(jnp.arange(w.shape[0]) < n)
    return counts / n


def train_committee(key: jax.Array, apply: Callable, params: Params, x: jax.Array, y: jax.Array, w: jax.Array,
                    *, members: int = 5, steps: int = 20, learning_rate: float = 0.05,
                    optimizer: str = "adam") -> Params:
    """Params of ``members`` models (leading axis M), each ``steps`` full-batch steps of the optimiser
    spec ``optimizer`` (:func:`aljax.optim.make_optimizer`) from ``params`` on a bootstrap resample of
    the buffer (x (L, *sample_shape), y (L,), w (L,))."""
    opt = make_optimizer(optimizer, learning_rate)

    def member(key):
        wb = bootstrap_weights(key, w)
        grad_fn = jax.grad(lambda p: weighted_loss(apply, p, x, y, wb))

        def step(carry, _):
            p, s = carry
            updates, s = opt.update(grad_fn(p), s, p)
            return (optax.apply_updates(p, updates), s), None

        (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), length=steps)
        return p

    return jax.vmap(member)(jax.random.split(key, members))


def committee_logits(key: jax.Array, ctx: Context, **settings) -> jax.Array:
    """(N, M, C) pool logits of a bootstrap committee (:func:`train_committee` with ``settings``)."""
    stacked = train_committee(key, ctx.model.apply, ctx.params, ctx.train_x, ctx.train_y, ctx.train_w, **settings)
    return jnp.swapaxes(jax.vmap(ctx.model.apply, in_axes=(0, None))(stacked, ctx.x), 0, 1)


def vote_entropy(member_logits: jax.Array) -> jax.Array:
    """Vote entropy (Dagan & Engelson 1995) of one example's member logits (M, C): −Σ_c V_c/M log V_c/M."""
    m, c = member_logits.shape
    votes = jnp.sum(jax.nn.one_hot(jnp.argmax(member_logits, axis=-1), c), axis=0) / m
    return -jnp.sum(jnp.where(votes > 0, votes * jnp.log(jnp.where(votes > 0, votes, 1.0)), 0.0))


def mean_kl(member_logits: jax.Array) -> jax.Array:
    """Mean KL divergence to the consensus (McCallum & Nigam 1998) for member logits (M, C):
    (1/M) Σ_m KL(p_m ‖ p̄) with p̄ the mean of the members' softmax."""
    logp = jax.nn.log_softmax(member_logits, axis=-1)
    log_mean = jax.nn.logsumexp(logp, axis=0) - jnp.log(member_logits.shape[0])
    return jnp.mean(jnp.sum(jnp.exp(logp) * (logp - log_mean), axis=-1))


@declare.strategy(stochastic=True)
def qbc_vote_entropy(key: jax.Array, ctx: Context, *, members: specs.Count = 5, steps: specs.Count = 20,
                     learning_rate: specs.Positive = 0.05, optimizer: OptimizerSpec = "adam") -> jax.Array:
    """Query-by-committee, vote entropy of the members' argmax votes."""
    logits = committee_logits(key, ctx, members=members, steps=steps, learning_rate=learning_rate, optimizer=optimizer)
    return jax.vmap(vote_entropy)(logits)


@declare.strategy(stochastic=True)
def qbc_kl(key: jax.Array, ctx: Context, *, members: specs.Count = 5, steps: specs.Count = 20,
           learning_rate: specs.Positive = 0.05, optimizer: OptimizerSpec = "adam") -> jax.Array:
    """Query-by-committee, mean KL divergence of the members to their consensus."""
    logits = committee_logits(key, ctx, members=members, steps=steps, learning_rate=learning_rate, optimizer=optimizer)
    return jax.vmap(mean_kl)(logits)
