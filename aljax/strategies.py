"""Query strategies and the registry.

A strategy is one function ``score(key, ctx) -> (N,)`` over the whole pool, higher = ask first, and
one line in :data:`STRATEGIES`. Per-sample strategies are written for ONE example's logits (C,)
and lifted over the pool with ``jax.vmap`` by :func:`per_sample`. Selection is shared
(:func:`select`): rows that are labeled or padding get ``-inf``, then ``lax.top_k``, whose ties go
to the lower pool index. Batch-aware strategies (k-center, BADGE, k-means) choose a whole batch of
``ctx.query_size`` rows and give it descending scores above every other row (:func:`rank_batch`), so
``select`` takes exactly that batch. :func:`resolve` turns a name such as
``"subsample(least_confidence)"`` into a strategy, wrapping registry entries in
:mod:`aljax.combinators`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from aljax import cluster, combinators, committee
from aljax.fit import mean_weights, softmax_xent, weighted_loss
from aljax.models import Model, Params


@dataclasses.dataclass(frozen=True)
class Context:
    """What a strategy may look at (built inside the traced round by :func:`make_context`; never stored
    in the state).

    model: the :class:`aljax.models.Model` (``ctx.apply`` and ``ctx.embed`` call it); params: its
    current (best) params; x (N, *sample_shape): the pool; logits (N, C): ``apply(params, x)`` in eval
    mode, computed once per round by the caller (the loop reuses them for its metrics); selectable
    (N,) bool: valid and not yet labeled; train_x (L, *sample_shape), train_y (L,), train_w (L,): the
    weighted training buffer (w sums to 1; w > 0 marks the labeled rows); query_size: rows taken this
    round (static int).
    """

    model: Model
    params: Params
    x: jax.Array
    logits: jax.Array
    selectable: jax.Array
    train_x: jax.Array
    train_y: jax.Array
    train_w: jax.Array
    query_size: int

    def apply(self, params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        """The model's logits (n, C) for x (n, *sample_shape); ``train=True`` with a ``key`` samples dropout."""
        return self.model.apply(params, x, key=key, train=train)

    def embed(self, x: jax.Array | None = None) -> jax.Array:
        """The output layer's input (n, E) under the current params, for x (default: the pool)."""
        return self.model.embed(self.params, self.x if x is None else x)


def make_context(model: Model, params: Params, pool_x: jax.Array, logits: jax.Array, selectable: jax.Array,
                 order: jax.Array, targets: jax.Array, n_labeled: jax.Array, query_size: int) -> Context:
    """The one way a :class:`Context` is built (the loop, labeling, the bench): the training buffer is
    the pool rows ``order`` (L,) labeled ``targets`` (L,), of which the first ``n_labeled`` are real."""
    mask = jnp.arange(order.shape[0]) < n_labeled
    return Context(model=model, params=params, x=pool_x, logits=logits, selectable=selectable,
                   train_x=pool_x[order], train_y=targets, train_w=mean_weights(mask), query_size=query_size)


Strategy = Callable[[jax.Array, Context], jax.Array]


def per_sample(score_one: Callable[[jax.Array], jax.Array]) -> Strategy:
    """Lift ``score_one(logits (C,)) -> ()`` to a pool strategy ``(key, ctx) -> (N,)`` with vmap."""

    def score(key: jax.Array, ctx: Context) -> jax.Array:
        del key
        return jax.vmap(score_one)(ctx.logits)

    score.__doc__ = score_one.__doc__
    return score


def select(scores: jax.Array, selectable: jax.Array, k: int) -> jax.Array:
    """Indices (k,) of the k highest ``scores`` (N,) among ``selectable`` (N,) rows; ties to lower index.

    A selectable row scored −inf (a strategy's "not a candidate") still ranks above every
    unselectable row, so labeled and padding rows are never chosen while k rows are selectable.
    """
    lowest = jnp.finfo(scores.dtype).min
    return jax.lax.top_k(jnp.where(selectable, jnp.maximum(scores, lowest), -jnp.inf), k)[1]


def rank_batch(batch: jax.Array, rest: jax.Array) -> jax.Array:
    """Scores (N,) that put the rows ``batch`` (k,) first, in order, above every finite ``rest`` (N,)."""
    top = jnp.max(jnp.where(jnp.isfinite(rest), rest, 0.0))
    k = batch.shape[0]
    return rest.at[batch].set(top + (k - jnp.arange(k)).astype(rest.dtype))


