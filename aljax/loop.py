"""The engine's names in one place (compatibility: ``from aljax.loop import Config, make_run`` keeps
working). The engine itself is a round plus schedules:

* :mod:`aljax.config`: :class:`Config` (static, hashable settings) and :func:`components`;
* :mod:`aljax.round`: the round's pure pieces over one seed (:class:`Round`, :func:`make_round`);
* :mod:`aljax.round_state`: the round's data (:class:`State`, :class:`RoundInfo`, :class:`RoundContext`);
* :mod:`aljax.round_metrics`: metric plug-ins and learning-rate schedules by round;
* :mod:`aljax.schedules`: the drivers of those pieces: :func:`make_run` (one seed; lockstep under
  vmap), :func:`make_rounds`, :func:`make_sequential`, :func:`make_seeds_run` (continuous lanes).

``make_run(config)`` returns ``run(data, hyper, key) -> (state, info)``: initial labels, a fit, then
``config.rounds`` rounds of query -> fit. ``info`` is a :class:`RoundInfo` whose arrays have a leading
axis of ``rounds + 1``. Seeds are a vmap axis::

    run = jax.jit(jax.vmap(make_run(config), in_axes=(None, None, 0)))
    state, info = run(data, Hyper(), jax.random.split(jax.random.key(0), 64))
"""

from aljax.config import INITIAL, ORACLES, Components, Config, components
from aljax.fit import Hyper
from aljax.round import (Round, RoundContext, RoundInfo, State, acquire, columns, context, fit, grow, init_state,
                         make_round, round_context, same_layout)
from aljax.schedules import make_rounds, make_run, make_seeds_run, make_sequential

__all__ = ["INITIAL", "ORACLES", "Components", "Config", "components", "Hyper", "Round", "RoundContext", "RoundInfo",
           "State", "acquire", "columns", "context", "fit", "grow", "init_state", "make_round", "round_context",
           "same_layout", "make_rounds", "make_run", "make_seeds_run", "make_sequential"]
