"""A labeling session: fit on the labels so far, propose the next batch, ask an oracle.

One round is the simulated loop's round split in two at the oracle (:func:`propose`, then the
oracle answers, then :func:`aljax.labeling.project.add_labels`). The fit continues from the previous
fit's params AND optimiser state, as in :func:`aljax.loop.make_rounds`; scores and selection are the
engine's strategies and selection. Differences from :func:`aljax.loop.make_run`, by design:

* early stopping uses the labels marked ``holdout`` (never trained on, never proposed); a project
  without any uses its training labels ("fit until the labels are fitted");
* the PRNG key of a proposal is ``fold_in(key(seed), number of labels)``, so rerunning ``next``
  on the same state proposes the same batch (the loop splits one carried key instead): strategies
  that use the key (``random``) pick differently from the loop, deterministic ones identically;
* with no training label yet, the batch is a k-means cold start (:data:`cold_start`, the loop's
  k-means representatives), not the first rows.

The training buffer has one row per pool item (padding rows weigh 0), i.e. the loop's
``Config(capacity=N)``. ``labels.csv`` is the authority: ``fit.npz`` records the digest of the
labels it was fitted on, and a stale fit is simply refitted (deleting fit.npz refits from scratch,
which may differ from the carried fit).

Only the section "engine" below calls aljax's model, fit and strategy code.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import zipfile
from typing import Mapping, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from aljax.atomic import write_npz
from aljax.data import Split
from aljax.labeling.project import (FIT, Label, LabelingError, Project, Settings, add_labels, labels_digest, load_project,
                                    verify, write)
from aljax.fit import mean_weights
from aljax.loop import Config, Hyper, components
from aljax.stopping import cohen_kappa
from aljax.strategies import kmeans_representatives, make_context, select

# ----------------------------------------------------------------------------- engine
# The only calls into aljax's models, fitting and strategies, all through the engine's public pieces:
# the components a Config builds (model, fitter, optimiser, strategy), make_context and select.


def _config(settings: Settings, strategy: str = "least_confidence", query_size: int = 1) -> Config:
    """The loop's static config for this project's model (fits ignore strategy and query_size)."""
    return Config(strategy=strategy, query_size=query_size, n_initial=1, rounds=0,
                  model=f"{settings.model}(init_scale={settings.init_scale})", n_classes=len(settings.classes),
                  optimizer=settings.optimizer)


def _hyper(settings: Settings) -> Hyper:
    return Hyper(learning_rate=jnp.float32(settings.learning_rate), patience=jnp.int32(settings.patience),
                 max_steps=jnp.int32(settings.max_steps))


def check_settings(settings: Settings, strategy: str = "least_confidence", n: int = 1) -> Settings:
    """``settings`` if the engine accepts its model and optimiser (and ``strategy``, ``n``), else a
    one-line LabelingError."""
    try:
        _config(settings, strategy, n)
    except ValueError as err:
        raise LabelingError(str(err).replace("query_size", "--n")) from None
    return settings


def _fresh(settings: Settings, d: int):
    """Initial params and optimiser state (the key is the project seed's)."""
    parts = components(_config(settings))
    params = parts.model.init(jax.random.key(settings.seed), (d,))
    return params, parts.optimizer(_hyper(settings).learning_rate).init(params)


@functools.partial(jax.jit, static_argnums=0)
def _fit(config: Config, hyper: Hyper, params, opt_state, key, x, order, targets, n_train, eval_split: Split):
    """Fit (the config's fitter) on the first ``n_train`` rows of the buffer ``order`` (N,) and predict
    the pool."""
    parts = components(config)
    train_w = mean_weights(jnp.arange(order.shape[0]) < n_train)
    result = parts.fitter(parts.model, parts.optimizer(hyper.learning_rate), params, opt_state, key, x[order],
                          targets, train_w, eval_split, hyper)
    probs = jax.nn.softmax(parts.model.apply(result.params, x))
    return result, jnp.argmax(probs, axis=-1).astype(jnp.int32), jnp.max(probs, axis=-1)


@functools.partial(jax.jit, static_argnums=0)
def _select(config: Config, key, params, x, selectable, order, targets, n_train):
    """Pool rows (query_size,) chosen by ``config.strategy``: the loop's Context, scores and select."""
    parts = components(config)
    ctx = make_context(parts.model, params, x, parts.model.apply(params, x), selectable, order, targets, n_train,
                       config.query_size)
    return select(parts.strategy(key, ctx), selectable, config.query_size)


COLD_START_ITERS = 50  # Lloyd steps of the cold start's k-means
cold_start = jax.jit(functools.partial(kmeans_representatives, iters=COLD_START_ITERS), static_argnums=3)

# ----------------------------------------------------------------------------- fits


@dataclasses.dataclass(frozen=True)
class FitState:
    """The last fit (fit.npz): labels digest, params and optimiser state (pytrees of numpy arrays),
    pool predictions pred (N,) int32 and confidence (N,) float32 (max softmax), one history entry
    per fit (dicts: n_labels, n_train, n_holdout, steps, holdout_correct, min_confidence,
    mean_confidence, agreement)."""

    digest: str
    params: object
    opt_state: object
    pred: np.ndarray
    confidence: np.ndarray
    history: tuple[dict, ...]


def load_fit(project: Project) -> FitState | None:
    path = project.root / FIT
    if not path.exists():
        return None
    verify(project.root, [FIT])
    params, opt_state = _fresh(project.settings, project.x.shape[1])
    try:
        with np.load(path) as z:
            def restore(tree, prefix):
                leaves, treedef = jax.tree.flatten(tree)
                loaded = [z[f"{prefix}{k}"] for k in range(len(leaves))]
                if any(np.shape(a) != np.shape(b) for a, b in zip(leaves, loaded)):
                    raise ValueError("shapes differ")
                return jax.tree.unflatten(treedef, loaded)

            return FitState(str(z["digest"]), restore(params, "params_"), restore(opt_state, "opt_"), z["pred"],
                            z["confidence"], tuple(json.loads(str(z["history"]))))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise LabelingError(f"{path}: not a fit this aljax can continue ({type(err).__name__}); delete it to refit from "
                            f"scratch (labels are kept)") from None


def save_fit(project: Project, state: FitState) -> None:
    arrays = {f"params_{k}": np.asarray(a) for k, a in enumerate(jax.tree.leaves(state.params))}
    arrays |= {f"opt_{k}": np.asarray(a) for k, a in enumerate(jax.tree.leaves(state.opt_state))}
    arrays |= dict(digest=np.array(state.digest), pred=state.pred, confidence=state.confidence,
                   history=np.array(json.dumps(list(state.history))))
    write(write_npz, project.root / FIT, record_in=project.root, **arrays)


def _buffer(project: Project) -> tuple[np.ndarray, np.ndarray]:
    """The training buffer: order (N,) pool rows of the train labels then zeros, targets (N,)."""
    n = len(project.ids)
    order, targets = np.zeros(n, np.int32), np.zeros(n, np.int32)
    order[: len(project.train)] = project.rows(project.train)
    targets[: len(project.train)] = project.targets(project.train)
    return order, targets


def current_fit(project: Project) -> FitState:
    """The fit on the project's current labels: fit.npz if it is up to date, else a new fit that
    continues the previous one (params and optimiser state), saved atomically before returning."""
    if not project.train:
        raise LabelingError("no training labels yet; label a proposal (or add seed labels) first")
    digest = labels_digest(project.labels)
    previous = load_fit(project)
    if previous is not None and previous.digest == digest:
        return previous
    s = project.settings
    params, opt_state = (_fresh(s, project.x.shape[1]) if previous is None else (previous.params, previous.opt_state))
    key = jax.random.fold_in(jax.random.key(s.seed), len(project.labels))  # fitters that sample (minibatches)
    order, targets = _buffer(project)
    held = project.holdout or project.train
    eval_split = Split(jnp.asarray(project.x[project.rows(held)]), jnp.asarray(project.targets(held)))
    result, pred, confidence = _fit(_config(s), _hyper(s), params, opt_state, key, jnp.asarray(project.x), order,
                                    targets, jnp.int32(len(project.train)), eval_split)
    pred, confidence = np.asarray(pred), np.asarray(confidence)
    unlabeled = project.unlabeled
    entry = dict(
        n_labels=len(project.labels),
        n_train=len(project.train),
        n_holdout=len(project.holdout),
        steps=int(result.steps),
        holdout_correct=int(result.correct) if project.holdout else None,
        min_confidence=float(confidence[unlabeled].min()) if unlabeled.any() else None,
        mean_confidence=float(confidence[unlabeled].mean()) if unlabeled.any() else None,
        agreement=None if previous is None else float(cohen_kappa(
            previous.pred, pred, np.ones(len(pred), bool), len(s.classes))),
    )
    history = (() if previous is None else previous.history) + (entry,)
    state = FitState(digest, jax.tree.map(np.asarray, result.params), jax.tree.map(np.asarray, result.opt_state),
                     pred, confidence, history)
    save_fit(project, state)
    return state


# ----------------------------------------------------------------------------- proposals, oracles, rounds


@dataclasses.dataclass(frozen=True)
class Proposal:
    """The next batch: pool rows (k,) in the strategy's order, and the model's predicted class index
    and confidence for each (None on a cold start, when there is no model yet)."""

    rows: np.ndarray
    predicted: np.ndarray | None
    confidence: np.ndarray | None


def proposal_key(project: Project) -> jax.Array:
    """The key of the next proposal: the project seed folded with the number of labels."""
    return jax.random.fold_in(jax.random.key(project.settings.seed), len(project.labels))


def propose(project: Project, n: int = 10, strategy: str = "margin") -> Proposal:
    """Fit on the labels so far (or reuse the up-to-date fit) and pick the next ``n`` unlabeled items."""
    check_settings(project.settings, strategy, n)
    unlabeled = project.unlabeled
    k = min(n, int(unlabeled.sum()))
    if k == 0:
        raise LabelingError("every item is labeled (or dropped); nothing to propose (run `aljax label export`)")
    k_score, k_cold = jax.random.split(proposal_key(project))
    if not project.train:
        rows = cold_start(k_cold, jnp.asarray(project.x), jnp.asarray(unlabeled), k)
        return Proposal(np.asarray(rows), None, None)
    state = current_fit(project)
    order, targets = _buffer(project)
    rows = np.asarray(_select(_config(project.settings, strategy, k), k_score, state.params, jnp.asarray(project.x),
                              jnp.asarray(unlabeled), order, targets, jnp.int32(len(project.train))))
    return Proposal(rows, state.pred[rows], state.confidence[rows])


class Oracle(Protocol):
    """Whoever answers a proposal: class names for ``ids``, None where there is no answer."""

    def label(self, ids: Sequence[str]) -> list[str | None]: ...


@dataclasses.dataclass(frozen=True)
class SimulatedOracle:
    """The experiments' oracle: reveals the true class name of every id (``y_true``: id -> name)."""

    y_true: Mapping[str, str]

    def label(self, ids: Sequence[str]) -> list[str | None]:
        return [self.y_true.get(i) for i in ids]


def label_round(root, oracle: Oracle, n: int = 10, strategy: str = "margin") -> list[Label]:
    """One round with any oracle: propose ``n`` items, ask the oracle, add its answers."""
    project = load_project(root)
    proposal = propose(project, n, strategy)
    ids = [project.ids[r] for r in proposal.rows]
    return add_labels(root, [Label(i, a) for i, a in zip(ids, oracle.label(ids)) if a])
