"""aljax: pool-based active learning in JAX, one compiled program per experiment."""