# ----------------------------------------------------------------------------- uncertainty


def least_confidence(logits: jax.Array) -> jax.Array:
    """Least confidence: ranks like 1 − max p. Returned as −max p (softmax as in TF, exp(z−max)/Σ),
    so float rounding never merges distinct confidences: "sort by max softmax ascending"."""
    return -jnp.max(jax.nn.softmax(logits))


def confidence(logits: jax.Array) -> jax.Array:
    """Most confident first: max p (the article's auto-labeling order)."""
    return jnp.max(jax.nn.softmax(logits))


def margin(logits: jax.Array) -> jax.Array:
    """Smallest margin first: −(p₁ − p₂) between the two most probable classes.

    p₂ is the max over the other classes (the same values as ``lax.top_k(p, 2)``, which XLA:CPU ran
    7x slower when vmapped over a 59 000-row pool)."""
    p = jax.nn.softmax(logits)
    first = jnp.argmax(p)
    second = jnp.max(jnp.where(jnp.arange(p.shape[0]) == first, -jnp.inf, p))
    return second - p[first]


def entropy(logits: jax.Array) -> jax.Array:
    """Predictive entropy −Σ p log p, from log-softmax (finite even when some p underflow to 0)."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp)


def random(key: jax.Array, ctx: Context) -> jax.Array:
    """Uniformly random scores: a random subset of the selectable rows."""
    return jax.random.uniform(key, (ctx.x.shape[0],))


# ----------------------------------------------------------------------------- committee

COMMITTEE_SIZE = 5


def _committee_logits(key: jax.Array, ctx: Context) -> jax.Array:
    """(N, M, C) pool logits of a bootstrap committee (:func:`aljax.committee.train_committee`)."""
    members = committee.train_committee(
        key, ctx.model.apply, ctx.params, ctx.train_x, ctx.train_y, ctx.train_w, size=COMMITTEE_SIZE
    )
    return jnp.swapaxes(jax.vmap(ctx.model.apply, in_axes=(0, None))(members, ctx.x), 0, 1)


def qbc_vote_entropy(key: jax.Array, ctx: Context) -> jax.Array:
    """Query-by-committee, vote entropy of the members' argmax votes."""
    return jax.vmap(committee.vote_entropy)(_committee_logits(key, ctx))


def qbc_kl(key: jax.Array, ctx: Context) -> jax.Array:
    """Query-by-committee, mean KL divergence of the members to their consensus."""
    return jax.vmap(committee.mean_kl)(_committee_logits(key, ctx))


# ----------------------------------------------------------------------------- expected model change


def _augmented_norm(x: jax.Array) -> jax.Array:
    """‖(x, 1)‖ per row (N,): the norm of the input of an affine layer with its bias."""
    return jnp.sqrt(jnp.sum(x * x, axis=-1) + 1.0)


def expected_gradient_length(key: jax.Array, ctx: Context) -> jax.Array:
    """Expected norm of the loss gradient if the row were labeled, over y ~ p(y|x).

    The cross-entropy gradient of an affine layer z = W·x + b for label y is (x, 1) ⊗ (p − e_y), so
    its norm is ‖(x, 1)‖·‖p − e_y‖ with x the model's embedding (the output layer's input): the
    gradient of the output layer, exact for softmax regression (all of its params), in closed form
    (160× faster than per-example ``vmap(grad)``).
    """
    del key
    p = jax.nn.softmax(ctx.logits)
    # ‖p − e_y‖ (N, C) for every y, from the differences themselves: the expanded Σp² − 2p_y + 1
    # cancels when p_y ≈ 1 (relative errors ~1e-4 in float32). XLA fuses it; no (N, C, C) buffer.
    residual = jnp.sqrt(jnp.sum(jnp.square(p[:, None, :] - jnp.eye(p.shape[-1], dtype=p.dtype)), axis=-1))
    return _augmented_norm(ctx.embed()) * jnp.sum(p * residual, axis=-1)


# ----------------------------------------------------------------------------- expected error reduction

EER_CANDIDATES = 256
EER_EVAL = 256
EER_LEARNING_RATE = 0.5


