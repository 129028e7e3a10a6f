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


# ----------------------------------------------------------------------------- many seeds on the host's cores


_HOST: tuple = ()  # (x, y, eval x, eval y) in a worker process, set by _load


def _one_seed(args: tuple) -> int:
    """Run (c) from seed ``seed``'s random initial labels; its final eval correct count."""
    seed, initial, rounds, query = args
    x, y, ex, ey = _HOST
    first = np.random.default_rng(seed).choice(len(x), initial, replace=False)
    return active(x, y, ex, ey, first, rounds, query)[1][-1]


def _load(host: tuple) -> None:
    global _HOST
    _HOST = host


def main(argv: list[str] | None = None) -> dict:
    """``python experiments/numpy_reference.py --seeds S``: the article's run (c) (least confidence,
    random initial labels) for S seeds, one seed per process on the host's cores (one BLAS thread
    each); prints one JSON line (wall seconds, seconds per seed, final eval correct counts)."""
    import argparse
    import json
    import multiprocessing
    import os
    import time

    parser = argparse.ArgumentParser(description="the article's run (c) over seeds, on the host's cores")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="default: the host's cores")
    parser.add_argument("--dataset", default="mnist", help="a dataset name or idx:DIR, as for `aljax run`")
    parser.add_argument("--data-dir", default=None, help="default: as for `aljax run` ($ALJAX_DATA, data/, ...)")
    parser.add_argument("--pool-size", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=400)
    parser.add_argument("--init", type=int, default=10)
    parser.add_argument("--query-size", type=int, default=10)
    parser.add_argument("--budget", type=int, default=400)
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # read by the workers' numpy
        os.environ.setdefault(name, "1")
    from aljax.data import features, find_data_dir, load_dataset  # imports jax; the workers do not

    raw = load_dataset(args.dataset, *find_data_dir(args.data_dir))
    flat = lambda images: features(images).reshape(len(images), -1)
    host = (flat(raw.train_x[: args.pool_size]), raw.train_y[: args.pool_size],
            flat(raw.test_x[: args.test_size]), raw.test_y[: args.test_size])
    rounds = (args.budget - args.init) // args.query_size
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.processes, _load, (host,)) as pool:
        correct = pool.map(_one_seed, [(s, args.init, rounds, args.query_size) for s in range(args.seeds)])
    wall = time.perf_counter() - start
    result = {"seeds": args.seeds, "processes": args.processes, "wall_s": wall, "per_seed_s": wall / args.seeds,
              "rounds": rounds, "mean_accuracy": float(np.mean(correct)) / len(host[3]), "correct": correct}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
