"""Models: ``init``, ``apply`` and ``embed`` as pure functions, named by a spec such as
``"mlp(hidden=256,dropout=0.5)"``.

* ``init(key, sample_shape) -> params``: ``sample_shape`` is one example's shape (MNIST: (28, 28, 1));
* ``apply(params, x (n, *sample_shape), *, key=None, train=False) -> logits (n, C)``: ``train=True``
  turns on stochastic layers (dropout), which then draw from ``key``;
* ``embed(params, x (n, *sample_shape)) -> (n, E)``: the input of the output layer (eval mode), which
  the gradient-embedding and distance strategies read (BADGE, k-center, EGL, density). For softmax
  regression it is x itself, flattened.

Each model flattens what it needs, so pools keep their sample shape. Bring your own network without
editing aljax: :func:`from_flax` adapts a ``flax.linen`` Module and :func:`from_functions` a plain
``(init, apply)`` pair; :data:`MODELS` is the registry that ``Config.model`` names.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Annotated, Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from aljax import declare
from aljax import spec as specs
from aljax.forward import ensemble_logits, in_chunks, mc_dropout_logits

Params = Any


class Model(NamedTuple):
    """``init(key, sample_shape) -> params``; ``apply(params, x, *, key=None, train=False) -> (n, C)``;
    ``embed(params, x) -> (n, E)``.

    Three optional hooks, for models that are not one network (:func:`ensemble`) or that predict at
    test time otherwise than they are evaluated (:func:`mc_averaged`):
    ``samples(params, x, *, key, k, chunk) -> (K, n, C)``, the sampled logits that Bayesian strategies
    reduce (default, None: K passes of consistent MC dropout, :func:`aljax.forward.mc_dropout_logits`);
    ``loss(params, x, y, *, key) -> (n,)``, the per-example training loss of the minibatch fitter
    (default, None: cross-entropy of ``apply(params, x, key=key, train=True)``);
    ``predict(params, x) -> (n, C)``, the test-time predictive (log-probabilities or logits) that test
    accuracy and the test-split metrics read (default, None: ``apply`` in eval mode; :func:`predictive`
    gives either). The dev split (early stopping), the pool logits and the strategies read eval-mode
    ``apply`` whatever ``predict`` is.

    Three declared traits (:mod:`aljax.declare`), which the engine reads instead of tracing the model:
    ``dropout`` (its sampled predictions differ from sample to sample: MC dropout, or an ensemble of
    several members; strategies that need samples are refused on a model without it),
    ``convolutional`` (its forward pass convolves; the seeds plan runs such models in sequence on a
    CPU) and ``fixed_embedding`` (its ``embed(params, x)`` does not read the params, so distances in
    the embedding stay valid across rounds: k-center then keeps each row's distance to the labeled
    rows instead of recomputing it; softmax regression's embedding is x itself). The configured model
    carries them because they depend on its settings (``mlp(dropout=0)`` has no dropout,
    ``ensemble(members=1)`` one sample): each built-in factory sets them from its settings. None means
    "not said": :func:`make_model` then takes the factory's ``@aljax.declare.model(...)`` traits, and a
    model built directly in Python reads as False.
    """

    init: Callable[[jax.Array, tuple[int, ...]], Params]
    apply: Callable[..., jax.Array]
    embed: Callable[[Params, jax.Array], jax.Array]
    samples: Callable[..., jax.Array] | None = None
    loss: Callable[..., jax.Array] | None = None
    predict: Callable[[Params, jax.Array], jax.Array] | None = None
    dropout: bool | None = None
    convolutional: bool | None = None
    fixed_embedding: bool | None = None


def predictive(model: Model) -> Callable[[Params, jax.Array], jax.Array]:
    """The test-time forward pass of ``model``, ``(params, x) -> (n, C)``: its ``predict`` hook, or its
    ``apply`` itself (eval mode) when it has none, so such a model's test evaluation is the program it
    always was."""
    return model.apply if model.predict is None else model.predict


def flatten(x: jax.Array) -> jax.Array:
    """(n, *sample_shape) -> (n, D)."""
    return x.reshape(x.shape[0], -1)


def apply_dropout(key: jax.Array | None, h: jax.Array, rate: float, train: bool) -> jax.Array:
    """Inverted dropout of ``h`` at ``rate`` when ``train``; the identity otherwise (or at rate 0)."""
    if not train or rate == 0.0:
        return h
    if key is None:
        raise ValueError("a model with dropout in train mode needs a PRNG key: apply(params, x, key=key, train=True)")
    keep = jax.random.bernoulli(key, 1.0 - rate, h.shape)
    return jnp.where(keep, h / (1.0 - rate), 0.0)


@declare.model(dropout=False, convolutional=False, fixed_embedding=True)
def softmax_regression(n_classes: int, *, init_scale: specs.NonNegative = 0.0) -> Model:
    """``logits = x @ W.T + b`` with W (C, D), b (C,) on flattened x. ``init_scale=0`` gives the
    article's zero init; otherwise W ~ N(0, init_scale²) and b = 0. Its embedding is x itself.

    W is stored class-major (C, D), like ``torch.nn.Linear``: the weight gradient is then Gᵀ·X,
    which XLA:CPU computes 2x faster than the Xᵀ·G that W (D, C) needs (a full fit step: 2.0-2.3x
    at 400-4000 rows), with the same values on the article's table.
    """

    def init(key: jax.Array, sample_shape: tuple[int, ...]) -> Params:
        w = init_scale * jax.random.normal(key, (n_classes, math.prod(sample_shape)), jnp.float32)
        return {"W": w, "b": jnp.zeros((n_classes,), jnp.float32)}

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        del key, train
        return flatten(x) @ params["W"].T + params["b"]

    def embed(params: Params, x: jax.Array) -> jax.Array:
        del params
        return flatten(x)

    return Model(init, apply, embed, dropout=False, convolutional=False, fixed_embedding=True)


@declare.model(dropout=False, convolutional=False, fixed_embedding=False)  # mlp(dropout=0.5) has dropout: the Model says
def mlp(n_classes: int, *, hidden: specs.Count = 128, dropout: specs.Fraction = 0.0,
        init_scale: specs.NonNegative = 1.0) -> Model:
    """One ReLU hidden layer on flattened x, with dropout on the hidden units in train mode.

    W1 (hidden, D), W2 (C, hidden), output-major like softmax regression's W; He-scaled normal init
    (times ``init_scale``). Its embedding is the hidden layer (n, hidden).
    """

    def init(key: jax.Array, sample_shape: tuple[int, ...]) -> Params:
        k1, k2 = jax.random.split(key)
        n_features = math.prod(sample_shape)
        s1 = init_scale * jnp.sqrt(2.0 / n_features)
        s2 = init_scale * jnp.sqrt(2.0 / hidden)
        return {
            "W1": s1 * jax.random.normal(k1, (hidden, n_features), jnp.float32),
            "b1": jnp.zeros((hidden,), jnp.float32),
            "W2": s2 * jax.random.normal(k2, (n_classes, hidden), jnp.float32),
            "b2": jnp.zeros((n_classes,), jnp.float32),
        }

    def embed(params: Params, x: jax.Array) -> jax.Array:
        return jax.nn.relu(flatten(x) @ params["W1"].T + params["b1"])

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        h = apply_dropout(key, embed(params, x), dropout, train)
        return h @ params["W2"].T + params["b2"]

    return Model(init, apply, embed, dropout=dropout > 0, convolutional=False, fixed_embedding=False)


def chunked(model: Model, rows: int) -> Model:
    """``model`` whose eval-mode forward passes (``apply`` with ``train=False``, ``embed``, and
    ``predict`` if it has one) over more than ``rows`` rows run ``rows`` at a time under ``lax.map``, so
    the pool, evaluation and test passes of a deep model hold one chunk's activations instead of the
    whole set's (``Config.forward_rows``). Train-mode passes (minibatches, MC dropout samples) are
    unchanged, and so are the values."""

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        if train or x.shape[0] <= rows:
            return model.apply(params, x, key=key, train=train)
        return in_chunks(lambda part: model.apply(params, part), x, rows)

    def embed(params: Params, x: jax.Array) -> jax.Array:
        return in_chunks(lambda part: model.embed(params, part), x, rows)

    def predict(params: Params, x: jax.Array) -> jax.Array:
        if x.shape[0] <= rows:
            return model.predict(params, x)
        return in_chunks(lambda part: model.predict(params, part), x, rows)

    return model._replace(apply=apply, embed=embed, predict=None if model.predict is None else predict)


# ----------------------------------------------------------------------------- bring your own


def from_functions(init: Callable, apply: Callable, embed: Callable | None = None, *, dropout: bool | None = None,
                   convolutional: bool | None = None, fixed_embedding: bool | None = None) -> Model:
    """A :class:`Model` from a plain ``init(key, sample_shape)`` and ``apply(params, x)`` (or
    ``apply(params, x, *, key, train)``). Without ``embed``, the embedding is the flattened input,
    right only for a linear model: pass the network's penultimate activations for a deep one.
    ``dropout``, ``convolutional``, ``fixed_embedding``: the model's declared traits (:class:`Model`);
    without ``embed`` the embedding reads no params, so ``fixed_embedding`` unsaid is then True."""
    keyed = {"key", "train"} <= set(inspect.signature(apply).parameters)

    def apply_(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        return apply(params, x, key=key, train=train) if keyed else apply(params, x)

    if embed is None and fixed_embedding is None:
        fixed_embedding = True  # the flattened input below
    return Model(init, apply_, embed if embed is not None else (lambda params, x: flatten(x)), dropout=dropout,
                 convolutional=convolutional, fixed_embedding=fixed_embedding)


def from_flax(module, *, dropout: bool | None = None, convolutional: bool | None = None,
              fixed_embedding: bool | None = None) -> Model:
    """A :class:`Model` from a ``flax.linen`` Module whose ``__call__(x, train=False)`` returns logits.

    ``params`` is the module's ``"params"`` collection; in train mode its ``nn.Dropout`` layers draw
    from the ``"dropout"`` stream, seeded by ``key``. ``embed`` is the input of the last ``nn.Dense``
    that ``__call__`` calls (the output layer), captured with ``nn.intercept_methods``, unless the
    module defines an ``embed(x)`` method. Modules with state besides params (batch-norm statistics)
    are not supported yet: their init raises a one-line ValueError. ``dropout``, ``convolutional``,
    ``fixed_embedding``: the model's declared traits (:class:`Model`).
    """
    import flax.linen as nn

    takes_train = "train" in inspect.signature(module.__call__).parameters

    def call(params, x, train, rngs):
        kwargs = {"train": train} if takes_train else {}
        return module.apply({"params": params}, x, rngs=rngs, **kwargs)

    def init(key: jax.Array, sample_shape: tuple[int, ...]) -> Params:
        k_params, k_dropout = jax.random.split(key)
        variables = module.init({"params": k_params, "dropout": k_dropout}, jnp.zeros((1, *sample_shape)))
        extra = sorted(set(variables) - {"params"})
        if extra:
            raise ValueError(f"flax module {type(module).__name__} has state {extra} besides params; "
                             "aljax's flax adapter supports params-only modules (use LayerNorm, not BatchNorm)")
        return variables["params"]

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        return call(params, x, train, {"dropout": key} if key is not None else {})

    def embed(params: Params, x: jax.Array) -> jax.Array:
        if hasattr(module, "embed"):
            return flatten(module.apply({"params": params}, x, method="embed"))
        captured = []

        def interceptor(next_fun, args, kwargs, context):
            if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
                captured.append(args[0])
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(interceptor):
            call(params, x, False, {})
        if not captured:
            raise ValueError(f"flax module {type(module).__name__} calls no nn.Dense; define embed(x) on it")
        return flatten(captured[-1])

    return Model(init, apply, embed, dropout=dropout, convolutional=convolutional, fixed_embedding=fixed_embedding)


# ----------------------------------------------------------------------------- published CNNs


@jax.custom_vjp
def _conv_nhwc(x: jax.Array, w: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_nhwc_fwd(x, w):
    return _conv_nhwc(x, w), (x, w)


def _conv_nhwc_bwd(residuals, g):
    x, w = residuals
    kh, kw, c, f = w.shape
    h, wd = g.shape[1:3]
    g = jax.lax.optimization_barrier(g)  # else XLA fuses g's producer into every product below (2x slower)
    rows = g.reshape(-1, f)  # (N·h·w, F)
    if kh * kw * c <= 64:  # a narrow patch matrix (N·h·w, kh·kw·C): one product
        patches = jnp.concatenate([x[:, i:i + h, j:j + wd] for i in range(kh) for j in range(kw)], axis=-1)
        dw = (rows.T @ patches.reshape(-1, kh * kw * c)).T
    else:  # a wide one costs more to build than kh·kw products of (C, N·h·w) @ (N·h·w, F)
        dw = jnp.stack([x[:, i:i + h, j:j + wd].reshape(-1, c).T @ rows for i in range(kh) for j in range(kw)])
    # the input gradient is a forward VALID convolution of the zero-padded g with the flipped kernel
    padded = jnp.pad(g, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    dx = jax.lax.conv_general_dilated(padded, w[::-1, ::-1].transpose(0, 1, 3, 2), (1, 1), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return dx, dw.reshape(w.shape)


_conv_nhwc.defvjp(_conv_nhwc_fwd, _conv_nhwc_bwd)


def conv_valid(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
               feature_group_count=1, precision=None):
    """``lax.conv_general_dilated`` (flax's ``nn.Conv(conv_general_dilated=...)`` signature) with its own
    gradient for the networks' case (stride 1, VALID, no dilation, NHWC×HWIO): the kernel gradient
    as matrix products over the shifted inputs, the input gradient as a forward convolution of the
    padded output gradient with the flipped kernel. Same values and gradients. Why: inside a
    ``while_loop`` or ``scan``, where every fit runs, XLA:CPU's own convolution backward ran 13-16x
    slower than at top level (a 4x4, 16→16 convolution of 64 25x25 maps: 958 ms against 58 ms per
    step in a scan); its kernel gradient, a convolution with an output-sized window, is the slow part.
    Other cases go to XLA."""
    plain = (tuple(window_strides) == (1, 1) and (padding == "VALID" or all(tuple(p) == (0, 0) for p in padding))
             and all(d is None or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
             and feature_group_count == 1 and precision is None
             and dimension_numbers == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC")))
    if plain:
        return _conv_nhwc(lhs, rhs)
    return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, precision=precision)


@declare.model(dropout=True, convolutional=True, fixed_embedding=False)
def cnn_gal2017(n_classes: int, *, filters: specs.Count = 32, kernel: specs.Count = 4, pool: specs.Count = 2,
                hidden: specs.Count = 128, dropout_conv: specs.Fraction = 0.25,
                dropout_dense: specs.Fraction = 0.5, init: Annotated[str, specs.Choice(("lecun", "glorot"))] = "lecun") -> Model:
    """The MNIST CNN of Gal, Islam & Ghahramani 2017 ("Deep Bayesian Active Learning with Image Data",
    section 5.1): conv(32, 4×4)-relu-conv(32, 4×4)-relu-maxpool(2×2)-dropout(0.25)-dense(128)-relu-
    dropout(0.5)-dense(C), valid convolutions (Keras ``border_mode='valid'``). The defaults follow the
    paper's text; the authors' Keras scripts (Riashat/Deep-Bayesian-Active-Learning,
    ``MC_Dropout_Keras/Dropout_Bald_Q10_N1000_Paper.py``) use ``kernel=3,pool=5,hidden=256`` and an
    L2 weight decay of 3.5/n_train (a fitter's setting, not the network's). On 28×28×1 the flattened
    features are 11·11·32 = 3872; the embedding is the dense layer's output after its ReLU (n, hidden).
    ``init``: the kernels' initialiser, ``lecun`` (flax's default, LeCun normal) or ``glorot`` (Glorot
    uniform, Keras' default, which the scripts ran with); biases start at 0 either way.
    """
    import flax.linen as nn

    kernel_init = KERNEL_INITS[init]()

    class CNNGal2017(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            for _ in range(2):
                x = nn.relu(nn.Conv(filters, (kernel, kernel), padding="VALID", kernel_init=kernel_init,
                                    conv_general_dilated=conv_valid)(x))
            x = nn.max_pool(x, (pool, pool), (pool, pool))
            x = nn.Dropout(dropout_conv, deterministic=not train)(x)
            x = nn.relu(nn.Dense(hidden, kernel_init=kernel_init)(x.reshape(x.shape[0], -1)))
            x = nn.Dropout(dropout_dense, deterministic=not train)(x)
            return nn.Dense(n_classes, kernel_init=kernel_init)(x)

    return from_flax(CNNGal2017(), dropout=dropout_conv > 0 or dropout_dense > 0, convolutional=True,
                     fixed_embedding=False)


@declare.model(dropout=True, convolutional=True, fixed_embedding=False)
def cnn_batchbald2019(n_classes: int, *, filters1: specs.Count = 32, filters2: specs.Count = 64,
                      kernel: specs.Count = 5, hidden: specs.Count = 128, dropout_conv: specs.Fraction = 0.5,
                      dropout_dense: specs.Fraction = 0.5) -> Model:
    """The MNIST CNN of Kirsch, van Amersfoort & Gal 2019 (BatchBALD; ``BayesianNet`` in their repo's
    ``src/mnist_model.py``, BlackHC/BatchBALD): conv(32, 5×5)-dropout2d-maxpool(2)-relu-conv(64, 5×5)-
    dropout2d-maxpool(2)-relu-dense(128)-dropout-relu-dense(C), valid convolutions. Their conv dropout is
    channel-wise (``MCDropout2d`` drops whole feature maps: here ``broadcast_dims`` over height and
    width) and every dropout rate is their ``DROPOUT_PROB = 0.5`` (``src/mc_dropout.py``). On 28×28×1
    the flattened features are 4·4·64 = 1024; the embedding is the dense layer's output (n, hidden).
    """
    import flax.linen as nn

    class CNNBatchBALD2019(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            for width in (filters1, filters2):
                x = nn.Conv(width, (kernel, kernel), padding="VALID", conv_general_dilated=conv_valid)(x)
                x = nn.Dropout(dropout_conv, broadcast_dims=(1, 2), deterministic=not train)(x)
                x = nn.relu(nn.max_pool(x, (2, 2), (2, 2)))
            x = nn.Dense(hidden)(x.reshape(x.shape[0], -1))
            x = nn.relu(nn.Dropout(dropout_dense, deterministic=not train)(x))
            return nn.Dense(n_classes)(x)

    return from_flax(CNNBatchBALD2019(), dropout=dropout_conv > 0 or dropout_dense > 0, convolutional=True,
                     fixed_embedding=False)


# ----------------------------------------------------------------------------- deep ensembles


@declare.model(dropout=True, convolutional=False, fixed_embedding=False)  # its members are its samples (members=1: one)
def ensemble(n_classes: int, model: Annotated[str, specs.SpecOf(check_model, "a model spec")] = "mlp", *,
             members: specs.Count = 5) -> Model:
    """A deep ensemble of ``members`` copies of ``model`` (a model spec, e.g.
    ``ensemble(cnn_gal2017,members=5)``), trained at once: its params are the members' params with a
    leading member axis (``init`` is a vmap over M init keys), so a fitter trains every member in one
    step. ``apply`` gives the mean predictive's logits, log mean_m softmax(logits_m) (train mode: each
    member with its own dropout key); its training ``loss`` is the SUM of the members' cross-entropies
    (each member fits the labels on its own; the mean predictive is not what is trained); its
    ``samples`` are the members' eval-mode logits (M, n, C), whatever K a strategy asks for; ``embed``
    concatenates the members' embeddings (n, M·E); ``predict``, if the member model has one, is the
    mean of the members' test-time predictives, log mean_m softmax(predict_m). Traits: ``dropout`` when
    it has more than one member (its samples then differ), ``convolutional`` and ``fixed_embedding`` as
    its member model.
    """
    inner = make_model(model, n_classes)

    def init(key: jax.Array, sample_shape: tuple[int, ...]) -> Params:
        return jax.vmap(inner.init, in_axes=(0, None))(jax.random.split(key, members), sample_shape)

    def member_logits(params: Params, x: jax.Array, key: jax.Array | None, train: bool) -> jax.Array:
        if key is None:
            return jax.vmap(lambda p: inner.apply(p, x, train=train))(params)
        return jax.vmap(lambda p, k: inner.apply(p, x, key=k, train=train))(params, jax.random.split(key, members))

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        log_p = jax.nn.log_softmax(member_logits(params, x, key, train))
        return jax.nn.logsumexp(log_p, axis=0) - jnp.log(members)

    def loss(params: Params, x: jax.Array, y: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        log_p = jax.nn.log_softmax(member_logits(params, x, key, True))  # (M, n, C)
        return -jnp.sum(jnp.take_along_axis(log_p, y[None, :, None], axis=-1)[..., 0], axis=0)

    def embed(params: Params, x: jax.Array) -> jax.Array:
        e = jax.vmap(inner.embed, in_axes=(0, None))(params, x)  # (M, n, E)
        return jnp.moveaxis(e, 0, 1).reshape(x.shape[0], -1)

    def samples(params: Params, x: jax.Array, *, key: jax.Array | None = None, k: int | None = None,
                chunk: int | None = None) -> jax.Array:
        del key, k
        return ensemble_logits(inner, params, x, chunk=chunk)

    def predict(params: Params, x: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(jax.vmap(lambda p: inner.predict(p, x))(params))  # (M, n, C)
        return jax.nn.logsumexp(log_p, axis=0) - jnp.log(members)

    return Model(init, apply, embed, samples=samples, loss=loss, predict=None if inner.predict is None else predict,
                 dropout=members > 1, convolutional=bool(inner.convolutional),
                 fixed_embedding=bool(inner.fixed_embedding))


# ----------------------------------------------------------------------------- protocol wrappers


@declare.model(dropout=False, convolutional=False, fixed_embedding=False)  # its inner model's traits (the default mlp's)
def standardized(n_classes: int, model: Annotated[str, specs.SpecOf(check_model, "a model spec")] = "mlp", *,
                 mean: Annotated[float, specs.Range()] = 0.1307, std: specs.Positive = 0.3081) -> Model:
    """``model`` on standardised inputs, ``(x − mean) / std``, in every pass (train, eval, embedding,
    MC samples, test-time predictive). The defaults are MNIST's pixel mean and std on [0, 1] pixels, the constants of
    torchvision's ``Normalize((0.1307,), (0.3081,))`` that BatchBALD's code applies."""
    inner = make_model(model, n_classes)
    scale = lambda x: (x - mean) / std  # noqa: E731

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        return inner.apply(params, scale(x), key=key, train=train)

    def embed(params: Params, x: jax.Array) -> jax.Array:
        return inner.embed(params, scale(x))

    samples = None if inner.samples is None else (lambda params, x, **kw: inner.samples(params, scale(x), **kw))
    loss = None if inner.loss is None else (lambda params, x, y, **kw: inner.loss(params, scale(x), y, **kw))
    predict = None if inner.predict is None else (lambda params, x: inner.predict(params, scale(x)))
    return Model(inner.init, apply, embed, samples=samples, loss=loss, predict=predict, dropout=inner.dropout,
                 convolutional=inner.convolutional, fixed_embedding=inner.fixed_embedding)


@declare.model(dropout=False, convolutional=False, fixed_embedding=False)  # its inner model's traits (the default mlp's)
def mc_averaged(n_classes: int, model: Annotated[str, specs.SpecOf(check_model, "a model spec")] = "mlp", *,
                samples: specs.Count = 100, seed: Annotated[int, specs.Range(0)] = 0,
                chunk: specs.Count | None = None) -> Model:
    """``model`` whose test-time predictive (its ``predict``, :class:`Model`) is the MC-averaged one:
    log (1/K) Σ_k softmax(logits_k) (n, C) over K = ``samples`` consistent MC dropout samples (fixed
    masks drawn from ``key(seed)``, the same K masks for every row and every call). BatchBALD reports
    test accuracy this way (its ``SamplerModel(k=100)``): test accuracy and the test-split metrics read
    it. Everything else is ``model``'s own, as in BatchBALD's code: ``apply`` (train and eval mode), so
    the dev split (early stopping) is scored with dropout off and non-Bayesian strategies read the
    plain eval-mode logits; the MC samples; the embedding. K forward passes per test evaluation;
    ``chunk`` rows at a time (K·chunk rows live; None: all at once)."""
    inner = make_model(model, n_classes)
    masks = jax.random.key(seed)

    def predict(params: Params, x: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(mc_dropout_logits(inner, params, x, masks, samples, chunk=chunk))  # (K, n, C)
        return jax.nn.logsumexp(log_p, axis=0) - jnp.log(samples)

    return inner._replace(predict=predict)


KERNEL_INITS: dict[str, Callable] = {"lecun": lambda: jax.nn.initializers.lecun_normal(),
                                     "glorot": lambda: jax.nn.initializers.glorot_uniform()}

MODELS: dict[str, Callable[..., Model]] = {
    "softmax_regression": softmax_regression,
    "mlp": mlp,
    "cnn_gal2017": cnn_gal2017,
    "cnn_batchbald2019": cnn_batchbald2019,
    "ensemble": ensemble,
    "standardized": standardized,
    "mc_averaged": mc_averaged,
}


def output_shape(model: Model, sample_shape: tuple[int, ...], rows: int = 1) -> tuple[int, ...]:
    """The logits' shape (rows, C) of ``model`` on ``rows`` samples of ``sample_shape``, from abstract
    values (nothing is computed); raises whatever the model raises on a shape it cannot take (e.g. a
    kernel larger than the image)."""
    params = jax.eval_shape(lambda key: model.init(key, tuple(sample_shape)), jax.random.key(0))
    x = jax.ShapeDtypeStruct((rows, *sample_shape), jnp.float32)
    return jax.eval_shape(model.apply, params, x).shape


def check_model(name: str | specs.Spec) -> None:
    """Raise a one-line :class:`aljax.spec.SpecError` if ``name`` is not a valid model spec (settings
    in their domains), without building it."""
    specs.check(MODELS, name, "model", 1)


@functools.cache
def make_model(name: str, n_classes: int) -> Model:
    """The model a spec names, e.g. ``"softmax_regression"`` or ``"mlp(hidden=256,dropout=0.5)"``;
    a one-line :class:`aljax.spec.SpecError` for an unknown name or setting. Cached: one spec gives
    one function object, so jit caches hit. A trait the model leaves unsaid (None) is the factory's
    declared one (:class:`Model`)."""
    model = specs.build(MODELS, name, "model", n_classes)
    if not isinstance(model, Model):
        return model
    declared = declare.traits_of(specs.lookup(MODELS, specs.parse(name).name, "model"), "model")
    return model._replace(**{trait: value for trait, value in declared.items() if getattr(model, trait) is None})
