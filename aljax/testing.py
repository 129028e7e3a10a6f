"""Contract checks for query strategies, to call from your own pytest.

::

    from aljax.testing import check_strategy

    def test_my_score():
        check_strategy("my_package.my_module:my_score")   # or the function itself, or "subsample(...)"

:func:`check_strategy` scores a small random pool (softmax regression, the first rows labeled, the
last rows padding) and asserts what every strategy in ``aljax.strategies.STRATEGIES`` satisfies (the
package's own tests call it on each registry entry):

* scores have shape (N,), no NaN and no +inf, and are finite on the selectable rows (or on exactly
  ``candidates`` of them, for a strategy that scores a random subset);
* jit equals eager, and the same key gives the same scores;
* vmapped over (key, params) equals unbatched;
* a strategy declared deterministic (``@aljax.declare.strategy`` without ``stochastic=True``) gives the
  same scores under two keys;
* permuting the pool permutes the scores, for deterministic strategies (a strategy whose randomness
  is drawn per pool index cannot follow a permutation);
* :func:`~aljax.strategies.select` never picks a labeled or padding row or a row twice, even when only
  ``query_size`` rows are selectable;
* a strategy declared batch-aware (``batch_aware=True``: it picks a whole batch, :func:`rank_batch`)
  ranks exactly ``query_size`` rows, in strictly decreasing order, above every other selectable row;
* a :class:`~aljax.strategies.StatefulStrategy` returns a state with its ``init``'s layout (so the
  loop can carry it through ``lax.scan``), under jit.

Float comparisons go through :func:`assert_close`, whose tolerance belongs to the backend
(:mod:`aljax.precision` states the policy): the tolerance a comparison names is its CPU tolerance and
holds as is on CPU (a comparison exact on CPU stays exact there); on GPU and TPU, where float32
products round to TF32 and sums run in another order, it widens to a relative 1e-2
(``precision.ACCELERATOR_RTOL``), which a real error still fails.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from aljax import precision
from aljax.models import Model, mlp, softmax_regression
from aljax.strategies import StatefulStrategy, Strategy, make_context, resolve, select, stateful, traits


def assert_close(actual, desired, *, rtol: float = 1e-7, atol: float = 0.0, err_msg: str = "",
                 platform: str | None = None) -> None:
    """``np.testing.assert_allclose(actual, desired)`` at the tolerance of ``platform`` (default: the
    backend JAX computes on) for a CPU tolerance of ``(rtol, atol)`` (numpy's defaults):
    :func:`aljax.precision.tolerance`, scaled by the largest finite ``|desired|``. Arrays of any
    (equal) shape; raises AssertionError."""
    desired = np.asarray(desired)
    magnitudes = np.abs(desired[np.isfinite(desired)])
    scale = float(magnitudes.max()) if magnitudes.size else 0.0
    rtol, atol = precision.tolerance(rtol, atol, scale, platform)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=err_msg)


def check_strategy(strategy: str | Strategy | StatefulStrategy, *, n: int = 48, features: int = 6, classes: int = 4,
                   query_size: int = 3, candidates: int | None = None, batch_aware: bool | None = None,
                   deterministic: bool | None = None, model: Model | None = None, seed: int = 0,
                   rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Assert the strategy contract (module docstring) for ``strategy``: a spec that
    :func:`~aljax.strategies.resolve` takes (``"margin"``, ``"mypkg.mymod:my_score"``), a function
    ``score(key, ctx) -> (N,)`` or a :class:`~aljax.strategies.StatefulStrategy`.

    The pool has ``n`` rows of ``features`` uniform features: the first ``n // 8`` are labeled (the
    training buffer holds ``n // 4`` rows) and the last 4 are padding. ``model`` defaults to softmax
    regression with ``classes`` classes and random params, or to a small dropout MLP for a strategy
    declared ``needs_samples``. ``batch_aware`` and ``deterministic`` are read from the strategy's
    declaration (:func:`aljax.strategies.traits`); pass them only to override it (e.g.
    ``deterministic=True`` runs the permutation check on a stochastic strategy whose key draws only
    per-sample masks). ``rtol`` and ``atol`` are the CPU tolerances of the float comparisons (:func:`assert_close`
    widens them on an accelerator). Raises AssertionError naming the broken property.
    """
    strategy = resolve(strategy) if isinstance(strategy, str) else strategy
    pair = stateful(strategy)
    declared = traits(strategy)
    if model is None:
        model = mlp(classes, hidden=16, dropout=0.5) if declared["needs_samples"] else softmax_regression(
            classes, init_scale=1.0)
    batch_aware = declared["batch_aware"] if batch_aware is None else batch_aware
    k_x, k_params, k_score, k_perm = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.uniform(k_x, (n, features))
    buffer, n_labeled = n // 4, n // 8
    labeled = jnp.arange(n) < n_labeled
    padding = jnp.arange(n) >= n - 4
    sel = ~labeled & ~padding
    order = jnp.arange(buffer, dtype=jnp.int32)
    targets = order % classes

    def ctx_of(params, x, sel, pool_order=order):
        return make_context(model, params, x, model.apply(params, x), sel, pool_order, targets,
                            jnp.int32(n_labeled), query_size)

    def score(key, params, x, sel, pool_order=order):
        ctx = ctx_of(params, x, sel, pool_order)
        return pair.score(key, ctx, pair.init(ctx))

    jitted = jax.jit(lambda key, params, x, sel: score(key, params, x, sel)[0])
    params = model.init(k_params, (features,))

    scores = jitted(k_score, params, x, sel)
    assert scores.shape == (n,), f"scores have shape {scores.shape}, expected ({n},)"
    assert not jnp.any(jnp.isnan(scores)), "scores contain NaN"
    assert not jnp.any(scores == jnp.inf), "scores contain +inf"
    finite = int(jnp.sum(jnp.isfinite(scores) & sel))
    expected = int(jnp.sum(sel)) if candidates is None else min(candidates, int(jnp.sum(sel)))
    assert finite == expected, f"{finite} selectable rows have finite scores, expected {expected}"

    eager = score(k_score, params, x, sel)[0]
    assert_close(eager, scores, rtol=rtol, atol=atol, err_msg="jit differs from eager")
    np.testing.assert_array_equal(jitted(k_score, params, x, sel), scores, err_msg="same key, different scores")

    keys = jax.random.split(k_score, 3)
    many = jax.vmap(lambda k: model.init(k, (features,)))(keys)
    batched = jax.vmap(jitted, in_axes=(0, 0, None, None))(keys, many, x, sel)
    for i in range(3):
        single = jitted(keys[i], jax.tree.map(lambda a: a[i], many), x, sel)
        assert_close(batched[i], single, rtol=rtol, atol=atol, err_msg="vmapped differs from unbatched")

    if deterministic is None:
        deterministic = not declared["stochastic"]
        if deterministic:
            other_key = jitted(jax.random.fold_in(k_score, 1), params, x, sel)
            np.testing.assert_array_equal(other_key, scores, err_msg="the scores depend on the key, but the strategy "
                                          "is not declared stochastic: declare it @aljax.declare.strategy(stochastic=True)")
    if deterministic:
        perm = jax.random.permutation(k_perm, n)
        inverse = jnp.argsort(perm)  # the buffer names the same rows, now at their permuted positions
        permuted = jax.jit(lambda x, sel, o: score(k_score, params, x, sel, o)[0])(x[perm], sel[perm], inverse[order])
        assert_close(permuted, scores[perm], rtol=rtol, atol=atol,
                     err_msg="permuting the pool does not permute the scores")

    idx = np.asarray(select(scores, sel, query_size))
    assert np.all(np.asarray(sel)[idx]), f"select picked an unselectable row: {idx}"
    assert len(set(idx.tolist())) == query_size, f"select picked a row twice: {idx}"
    rows = np.linspace(n_labeled, n - 5, query_size).astype(int)
    few = jnp.zeros((n,), bool).at[rows].set(True)
    idx = np.asarray(select(jitted(k_score, params, x, few), few, query_size))
    assert sorted(idx.tolist()) == rows.tolist(), f"with only rows {rows.tolist()} selectable, select picked {idx}"

    if batch_aware:
        top = np.sort(np.asarray(scores)[np.asarray(sel)])[::-1]
        assert np.all(np.diff(top[:query_size]) < 0) and top[query_size - 1] > top[query_size], (
            f"a batch-aware strategy must rank exactly query_size={query_size} rows first (rank_batch)")

    if isinstance(strategy, StatefulStrategy):
        fresh = pair.init(ctx_of(params, x, sel))
        _, state = jax.jit(lambda key, params: score(key, params, x, sel))(k_score, params)
        same = jax.tree.structure(fresh) == jax.tree.structure(state) and all(
            a.shape == b.shape and a.dtype == b.dtype for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(state)))
        assert same, "score(key, ctx, state) returned a state whose layout differs from init(ctx)"
