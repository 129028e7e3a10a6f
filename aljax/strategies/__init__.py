"""Query strategies: ``score(key, ctx) -> (N,)``, higher = ask first, one function + one registry line.

* :mod:`~aljax.strategies.base`: :class:`Context`, :data:`Strategy`, :class:`StatefulStrategy`,
  :func:`per_sample`, :func:`select`, :func:`rank_batch`, :func:`make_context`;
* families: :mod:`~aljax.strategies.uncertainty`, :mod:`~aljax.strategies.committee`,
  :mod:`~aljax.strategies.bayesian` (BALD, BatchBALD, ... on MC dropout or ensemble samples),
  :mod:`~aljax.strategies.model_change`, :mod:`~aljax.strategies.diversity`;
* :mod:`~aljax.strategies.combinators` (importing only ``base`` and the domains of :mod:`aljax.spec`) and
  :mod:`~aljax.strategies.registry` (:data:`STRATEGIES`, :data:`PER_SAMPLE`, :data:`SAMPLED`, :data:`COMBINATORS`,
  :func:`resolve`, which also takes out-of-tree ``package.module:function`` names, and :func:`traits`,
  a strategy's declared traits).

``aljax.testing.check_strategy`` runs the contract tests on any strategy.
"""

from aljax.strategies.base import (
    Context,
    StatefulStrategy,
    Strategy,
    make_context,
    per_sample,
    rank_batch,
    select,
    stateful,
)
from aljax.strategies.bayesian import bald, batchbald, epig, max_entropy, mean_std, variation_ratios
from aljax.strategies.committee import qbc_kl, qbc_vote_entropy
from aljax.strategies.diversity import (
    badge,
    density_weighted,
    gradient_embedding,
    kcenter,
    kmeans,
    kmeans_representatives,
)
from aljax.strategies.model_change import expected_error_reduction, expected_gradient_length
from aljax.strategies.registry import COMBINATORS, PER_SAMPLE, SAMPLED, STRATEGIES, is_stochastic, resolve, traits
from aljax.strategies.uncertainty import confidence, entropy, least_confidence, margin, random

__all__ = [
    "COMBINATORS", "PER_SAMPLE", "SAMPLED", "STRATEGIES", "Context", "StatefulStrategy", "Strategy", "badge", "bald", "batchbald", "epig",
    "confidence", "max_entropy", "mean_std", "variation_ratios",
    "density_weighted", "entropy", "expected_error_reduction", "expected_gradient_length", "gradient_embedding", "is_stochastic",
    "kcenter", "kmeans", "kmeans_representatives", "least_confidence", "make_context", "margin", "per_sample",
    "qbc_kl", "qbc_vote_entropy", "random", "rank_batch", "resolve", "select", "stateful", "traits",
]
