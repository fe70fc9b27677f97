"""What a study searches and selects on: metrics and search spaces (sampler, pruner)."""