def expected_error_reduction(key: jax.Array, ctx: Context) -> jax.Array:
    """Expected error reduction with log loss (Roy & McCallum 2001), on a random candidate subsample.

    For each of ``EER_CANDIDATES`` random unlabeled candidates and each label y: one warm-started
    gradient step (learning rate ``EER_LEARNING_RATE``) on the labeled buffer plus the candidate,
    labeled y (weights n/(n+1) and 1/(n+1)); the expected loss is the mean predictive entropy of the
    updated model on ``EER_EVAL`` random unlabeled rows. Score = −Σ_y p(y|x)·loss_y; rows that are
    not candidates get −inf. The labeled gradient is shared, the candidate gradients vmapped.
    """
    k_cand, k_eval = jax.random.split(key)
    n_pool = ctx.x.shape[0]
    cand = select(jax.random.uniform(k_cand, (n_pool,)), ctx.selectable, min(EER_CANDIDATES, n_pool))
    evals = select(jax.random.uniform(k_eval, (n_pool,)), ctx.selectable, min(EER_EVAL, n_pool))
    eval_x, eval_w = ctx.x[evals], ctx.selectable[evals].astype(jnp.float32)
    eval_w = eval_w / jnp.maximum(jnp.sum(eval_w), 1.0)
    n = jnp.sum(ctx.train_w > 0).astype(jnp.float32)
    lr = EER_LEARNING_RATE
    g_labeled = jax.grad(lambda p: weighted_loss(ctx.apply, p, ctx.train_x, ctx.train_y, ctx.train_w))(ctx.params)
    base = jax.tree.map(lambda p, g: p - lr * n / (n + 1) * g, ctx.params, g_labeled)

    def loss_after(x_c: jax.Array, y: jax.Array) -> jax.Array:
        g = jax.grad(lambda p: softmax_xent(ctx.apply(p, x_c[None]), y[None])[0])(ctx.params)
        updated = jax.tree.map(lambda b, g: b - lr / (n + 1) * g, base, g)
        return jnp.sum(jax.vmap(entropy)(ctx.apply(updated, eval_x)) * eval_w)

    def expected_loss(args: tuple[jax.Array, jax.Array]) -> jax.Array:
        x_c, logits_c = args
        classes = jnp.arange(logits_c.shape[-1])
        return jnp.sum(jax.nn.softmax(logits_c) * jax.vmap(loss_after, in_axes=(None, 0))(x_c, classes))

    cand_x = ctx.x[cand]
    losses = jax.lax.map(expected_loss, (cand_x, ctx.logits[cand]), batch_size=32)
    return jnp.full((n_pool,), -jnp.inf).at[cand].set(jnp.where(ctx.selectable[cand], -losses, -jnp.inf))


# ----------------------------------------------------------------------------- representativeness / diversity


def density_weighted(key: jax.Array, ctx: Context) -> jax.Array:
    """Information density (Settles & Craven 2008): entropy × mean cosine similarity to the unlabeled
    pool (β = 1) in the model's embedding, so representative uncertain rows beat uncertain outliers."""
    del key
    e = ctx.embed()
    unit = e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    weights = ctx.selectable.astype(unit.dtype) / jnp.maximum(jnp.sum(ctx.selectable), 1)
    similarity = unit @ (weights @ unit)
    return jax.vmap(entropy)(ctx.logits) * similarity


def kcenter(key: jax.Array, ctx: Context) -> jax.Array:
    """Greedy k-center core-set (Sener & Savarese 2018): ``query_size`` times, take the unlabeled row
    farthest (Euclidean, in the model's embedding) from the labeled rows and those already taken. Other
    rows rank by their final distance to the centers."""
    del key
    e = ctx.embed()
    d2 = jnp.min(jnp.where(ctx.train_w[None, :] > 0, cluster.sq_distances(e, ctx.embed(ctx.train_x)), jnp.inf), axis=1)
    d2 = jnp.where(jnp.isfinite(d2), d2, jnp.max(jnp.where(jnp.isfinite(d2), d2, 0.0)))  # no labels yet

    def take(d2, _):
        i = jnp.argmax(jnp.where(ctx.selectable, d2, -jnp.inf))
        return jnp.minimum(d2, jnp.sum((e - e[i]) ** 2, axis=1)), i

    d2, batch = jax.lax.scan(take, d2, length=ctx.query_size)
    return rank_batch(batch, d2)


