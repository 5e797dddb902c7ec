"""Run a local swarm network on one machine: an anvil chain node, the deployed contract, and
hospital peers with their keys and configs (``swarm localnet up``)."""
