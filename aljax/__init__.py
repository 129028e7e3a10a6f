"""aljax: pool-based active learning in JAX."""