def gradient_embedding(ctx: Context) -> jax.Array:
    """BADGE embeddings (N, (E+1)·C): (e, 1) ⊗ (p − e_ŷ) with e the model's embedding and ŷ the
    predicted class: the loss gradient of the output layer under the model's own label."""
    logits = ctx.logits
    p = jax.nn.softmax(logits)
    residual = p - jax.nn.one_hot(jnp.argmax(logits, -1), p.shape[-1], dtype=p.dtype)
    e = ctx.embed()
    x1 = jnp.concatenate([e, jnp.ones((e.shape[0], 1), e.dtype)], axis=1)
    return (x1[:, :, None] * residual[:, None, :]).reshape(x1.shape[0], -1)


def badge(key: jax.Array, ctx: Context) -> jax.Array:
    """BADGE (Ash et al. 2020): k-means++ seeding (:func:`aljax.cluster.kmeans_plus_plus`) over the
    gradient embeddings of the unlabeled rows. Other rows rank by gradient norm."""
    g = gradient_embedding(ctx)
    batch = cluster.kmeans_plus_plus(key, g, ctx.query_size, weights=ctx.selectable)
    return rank_batch(batch, jnp.linalg.norm(g, axis=-1))


KMEANS_ITERS = 10


def kmeans_representatives(key: jax.Array, x: jax.Array, selectable: jax.Array, k: int,
                           iters: int = KMEANS_ITERS) -> jax.Array:
    """Indices (k,) of distinct selectable rows nearest to the centroids of k-means (``iters``
    Lloyd steps) on them: the ``kmeans`` strategy and the k-means cold starts."""
    centers, _ = cluster.kmeans(key, x, k, iters=iters, weights=selectable)
    d2 = cluster.sq_distances(x, centers)

    def take(free, center_d2):
        i = jnp.argmin(jnp.where(free, center_d2, jnp.inf))
        return free.at[i].set(False), i

    _, batch = jax.lax.scan(take, selectable, d2.T)
    return batch


def kmeans(key: jax.Array, ctx: Context) -> jax.Array:
    """k-means representatives (Nguyen & Smeulders 2004; Zhdanov 2019's diversity step): cluster the
    unlabeled rows (in the model's embedding) into ``query_size`` clusters and take the row nearest each
    centroid. Other rows rank by closeness to their nearest centroid."""
    e = ctx.embed()
    batch = kmeans_representatives(key, e, ctx.selectable, ctx.query_size)
    rest = -jnp.min(cluster.sq_distances(e, e[batch]), axis=1)
    return rank_batch(batch, rest)


# Per-sample scores of one example's logits (C,): lifted into STRATEGIES, and scored one arrival at
# a time by stream mode (aljax.stream).
PER_SAMPLE: dict[str, Callable[[jax.Array], jax.Array]] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "most_confident": confidence,
}

STRATEGIES: dict[str, Strategy] = {
    "random": random,
    **{name: per_sample(score_one) for name, score_one in PER_SAMPLE.items()},
    "qbc_vote_entropy": qbc_vote_entropy,
    "qbc_kl": qbc_kl,
    "expected_gradient_length": expected_gradient_length,
    "expected_error_reduction": expected_error_reduction,
    "density_weighted": density_weighted,
    "kcenter": kcenter,
    "badge": badge,
    "kmeans": kmeans,
}


def _split_args(text: str) -> list[str]:
    """Split ``text`` at the commas that are not inside parentheses."""
    args, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            args.append(text[start:i])
            start = i + 1
    return args + [text[start:]]


def _number(text: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def resolve(name: str) -> Strategy:
    """The strategy called ``name``: a registry key, or a combinator applied to names and numbers,
    e.g. ``"subsample(least_confidence,500)"`` or ``"epsilon(alternate(kcenter,margin),0.1)"``
    (spaces ignored; one function object per name). Raises a one-line ValueError for an unknown name."""
    return _resolve(name.replace(" ", ""))


@functools.cache
def _resolve(name: str) -> Strategy:
    if name in STRATEGIES:
        return STRATEGIES[name]
    head, paren, rest = name.partition("(")
    if not paren or not rest.endswith(")") or head not in combinators.COMBINATORS:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}, or wrap one in a "
            f"combinator: {', '.join(c + '(...)' for c in combinators.COMBINATORS)}"
        )
    args = [a if _number(a) is None else _number(a) for a in _split_args(rest[:-1])]
    try:
        return combinators.COMBINATORS[head](*[_resolve(a) if isinstance(a, str) else a for a in args])
    except TypeError:
        doc = (combinators.COMBINATORS[head].__doc__ or "").splitlines()[0]
        raise ValueError(f"bad arguments in {name!r}: {head} takes a strategy then its numbers ({doc})") from None
