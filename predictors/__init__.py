"""Latency predictors: supervised (mlp, gnn, gcn, baselines), few-shot hardware-adaptive (help,
help-ensemble) and meta-accuracy (maml-acc); their data (data), metrics, evaluation and files (io).
Each kind is registered by name (registry) and built lazily, so importing this package loads no torch."""
