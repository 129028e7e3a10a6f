"""The seed protocol in plain NumPy: the reference a researcher without a framework would write.

float32 throughout; TF1 Adam (``lr_t = lr·√(1−β2^t)/(1−β1^t)``, ``m += (g−m)(1−β1)``,
``v += (g²−v)(1−β2)``, ``θ −= m·lr_t/(√v+ε)``); mean-loss gradient scaled by float32 1/n; ``fit`` =
patience-10 early stopping on eval accuracy (strict improvement), best weights restored, optimiser
state carried over. Used by ``experiments/bench.py`` as the speed and accuracy reference.
"""

from __future__ import annotations

import numpy as np

F = np.float32
B1, B2, EPS = F(0.9), F(0.999), F(1e-8)


class Adam:
    """TF1 ``AdamOptimizer`` state for params W (D, C), b (C,), float32."""

    def __init__(self, d: int, c: int, lr: float = 0.1):
        self.lr = F(lr)
        self.m = [np.zeros((d, c), F), np.zeros(c, F)]
        self.v = [np.zeros((d, c), F), np.zeros(c, F)]
        self.b1p, self.b2p = B1, B2

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        one = F(1)
        lr_t = self.lr * np.sqrt(one - self.b2p) / (one - self.b1p)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m += (g - m) * (one - B1)
            v += (g * g - v) * (one - B2)
            p -= (m * lr_t) / (np.sqrt(v) + EPS)
        self.b1p, self.b2p = self.b1p * B1, self.b2p * B2


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def n_correct(params, x: np.ndarray, y: np.ndarray) -> int:
    return int(np.sum(np.argmax(x @ params[0] + params[1], axis=1) == y))


def fit(params, opt: Adam, x, y, ex, ey, patience: int = 10):
    """Full-batch Adam on (x, y) until ``patience`` steps fail to improve eval accuracy; returns the
    best params (in place), their eval correct count and the number of steps."""
    onehot = np.eye(params[1].shape[0], dtype=F)[y]
    scale = F(1) / F(len(y))
    best, best_correct, trials, steps = [p.copy() for p in params], n_correct(params, ex, ey), patience, 0
    while trials > 0:
        g = (softmax(x @ params[0] + params[1]) - onehot) * scale
        opt.step(params, [x.T @ g, g.sum(axis=0)])
        steps += 1
        correct = n_correct(params, ex, ey)
        if correct > best_correct:
            best, best_correct, trials = [p.copy() for p in params], correct, patience
        else:
            trials -= 1
    params[0][...], params[1][...] = best
    return best_correct, steps


def top(scores: np.ndarray, selectable: np.ndarray, k: int) -> np.ndarray:
    """The k highest scores among selectable rows, ties to the lower index (like ``lax.top_k``)."""
    return np.argsort(-np.where(selectable, scores, -np.inf), kind="stable")[:k]


def active(x, y, ex, ey, first: np.ndarray, rounds: int, query: int = 10, oracle: str = "true",
           strategy: str = "least_confidence", state=None):
    """``rounds`` rounds of score -> select -> label -> fit after an initial fit on ``first``.

    Returns (state, eval correct counts per fit). ``state`` = (params, opt, labeled indices,
    targets) continues an earlier run (its initial fit is then skipped).
    """
    d, c = x.shape[1], int(max(y.max(), ey.max())) + 1
    corrects = []
    if state is None:
        params, opt = [np.zeros((d, c), F), np.zeros(c, F)], Adam(d, c)
        order, targets = list(first), list(y[first])
        corrects.append(fit(params, opt, x[order], np.array(targets), ex, ey)[0])
    else:
        params, opt, order, targets = state
    selectable = np.ones(len(x), bool)
    selectable[order] = False
    for _ in range(rounds):
        p = softmax(x @ params[0] + params[1]).max(axis=1)
        idx = top(-p if strategy == "least_confidence" else p, selectable, query)
        selectable[idx] = False
        order += list(idx)
        targets += list(y[idx] if oracle == "true" else np.argmax(x[idx] @ params[0] + params[1], axis=1))
        corrects.append(fit(params, opt, x[order], np.array(targets), ex, ey)[0])
    return (params, opt, order, targets), corrects
