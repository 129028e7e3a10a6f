import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax.loop import Config, Hyper, make_run
from aljax.models import MODELS


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_logits_shape_and_weights_output_major(name):
    model = MODELS[name](6, 3, init_scale=1.0)
    params = model.init(jax.random.key(0))
    assert model.apply(params, jnp.ones((5, 6))).shape == (5, 3)
    matrices = [leaf for leaf in jax.tree.leaves(params) if leaf.ndim == 2]
    assert matrices[0].shape[1] == 6 and matrices[-1].shape[0] == 3  # (out, in), like torch.nn.Linear


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_runs_in_the_loop_and_learns(tiny, name):
    config = Config(model=name, init_scale=0.5, n_initial=6, query_size=6, rounds=3, initial="random")
    _, info = jax.jit(make_run(config))(tiny, Hyper(learning_rate=jnp.float32(0.05)), jax.random.key(0))
    accuracy = np.asarray(info.test_accuracy)
    assert accuracy[-1] > 0.6 and accuracy[-1] >= accuracy[0]  # 3 blobs: chance is 1/3
