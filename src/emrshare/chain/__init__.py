"""Chain layer: contract bindings, deployment, event queries, signing and revert decoding."""
